package coord

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aspen-dev/aspen/api"
)

// PrefixWorker is the key prefix of the worker coordinator: per pool, one
// record per worker at PrefixWorker+pool+":w:"+id, one per unfinished
// task at PrefixWorker+pool+":t:"+id and the pool's fencing token counter
// at PrefixWorker+pool+":seq".
const PrefixWorker = "__coord:worker:"

// workerScanPage is the page size of the worker coordinator's scans.
const workerScanPage = 256

// workerClaimRounds bounds how often a claim or steal scans again when
// every task it picked was taken by a concurrent request.
const workerClaimRounds = 4

// workerRecord is one worker of a pool. Load and Started count the tasks
// assigned to its current token (all of them, and those started); they
// change only in transactions that also change those tasks, so a live
// worker's Load is exact and never exceeds Capacity; a dead one's Load is
// an upper bound of the tasks still assigned to its token (reclaims do not
// write to it). Tokens come from the pool's counter, so a record may be
// deleted once dead and unreferenced (prunable) without a token ever
// repeating; deregistration deletes it at once when Load is 0, else sets
// DeadlineMs to 0.
type workerRecord struct {
	Capacity       int    `json:"capacity"`
	FencingToken   uint64 `json:"fencing_token"`
	TTLMs          int64  `json:"ttl_ms"`
	RegisteredAtMs int64  `json:"registered_at_ms"`
	DeadlineMs     int64  `json:"deadline_ms"` // unix ms, leader clock; 0 = deregistered
	Load           int    `json:"load"`
	Started        int    `json:"started"`
	Completed      uint64 `json:"completed"`
}

func (w *workerRecord) live(nowMs int64) bool {
	return w != nil && w.DeadlineMs != 0 && nowMs < w.DeadlineMs
}

// taskRecord is one unfinished task; a completed task's record is deleted.
// Worker and Token name its owner while State is assigned or started.
type taskRecord struct {
	Payload       []byte `json:"payload"`
	State         string `json:"state"`
	Worker        string `json:"worker,omitempty"`
	Token         uint64 `json:"token,omitempty"`
	Attempts      int    `json:"attempts"`
	SubmittedAtMs int64  `json:"submitted_at_ms"`
	AssignedAtMs  int64  `json:"assigned_at_ms,omitempty"`
	LastError     string `json:"last_error,omitempty"`
}

// poolOwners is a snapshot of a pool's worker records and of its token
// counter, read before them: every token up to seq had its record written
// before the scan of the records began.
type poolOwners struct {
	workers map[string]*workerRecord
	seq     uint64
}

// ownerDead reports whether t is assigned to a registration that is over:
// its worker's record (from owners) carries a later token, or that token's
// deadline passed or it deregistered, or the record is missing although
// the token was issued before the snapshot (it was deleted, which only
// happens to dead records). All only ever stay true (tokens strictly
// increase per pool; an expired registration cannot be heartbeated), so a
// snapshot that says "dead" stays right. A missing worker whose token is
// newer than the snapshot registered after it: live.
func ownerDead(t *taskRecord, owners *poolOwners, nowMs int64) bool {
	if t.State == api.WorkerTaskPending {
		return false
	}
	w := owners.workers[t.Worker]
	if w == nil {
		return t.Token <= owners.seq
	}
	return w.FencingToken > t.Token || (w.FencingToken == t.Token && !w.live(nowMs))
}

// claimable reports whether t may be placed on a worker: pending, or held
// by a dead owner.
func claimable(t *taskRecord, owners *poolOwners, nowMs int64) bool {
	return t != nil && (t.State == api.WorkerTaskPending || ownerDead(t, owners, nowMs))
}

// effectiveState is t's state as reported: a dead owner's task is pending.
func effectiveState(t *taskRecord, owners *poolOwners, nowMs int64) string {
	if ownerDead(t, owners, nowMs) {
		return api.WorkerTaskPending
	}
	return t.State
}

// workerRefusal says why worker id's request with token is refused, or ""
// when w is its live registration (or any registration when allowExpired).
func workerRefusal(w *workerRecord, id string, token uint64, nowMs int64, allowExpired bool) string {
	switch {
	case w == nil || w.DeadlineMs == 0:
		return fmt.Sprintf("worker %s is not registered", id)
	case w.FencingToken != token:
		return fmt.Sprintf("fencing token mismatch: worker %s is registered with token %d, not %d", id, w.FencingToken, token)
	case !allowExpired && !w.live(nowMs):
		return fmt.Sprintf("worker %s registration expired %d ms ago", id, nowMs-w.DeadlineMs)
	}
	return ""
}

// decideWorkerRegister issues the pool's next token (seq is the pool's
// counter, the largest token it issued; the new token is also the next
// counter) with no load: the tasks of the earlier registration belong to a
// dead owner from now on. max with cur's token keeps tokens increasing
// over records written before the counter existed.
func decideWorkerRegister(cur *workerRecord, seq uint64, capacity int, ttlMs, nowMs int64) *workerRecord {
	next := &workerRecord{Capacity: capacity, FencingToken: seq + 1, TTLMs: ttlMs, RegisteredAtMs: nowMs, DeadlineMs: nowMs + ttlMs}
	if cur != nil {
		next.FencingToken, next.Completed = max(seq, cur.FencingToken)+1, cur.Completed
	}
	return next
}

// decideWorkerChange heartbeats (deadline = now + TTL, live only) or
// deregisters (expired too) the registration with token. A deregistration
// whose Load is 0 (no task holds the token) returns gone: delete the
// record.
func decideWorkerChange(cur *workerRecord, id, op string, token uint64, nowMs int64) (next *workerRecord, gone bool, msg string) {
	if msg := workerRefusal(cur, id, token, nowMs, op == "deregister"); msg != "" {
		return nil, false, msg
	}
	nw := *cur
	if op == "deregister" {
		nw.DeadlineMs = 0
		return &nw, nw.Load == 0, ""
	}
	nw.DeadlineMs = nowMs + cur.TTLMs
	return &nw, false, ""
}

// prunable lists the worker records of owners (ids in order) that may be
// deleted: dead, and no task of tasks (the whole pool, scanned after
// owners) assigned to their current token. Such a record stays prunable
// while its token is unchanged: a dead registration gains no tasks.
func prunable(owners *poolOwners, ids []string, tasks []*taskRecord, nowMs int64) []string {
	held := map[string]bool{}
	for _, t := range tasks {
		if t == nil {
			continue
		}
		if w := owners.workers[t.Worker]; t.State != api.WorkerTaskPending && w != nil && w.FencingToken == t.Token {
			held[t.Worker] = true
		}
	}
	var out []string
	for _, id := range ids {
		if !owners.workers[id].live(nowMs) && !held[id] {
			out = append(out, id)
		}
	}
	return out
}

// decidePrune says whether the fresh record w, which a pruning scan found
// prunable with token, may be deleted: still dead with that token.
func decidePrune(w *workerRecord, token uint64, nowMs int64) bool {
	return w != nil && w.FencingToken == token && !w.live(nowMs)
}

// placeTarget is a worker a placement may use: its id, the token the
// scan saw and its fresh record.
type placeTarget struct {
	id    string
	token uint64
	w     *workerRecord
}

// lessLoaded orders workers by load/capacity, then load.
func lessLoaded(a, b *workerRecord) bool {
	if x, y := a.Load*b.Capacity, b.Load*a.Capacity; x != y {
		return x < y
	}
	return a.Load < b.Load
}

// decidePlace places claimable tasks (in the order given; nil entries are
// skipped), at most max, each on the least loaded target that is still
// live with the token the scan saw and has free capacity. It returns the
// next records of the targets used (by index), the indexes of the tasks
// taken and their next records (by index).
func decidePlace(targets []placeTarget, tasks []*taskRecord, owners *poolOwners, max int, nowMs int64) (map[int]*workerRecord, []int, map[int]*taskRecord) {
	cur := make([]*workerRecord, len(targets))
	for k, tg := range targets {
		if tg.w.live(nowMs) && tg.w.FencingToken == tg.token {
			c := *tg.w
			cur[k] = &c
		}
	}
	nextW := map[int]*workerRecord{}
	next := map[int]*taskRecord{}
	var took []int
	for i, t := range tasks {
		if len(took) >= max {
			break
		}
		if !claimable(t, owners, nowMs) {
			continue
		}
		best := -1
		for k, w := range cur {
			if w != nil && w.Load < w.Capacity && (best < 0 || lessLoaded(w, cur[best])) {
				best = k
			}
		}
		if best < 0 {
			break // every target is full
		}
		w, tg := cur[best], targets[best]
		w.Load++
		nextW[best] = w
		nt := *t
		nt.State, nt.Worker, nt.Token, nt.Attempts, nt.AssignedAtMs = api.WorkerTaskAssigned, tg.id, tg.token, t.Attempts+1, nowMs
		next[i] = &nt
		took = append(took, i)
	}
	return nextW, took, next
}

// decideClaim places claimable tasks (in the order given) on worker id
// until it holds min(max, free capacity) more: decidePlace with one
// target, refused unless w is the worker's live registration with token.
func decideClaim(w *workerRecord, id string, token uint64, tasks []*taskRecord, owners *poolOwners, max int, nowMs int64) (*workerRecord, []int, map[int]*taskRecord, string) {
	if msg := workerRefusal(w, id, token, nowMs, false); msg != "" {
		return nil, nil, nil, msg
	}
	nextW, took, next := decidePlace([]placeTarget{{id, token, w}}, tasks, owners, max, nowMs)
	if nw := nextW[0]; nw != nil {
		return nw, took, next, ""
	}
	return w, nil, nil, ""
}

// stealBound is how many tasks a thief with thief's record may take from
// victim: at most max and MaxWorkerClaim, the thief's free capacity and
// half of the victim's assigned-but-not-started tasks.
func stealBound(thief, victim *workerRecord, want int) int {
	return max(0, min(want, api.MaxWorkerClaim, thief.Capacity-thief.Load, (victim.Load-victim.Started)/2))
}

// decideSteal moves up to stealBound of victim's assigned, not started
// tasks (from tasks, in order) to thief. Started tasks are never taken.
func decideSteal(thief *workerRecord, thiefID string, thiefToken uint64, victim *workerRecord, victimID string, victimToken uint64, tasks []*taskRecord, max int, nowMs int64) (*workerRecord, *workerRecord, []int, map[int]*taskRecord, string) {
	if msg := workerRefusal(thief, thiefID, thiefToken, nowMs, false); msg != "" {
		return nil, nil, nil, nil, msg
	}
	if thiefID == victimID || !victim.live(nowMs) || victim.FencingToken != victimToken {
		return thief, victim, nil, nil, "" // nothing to steal from it any more
	}
	n := stealBound(thief, victim, max)
	var took []int
	next := map[int]*taskRecord{}
	for i, t := range tasks {
		if len(took) >= n {
			break
		}
		if t == nil || t.State != api.WorkerTaskAssigned || t.Worker != victimID || t.Token != victimToken {
			continue
		}
		nt := *t
		nt.Worker, nt.Token, nt.AssignedAtMs = thiefID, thiefToken, nowMs
		next[i] = &nt
		took = append(took, i)
	}
	nth, nv := *thief, *victim
	nth.Load += len(took)
	nv.Load -= len(took)
	return &nth, &nv, took, next, ""
}

// taskRefusal says why worker id (token) may not act on task taskID.
func taskRefusal(t *taskRecord, taskID, id string, token uint64) string {
	switch {
	case t == nil:
		return fmt.Sprintf("task %s does not exist (or is completed)", taskID)
	case t.State == api.WorkerTaskPending || t.Worker != id || t.Token != token:
		return fmt.Sprintf("task %s is not assigned to worker %s with token %d", taskID, id, token)
	}
	return ""
}

// decideTaskStart marks the worker's task started (idempotent).
func decideTaskStart(w *workerRecord, t *taskRecord, id, taskID string, token uint64, nowMs int64) (*workerRecord, *taskRecord, string) {
	if msg := workerRefusal(w, id, token, nowMs, false); msg != "" {
		return nil, nil, msg
	}
	if msg := taskRefusal(t, taskID, id, token); msg != "" {
		return nil, nil, msg
	}
	if t.State == api.WorkerTaskStarted {
		return nil, nil, ""
	}
	nw, nt := *w, *t
	nw.Started++
	nt.State = api.WorkerTaskStarted
	return &nw, &nt, ""
}

// decideTaskFinish completes (next task nil: delete it) or fails (back to
// pending with errMsg) the worker's task, freeing its capacity.
func decideTaskFinish(w *workerRecord, t *taskRecord, id, taskID string, token uint64, fail bool, errMsg string, nowMs int64) (*workerRecord, *taskRecord, string) {
	if msg := workerRefusal(w, id, token, nowMs, false); msg != "" {
		return nil, nil, msg
	}
	if msg := taskRefusal(t, taskID, id, token); msg != "" {
		return nil, nil, msg
	}
	nw := *w
	nw.Load--
	if t.State == api.WorkerTaskStarted {
		nw.Started--
	}
	if !fail {
		nw.Completed++
		return &nw, nil, ""
	}
	nt := *t
	nt.State, nt.Worker, nt.Token, nt.AssignedAtMs, nt.LastError = api.WorkerTaskPending, "", 0, 0, errMsg
	return &nw, &nt, ""
}

// checkPoolName validates a pool name: no ':' (it ends the pool in keys).
func checkPoolName(pool string) error {
	if pool == "" {
		return api.Errorf(api.CodeInvalidArgument, "pool name is empty")
	}
	if strings.Contains(pool, ":") {
		return api.Errorf(api.CodeInvalidArgument, "pool name %q contains ':'", pool)
	}
	return nil
}

func workerKey(pool, id string) ([]byte, error) {
	return poolRecordKey(pool, "w", "worker id", id, api.MaxHolderIDSize)
}

func taskKey(pool, id string) ([]byte, error) {
	return poolRecordKey(pool, "t", "task id", id, api.MaxWorkerTaskIDSize)
}

// poolRecordKey is the key of pool's record of kind ("w" a worker, "t" a
// task) named id (what, at most limit bytes).
func poolRecordKey(pool, kind, what, id string, limit int) ([]byte, error) {
	if err := checkPoolName(pool); err != nil {
		return nil, err
	}
	if err := checkString(what, id, limit); err != nil {
		return nil, err
	}
	return recordKey(PrefixWorker+pool+":"+kind+":", what, id)
}

// scanPrefix calls f with each record under prefix in key order until f
// returns false; more than limit records is a RESOURCE_EXHAUSTED error.
func (s *Service) scanPrefix(ctx context.Context, prefix []byte, limit int, what string, f func(kv *api.KeyValue) (bool, error)) error {
	var after []byte
	n := 0
	for {
		kvs, more, err := s.b.Scan(ctx, prefix, after, workerScanPage)
		if err != nil {
			return fmt.Errorf("scanning %s: %w", what, err)
		}
		for i := range kvs {
			if n++; n > limit {
				return api.Errorf(api.CodeResourceExhausted, "more than %d %s", limit, what)
			}
			ok, err := f(&kvs[i])
			if err != nil || !ok {
				return err
			}
		}
		if !more || len(kvs) == 0 {
			return nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

// seqKey is the key of pool's fencing token counter (a JSON number, the
// largest token the pool issued); pool is valid.
func seqKey(pool string) []byte { return []byte(PrefixWorker + pool + ":seq") }

// decodeSeq decodes a pool's token counter (0 when absent).
func decodeSeq(kv *api.KeyValue) (uint64, error) {
	n, err := decodeJSON[uint64](kv)
	if err != nil || n == nil {
		return 0, err
	}
	return *n, nil
}

// poolWorkers reads the token counter of pool, then every worker record.
func (s *Service) poolWorkers(ctx context.Context, pool string) (*poolOwners, []string, error) {
	kv, err := s.b.Read(ctx, seqKey(pool))
	if err != nil {
		return nil, nil, err
	}
	out := &poolOwners{workers: map[string]*workerRecord{}}
	if out.seq, err = decodeSeq(kv); err != nil {
		return nil, nil, err
	}
	prefix := []byte(PrefixWorker + pool + ":w:")
	var ids []string
	// Registration checks the limit before writing, so a pool may
	// overshoot it a little; twice the limit is corruption or abuse.
	err = s.scanPrefix(ctx, prefix, 2*api.MaxWorkersPerPool, "workers in pool "+pool, func(kv *api.KeyValue) (bool, error) {
		w, err := decodeJSON[workerRecord](kv)
		if err != nil {
			return false, err
		}
		id := string(kv.Key[len(prefix):])
		out.workers[id] = w
		ids = append(ids, id)
		return true, nil
	})
	return out, ids, err
}

// seqOps returns the write that raises the counter (cur) to at least
// token, if any: deleting a record keeps its token issued.
func seqOps(key []byte, cur, token uint64) []api.TxnOp {
	if token <= cur {
		return nil
	}
	return []api.TxnOp{put(key, mustJSON(token))}
}

// prunePool deletes the prunable worker records of pool and returns how
// many records remain: a snapshot, a scan of every task, then steps of at
// most MaxBatchOps-1 records (and the counter), each deleting the records
// still dead with the token the snapshot saw.
func (s *Service) prunePool(ctx context.Context, pool string) (int, error) {
	owners, ids, err := s.poolWorkers(ctx, pool)
	if err != nil {
		return 0, err
	}
	var tasks []*taskRecord
	if err := s.poolTasks(ctx, pool, func(_ string, t *taskRecord) bool { tasks = append(tasks, t); return true }); err != nil {
		return 0, err
	}
	left := len(ids)
	skey := seqKey(pool)
	for batch := range slices.Chunk(prunable(owners, ids, tasks, s.b.NowMs()), api.MaxBatchOps-1) {
		keys := [][]byte{skey}
		for _, id := range batch {
			k, _ := workerKey(pool, id)
			keys = append(keys, k)
		}
		deleted := 0
		_, err := s.updateKeys(ctx, keys, func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
			seq, err := decodeSeq(curs[0])
			if err != nil {
				return nil, err
			}
			ws, _, err := decodeStep(curs[1:], len(batch))
			if err != nil {
				return nil, err
			}
			var ops []api.TxnOp
			top := seq
			for i, w := range ws {
				if decidePrune(w, owners.workers[batch[i]].FencingToken, nowMs) {
					ops = append(ops, del(keys[i+1]))
					top = max(top, w.FencingToken)
				}
			}
			deleted = len(ops)
			if len(ops) == 0 {
				return nil, nil
			}
			return append(ops, seqOps(skey, seq, top)...), nil
		})
		if err != nil {
			return 0, err
		}
		left -= deleted
	}
	return left, nil
}

// poolTasks calls f with every task of pool in id order until it returns
// false.
func (s *Service) poolTasks(ctx context.Context, pool string, f func(id string, t *taskRecord) bool) error {
	prefix := []byte(PrefixWorker + pool + ":t:")
	// Submissions check the limit before writing, so a pool may overshoot
	// it a little; twice the limit is corruption or abuse.
	return s.scanPrefix(ctx, prefix, 2*api.MaxWorkerPoolTasks, "tasks in pool "+pool, func(kv *api.KeyValue) (bool, error) {
		t, err := decodeJSON[taskRecord](kv)
		if err != nil {
			return false, err
		}
		return f(string(kv.Key[len(prefix):]), t), nil
	})
}

// recordOps returns the writes of the given records (by index of keys):
// a put of each worker and task record, a delete for a nil task when
// deleteNil.
func recordOps(keys [][]byte, workers map[int]*workerRecord, tasks map[int]*taskRecord, deleteNil bool) []api.TxnOp {
	var ops []api.TxnOp
	for i, k := range keys {
		if w, ok := workers[i]; ok {
			ops = append(ops, put(k, mustJSON(w)))
		} else if t, ok := tasks[i]; ok && t != nil {
			ops = append(ops, put(k, mustJSON(t)))
		} else if ok && deleteNil {
			ops = append(ops, del(k))
		}
	}
	return ops
}

func (t *taskRecord) view(id string, owners *poolOwners, nowMs int64) api.WorkerTask {
	v := api.WorkerTask{TaskID: id, State: effectiveState(t, owners, nowMs), Attempts: t.Attempts, Payload: t.Payload,
		SubmittedAtMs: t.SubmittedAtMs, LastError: t.LastError}
	if v.State != api.WorkerTaskPending {
		v.WorkerID = t.Worker
	}
	return v
}

// decodeStep decodes the records of a multi-key step: the first n are
// workers, the rest tasks (tasks is indexed like curs, nil below n).
func decodeStep(curs []*api.KeyValue, n int) ([]*workerRecord, []*taskRecord, error) {
	ws := make([]*workerRecord, n)
	tasks := make([]*taskRecord, len(curs))
	var err error
	for i, kv := range curs {
		if i < n {
			ws[i], err = decodeJSON[workerRecord](kv)
		} else {
			tasks[i], err = decodeJSON[taskRecord](kv)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return ws, tasks, nil
}

// taskViews is the public view of the tasks taken (indexes of keys; ids
// holds the task ids from index first on).
func taskViews(took []int, next map[int]*taskRecord, ids []string, first int, owners *poolOwners, nowMs int64) []api.WorkerTask {
	var out []api.WorkerTask
	for _, i := range took {
		out = append(out, next[i].view(ids[i-first], owners, nowMs))
	}
	return out
}

func workerResp(op string, req *api.WorkerRequest) *api.WorkerResponse {
	return &api.WorkerResponse{Operation: op, Pool: req.Pool, WorkerID: req.WorkerID, TaskID: req.TaskID}
}

// WorkerRegister registers (or re-registers with a larger token, ending
// the earlier registration and releasing its tasks) a worker of a pool.
func (s *Service) WorkerRegister(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	key, err := workerKey(req.Pool, req.WorkerID)
	if err != nil {
		return nil, err
	}
	if req.Capacity < 1 || req.Capacity > api.MaxWorkerCapacity {
		return nil, api.Errorf(api.CodeInvalidArgument, "capacity is %d; want 1..%d", req.Capacity, api.MaxWorkerCapacity)
	}
	ttl := cmp.Or(req.TTLMs, api.DefaultWorkerTTLMs)
	if ttl < 1 || ttl > api.MaxWorkerTTLMs {
		return nil, api.Errorf(api.CodeInvalidArgument, "ttl_ms is %d; want 1..%d milliseconds", ttl, int64(api.MaxWorkerTTLMs))
	}
	cur, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	if cur == nil { // a new record: enforce the pool's worker limit
		_, ids, err := s.poolWorkers(ctx, req.Pool)
		if err != nil {
			return nil, err
		}
		if n := len(ids); n >= api.MaxWorkersPerPool {
			if n, err = s.prunePool(ctx, req.Pool); err != nil {
				return nil, err
			}
			if n >= api.MaxWorkersPerPool {
				return nil, api.Errorf(api.CodeResourceExhausted, "pool %s has %d workers that are live or hold tasks; the limit is %d", req.Pool, n, api.MaxWorkersPerPool)
			}
		}
	}
	out := workerResp("register", req)
	keys := [][]byte{seqKey(req.Pool), key}
	_, err = s.updateKeys(ctx, keys, func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		seq, err := decodeSeq(curs[0])
		if err != nil {
			return nil, err
		}
		cur, err := decodeJSON[workerRecord](curs[1])
		if err != nil {
			return nil, err
		}
		next := decideWorkerRegister(cur, seq, req.Capacity, ttl, nowMs)
		out.IsSuccess, out.FencingToken, out.DeadlineMs = true, next.FencingToken, next.DeadlineMs
		return []api.TxnOp{put(keys[0], mustJSON(next.FencingToken)), put(key, mustJSON(next))}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) workerChange(ctx context.Context, op string, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	key, err := workerKey(req.Pool, req.WorkerID)
	if err != nil {
		return nil, err
	}
	out := workerResp(op, req)
	// A deregistration may delete the record: its step also raises the
	// pool's counter to the record's token.
	keys := [][]byte{key}
	if op == "deregister" {
		keys = append(keys, seqKey(req.Pool))
	}
	_, err = s.updateKeys(ctx, keys, func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		cur, err := decodeJSON[workerRecord](curs[0])
		if err != nil {
			return nil, err
		}
		next, gone, msg := decideWorkerChange(cur, req.WorkerID, op, req.FencingToken, nowMs)
		out.IsSuccess, out.Error, out.FencingToken, out.DeadlineMs = msg == "", msg, req.FencingToken, 0
		switch {
		case next == nil:
			return nil, nil
		case !gone:
			out.DeadlineMs = next.DeadlineMs
			return []api.TxnOp{put(key, mustJSON(next))}, nil
		}
		seq, err := decodeSeq(curs[1])
		if err != nil {
			return nil, err
		}
		return append([]api.TxnOp{del(key)}, seqOps(keys[1], seq, next.FencingToken)...), nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WorkerHeartbeat extends a live registration to now + its TTL.
func (s *Service) WorkerHeartbeat(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return s.workerChange(ctx, "heartbeat", req)
}

// WorkerDeregister ends a registration; its tasks become pending.
func (s *Service) WorkerDeregister(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return s.workerChange(ctx, "deregister", req)
}

// WorkerSubmit adds a pending task to a pool; an existing task id is
// refused. A pool holds at most MaxWorkerPoolTasks unfinished tasks
// (checked by a scan before the write).
func (s *Service) WorkerSubmit(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	key, err := taskKey(req.Pool, req.TaskID)
	if err != nil {
		return nil, err
	}
	if len(req.Payload) > api.MaxWorkerPayloadSize {
		return nil, api.Errorf(api.CodeInvalidArgument, "payload is %d bytes; the limit is %d", len(req.Payload), api.MaxWorkerPayloadSize)
	}
	n := 0
	if err := s.poolTasks(ctx, req.Pool, func(string, *taskRecord) bool { n++; return n < api.MaxWorkerPoolTasks }); err != nil {
		return nil, err
	}
	if n >= api.MaxWorkerPoolTasks {
		return nil, api.Errorf(api.CodeResourceExhausted, "pool %s has %d unfinished tasks; the limit is %d", req.Pool, n, api.MaxWorkerPoolTasks)
	}
	out := workerResp("submit", req)
	_, err = recordStep(ctx, s, key, decodeJSON[taskRecord], func(cur *taskRecord, nowMs int64) (*taskRecord, struct{}) {
		if cur != nil {
			out.Error = fmt.Sprintf("task %s already exists", req.TaskID)
			return nil, struct{}{}
		}
		out.IsSuccess = true
		return &taskRecord{Payload: req.Payload, State: api.WorkerTaskPending, SubmittedAtMs: nowMs}, struct{}{}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func claimMax(m int) (int, error) {
	if m == 0 {
		return 1, nil
	}
	if m < 1 || m > api.MaxWorkerClaim {
		return 0, api.Errorf(api.CodeInvalidArgument, "max is %d; want 1..%d", m, api.MaxWorkerClaim)
	}
	return m, nil
}

// stepPlan is one round of a claim or steal: the keys of a multi-key step,
// how many tasks were picked for it and its decision.
type stepPlan struct {
	keys   [][]byte
	picked int
	decide func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error)
}

// placement runs a claim or steal: plan scans the pool (owners are its
// worker records, wids their ids in order) and returns one step, whose
// decision fills out. A round that took nothing although it had picked
// tasks (concurrent requests took them all) is planned again, at most
// workerClaimRounds times.
func (s *Service) placement(ctx context.Context, op string, req *api.WorkerRequest, plan func(owners *poolOwners, wids []string, max int, nowMs int64, out *api.WorkerResponse) (*stepPlan, error)) (*api.WorkerResponse, error) {
	max, err := claimMax(req.Max)
	if err != nil {
		return nil, err
	}
	out := workerResp(op, req)
	for range workerClaimRounds {
		owners, wids, err := s.poolWorkers(ctx, req.Pool)
		if err != nil {
			return nil, err
		}
		p, err := plan(owners, wids, max, s.b.NowMs(), out)
		if err != nil {
			return nil, err
		}
		if len(p.keys) == 0 {
			break
		}
		out.Tasks, out.Error, out.IsSuccess, out.Victim = nil, "", false, ""
		if _, err := s.updateKeys(ctx, p.keys, p.decide); err != nil {
			return nil, err
		}
		if !out.IsSuccess || len(out.Tasks) > 0 || p.picked == 0 {
			break
		}
	}
	out.FencingToken = req.FencingToken
	return out, nil
}

// WorkerClaim assigns up to min(Max, free capacity) claimable tasks (pending,
// or held by a dead worker) to a live worker, in task id order. The step is
// guarded by the worker's record and every task it picked.
func (s *Service) WorkerClaim(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	wkey, err := workerKey(req.Pool, req.WorkerID)
	if err != nil {
		return nil, err
	}
	return s.placement(ctx, "claim", req, func(owners *poolOwners, _ []string, max int, now int64, out *api.WorkerResponse) (*stepPlan, error) {
		keys := [][]byte{wkey}
		var ids []string
		if w := owners.workers[req.WorkerID]; w.live(now) {
			want := 2 * min(max, w.Capacity-w.Load)
			err := s.poolTasks(ctx, req.Pool, func(id string, t *taskRecord) bool {
				if len(ids) >= want {
					return false
				}
				if claimable(t, owners, now) {
					k, _ := taskKey(req.Pool, id)
					keys, ids = append(keys, k), append(ids, id)
				}
				return true
			})
			if err != nil {
				return nil, err
			}
		}
		return &stepPlan{keys: keys, picked: len(ids), decide: func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
			ws, tasks, err := decodeStep(curs, 1)
			if err != nil {
				return nil, err
			}
			nw, took, next, msg := decideClaim(ws[0], req.WorkerID, req.FencingToken, tasks, owners, max, nowMs)
			out.Error, out.IsSuccess = msg, msg == ""
			out.Tasks = taskViews(took, next, ids, 1, owners, nowMs)
			if msg != "" || len(took) == 0 {
				return nil, nil
			}
			return recordOps(keys, map[int]*workerRecord{0: nw}, next, false), nil
		}}, nil
	})
}

// WorkerAssign places up to Max (≤ 16) claimable tasks of a pool on its
// live workers, each on the least loaded one (load/capacity) with free
// capacity. The step is guarded by the Max least loaded workers of the
// scan and every task it picked; it is refused when the pool's name is
// invalid and takes nothing when no worker has room.
func (s *Service) WorkerAssign(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	if err := checkPoolName(req.Pool); err != nil {
		return nil, err
	}
	return s.placement(ctx, "assign", req, func(owners *poolOwners, wids []string, max int, now int64, out *api.WorkerResponse) (*stepPlan, error) {
		var cands []string
		free := 0
		for _, id := range wids {
			if w := owners.workers[id]; w.live(now) && w.Load < w.Capacity {
				cands = append(cands, id)
			}
		}
		slices.SortStableFunc(cands, func(a, b string) int {
			switch {
			case lessLoaded(owners.workers[a], owners.workers[b]):
				return -1
			case lessLoaded(owners.workers[b], owners.workers[a]):
				return 1
			}
			return 0
		})
		cands = cands[:min(len(cands), max)]
		var keys [][]byte
		for _, id := range cands {
			k, _ := workerKey(req.Pool, id)
			keys = append(keys, k)
			free += owners.workers[id].Capacity - owners.workers[id].Load
		}
		var ids []string
		if want := 2 * min(max, free); want > 0 {
			err := s.poolTasks(ctx, req.Pool, func(id string, t *taskRecord) bool {
				if claimable(t, owners, now) {
					k, _ := taskKey(req.Pool, id)
					keys, ids = append(keys, k), append(ids, id)
				}
				return len(ids) < want
			})
			if err != nil {
				return nil, err
			}
		}
		nw := len(cands)
		if len(keys) == 0 { // nothing to place, nowhere to place it
			out.IsSuccess = true
			return &stepPlan{}, nil
		}
		return &stepPlan{keys: keys, picked: len(ids), decide: func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
			ws, tasks, err := decodeStep(curs, nw)
			if err != nil {
				return nil, err
			}
			targets := make([]placeTarget, nw)
			for k, id := range cands {
				targets[k] = placeTarget{id, owners.workers[id].FencingToken, ws[k]}
			}
			nextW, took, next := decidePlace(targets, tasks, owners, max, nowMs)
			out.IsSuccess = true
			out.Tasks = taskViews(took, next, ids, nw, owners, nowMs)
			if len(took) == 0 {
				return nil, nil
			}
			return recordOps(keys, nextW, next, false), nil
		}}, nil
	})
}

// WorkerSteal moves up to Max (≤ 16) assigned but not started tasks of the
// most loaded live worker with something to steal to the calling worker,
// never more than its free capacity nor half of the victim's not started
// tasks.
func (s *Service) WorkerSteal(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	tkey, err := workerKey(req.Pool, req.WorkerID)
	if err != nil {
		return nil, err
	}
	return s.placement(ctx, "steal", req, func(owners *poolOwners, wids []string, max int, now int64, out *api.WorkerResponse) (*stepPlan, error) {
		thief := owners.workers[req.WorkerID]
		victimID := ""
		if thief.live(now) {
			for _, id := range wids {
				v := owners.workers[id]
				if id == req.WorkerID || !v.live(now) || stealBound(thief, v, max) == 0 {
					continue
				}
				if victimID == "" || v.Load > owners.workers[victimID].Load {
					victimID = id
				}
			}
		}
		if victimID == "" { // nothing to steal: answer on the thief's fresh record
			return &stepPlan{keys: [][]byte{tkey}, decide: func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
				ws, _, err := decodeStep(curs, 1)
				if err != nil {
					return nil, err
				}
				msg := workerRefusal(ws[0], req.WorkerID, req.FencingToken, nowMs, false)
				out.Error, out.IsSuccess = msg, msg == ""
				return nil, nil
			}}, nil
		}
		victimToken := owners.workers[victimID].FencingToken
		vkey, _ := workerKey(req.Pool, victimID)
		keys := [][]byte{tkey, vkey}
		var ids []string
		want := 2 * stealBound(thief, owners.workers[victimID], max)
		err := s.poolTasks(ctx, req.Pool, func(id string, t *taskRecord) bool {
			if t.State == api.WorkerTaskAssigned && t.Worker == victimID && t.Token == victimToken {
				k, _ := taskKey(req.Pool, id)
				keys, ids = append(keys, k), append(ids, id)
			}
			return len(ids) < want
		})
		if err != nil {
			return nil, err
		}
		return &stepPlan{keys: keys, picked: len(ids), decide: func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
			ws, tasks, err := decodeStep(curs, 2)
			if err != nil {
				return nil, err
			}
			nth, nv, took, next, msg := decideSteal(ws[0], req.WorkerID, req.FencingToken, ws[1], victimID, victimToken, tasks, max, nowMs)
			out.Error, out.IsSuccess = msg, msg == ""
			out.Tasks = taskViews(took, next, ids, 2, owners, nowMs)
			if msg != "" || len(took) == 0 {
				return nil, nil
			}
			out.Victim = victimID
			return recordOps(keys, map[int]*workerRecord{0: nth, 1: nv}, next, false), nil
		}}, nil
	})
}

// workerTaskStep runs decide on a worker's record and one of its tasks in
// one multi-key step.
func (s *Service) workerTaskStep(ctx context.Context, op string, req *api.WorkerRequest, decide func(w *workerRecord, t *taskRecord, nowMs int64) (*workerRecord, *taskRecord, string)) (*api.WorkerResponse, error) {
	wkey, err := workerKey(req.Pool, req.WorkerID)
	if err != nil {
		return nil, err
	}
	tkey, err := taskKey(req.Pool, req.TaskID)
	if err != nil {
		return nil, err
	}
	out := workerResp(op, req)
	out.FencingToken = req.FencingToken
	keys := [][]byte{wkey, tkey}
	_, err = s.updateKeys(ctx, keys, func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		w, err := decodeJSON[workerRecord](curs[0])
		if err != nil {
			return nil, err
		}
		t, err := decodeJSON[taskRecord](curs[1])
		if err != nil {
			return nil, err
		}
		nw, nt, msg := decide(w, t, nowMs)
		out.Error, out.IsSuccess = msg, msg == ""
		if nw == nil {
			return nil, nil
		}
		return recordOps(keys, map[int]*workerRecord{0: nw}, map[int]*taskRecord{1: nt}, true), nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WorkerStart marks a task of the worker started: it can no longer be
// stolen.
func (s *Service) WorkerStart(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return s.workerTaskStep(ctx, "start", req, func(w *workerRecord, t *taskRecord, nowMs int64) (*workerRecord, *taskRecord, string) {
		return decideTaskStart(w, t, req.WorkerID, req.TaskID, req.FencingToken, nowMs)
	})
}

// WorkerComplete finishes a task of the worker (its record is deleted)
// and frees its capacity.
func (s *Service) WorkerComplete(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return s.workerTaskStep(ctx, "complete", req, func(w *workerRecord, t *taskRecord, nowMs int64) (*workerRecord, *taskRecord, string) {
		return decideTaskFinish(w, t, req.WorkerID, req.TaskID, req.FencingToken, false, "", nowMs)
	})
}

// WorkerFail returns a task of the worker to pending with Error and frees
// its capacity.
func (s *Service) WorkerFail(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	if len(req.Error) > api.MaxWorkerErrorSize {
		return nil, api.Errorf(api.CodeInvalidArgument, "error is %d bytes; the limit is %d", len(req.Error), api.MaxWorkerErrorSize)
	}
	return s.workerTaskStep(ctx, "fail", req, func(w *workerRecord, t *taskRecord, nowMs int64) (*workerRecord, *taskRecord, string) {
		return decideTaskFinish(w, t, req.WorkerID, req.TaskID, req.FencingToken, true, req.Error, nowMs)
	})
}

// WorkerStatus lists a pool's workers (capacity, load, liveness; a dead
// worker shows no load) and counts its unfinished tasks by state.
func (s *Service) WorkerStatus(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	if err := checkPoolName(req.Pool); err != nil {
		return nil, err
	}
	owners, ids, err := s.poolWorkers(ctx, req.Pool)
	if err != nil {
		return nil, err
	}
	now := s.b.NowMs()
	out := workerResp("status", req)
	out.IsSuccess = true
	out.Workers = []api.WorkerInfo{}
	out.Counts = map[string]int{api.WorkerTaskPending: 0, api.WorkerTaskAssigned: 0, api.WorkerTaskStarted: 0}
	for _, id := range ids {
		w := owners.workers[id]
		in := api.WorkerInfo{WorkerID: id, Capacity: w.Capacity, Completed: w.Completed, Live: w.live(now),
			FencingToken: w.FencingToken, TTLMs: w.TTLMs, DeadlineMs: w.DeadlineMs}
		if in.Live {
			in.Load, in.Started = w.Load, w.Started
		}
		out.Workers = append(out.Workers, in)
	}
	err = s.poolTasks(ctx, req.Pool, func(_ string, t *taskRecord) bool {
		out.Counts[effectiveState(t, owners, now)]++
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WorkerTasks lists a pool's unfinished tasks in id order, optionally of
// one state, at most Limit.
func (s *Service) WorkerTasks(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	if err := checkPoolName(req.Pool); err != nil {
		return nil, err
	}
	switch req.State {
	case "", api.WorkerTaskPending, api.WorkerTaskAssigned, api.WorkerTaskStarted:
	default:
		return nil, api.Errorf(api.CodeInvalidArgument, "state is %q; want pending, assigned or started", req.State)
	}
	limit, err := pageLimit(req.Limit, api.DefaultWorkerLimit, api.MaxWorkerList)
	if err != nil {
		return nil, err
	}
	owners, _, err := s.poolWorkers(ctx, req.Pool)
	if err != nil {
		return nil, err
	}
	now := s.b.NowMs()
	out := workerResp("tasks", req)
	out.IsSuccess, out.Tasks = true, []api.WorkerTask{}
	err = s.poolTasks(ctx, req.Pool, func(id string, t *taskRecord) bool {
		if v := t.view(id, owners, now); req.State == "" || v.State == req.State {
			out.Tasks = append(out.Tasks, v)
		}
		return len(out.Tasks) < limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
