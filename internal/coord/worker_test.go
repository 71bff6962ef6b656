package coord

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
)

// workerSim applies the worker decisions to an in-memory pool, as the
// service's transactions would.
type workerSim struct {
	t       *testing.T
	now     int64
	workers map[string]*workerRecord
	seq     uint64 // the pool's token counter
	done    int    // tasks completed
	tasks   map[string]*taskRecord
	ids     []string // task ids in submission (= key) order
}

func newWorkerSim(t *testing.T) *workerSim {
	return &workerSim{t: t, now: 1_000, workers: map[string]*workerRecord{}, tasks: map[string]*taskRecord{}}
}

func (s *workerSim) register(id string, capacity int, ttl int64) uint64 {
	w := decideWorkerRegister(s.workers[id], s.seq, capacity, ttl, s.now)
	if w.FencingToken <= s.seq {
		s.t.Fatalf("register %s: token %d repeats (counter %d)", id, w.FencingToken, s.seq)
	}
	s.workers[id], s.seq = w, w.FencingToken
	return w.FencingToken
}

// owners is the snapshot the service's scans would take.
func (s *workerSim) owners() *poolOwners { return &poolOwners{workers: s.workers, seq: s.seq} }

// change heartbeats or deregisters id; a deregistration that says gone
// deletes the record.
func (s *workerSim) change(id, op string, token uint64) string {
	nw, gone, msg := decideWorkerChange(s.workers[id], id, op, token, s.now)
	switch {
	case msg != "":
	case gone:
		delete(s.workers, id)
	default:
		s.workers[id] = nw
	}
	return msg
}

// prune deletes the prunable worker records, as the service's pruning
// step would, and returns their ids.
func (s *workerSim) prune() []string {
	ids := slices.Sorted(maps.Keys(s.workers))
	got := prunable(s.owners(), ids, s.list(), s.now)
	before := map[string]string{}
	for tid, t := range s.tasks {
		before[tid] = effectiveState(t, s.owners(), s.now)
	}
	for _, id := range got {
		w := s.workers[id]
		if !decidePrune(w, w.FencingToken, s.now) {
			s.t.Fatalf("prunable %s is not deletable", id)
		}
		for tid, t := range s.tasks {
			if t.State != api.WorkerTaskPending && t.Worker == id && t.Token == w.FencingToken {
				s.t.Fatalf("pruned worker %s although task %s holds its token %d", id, tid, w.FencingToken)
			}
		}
		delete(s.workers, id)
	}
	for tid, t := range s.tasks { // deleting dead records changes no task's state
		if st := effectiveState(t, s.owners(), s.now); st != before[tid] {
			s.t.Fatalf("pruning moved task %s from %s to %s", tid, before[tid], st)
		}
	}
	return got
}

func (s *workerSim) submit(n int) {
	for range n {
		id := fmt.Sprintf("t%04d", len(s.ids))
		s.ids = append(s.ids, id)
		s.tasks[id] = &taskRecord{State: api.WorkerTaskPending, SubmittedAtMs: s.now}
	}
}

func (s *workerSim) list() []*taskRecord {
	out := make([]*taskRecord, len(s.ids))
	for i, id := range s.ids {
		out[i] = s.tasks[id] // nil once completed
	}
	return out
}

func (s *workerSim) claim(id string, token uint64, max int) ([]string, string) {
	nw, took, next, msg := decideClaim(s.workers[id], id, token, s.list(), s.owners(), max, s.now)
	if msg != "" {
		return nil, msg
	}
	s.workers[id] = nw
	var got []string
	for _, i := range took {
		s.tasks[s.ids[i]] = next[i]
		got = append(got, s.ids[i])
	}
	return got, ""
}

// assign runs decidePlace over the workers ids; scanned overrides the
// token the scan saw for some of them.
func (s *workerSim) assign(ids []string, scanned map[string]uint64, max int) []string {
	targets := make([]placeTarget, len(ids))
	for k, id := range ids {
		tok, ok := scanned[id]
		if w := s.workers[id]; !ok && w != nil {
			tok = w.FencingToken
		}
		targets[k] = placeTarget{id, tok, s.workers[id]}
	}
	// Tasks follow the targets in the key order, as in the service.
	tasks := append(make([]*taskRecord, len(ids)), s.list()...)
	nextW, took, next := decidePlace(targets, tasks, s.owners(), max, s.now)
	for k, w := range nextW {
		s.workers[ids[k]] = w
	}
	var got []string
	for _, i := range took {
		id := s.ids[i-len(ids)]
		s.tasks[id] = next[i]
		got = append(got, id+"@"+next[i].Worker)
	}
	return got
}

func (s *workerSim) steal(thief string, token uint64, victim string, max int) []string {
	v := s.workers[victim]
	nth, nv, took, next, msg := decideSteal(s.workers[thief], thief, token, v, victim, v.FencingToken, s.list(), max, s.now)
	if msg != "" {
		s.t.Fatalf("steal by %s: %s", thief, msg)
	}
	s.workers[thief], s.workers[victim] = nth, nv
	var got []string
	for _, i := range took {
		s.tasks[s.ids[i]] = next[i]
		got = append(got, s.ids[i])
	}
	return got
}

func (s *workerSim) finish(id string, token uint64, task string, fail bool) string {
	nw, nt, msg := decideTaskFinish(s.workers[id], s.tasks[task], id, task, token, fail, "boom", s.now)
	if msg != "" {
		return msg
	}
	s.workers[id] = nw
	if nt == nil {
		s.done++
		delete(s.tasks, task)
	} else {
		s.tasks[task] = nt
	}
	return ""
}

func (s *workerSim) start(id string, token uint64, task string) string {
	nw, nt, msg := decideTaskStart(s.workers[id], s.tasks[task], id, task, token, s.now)
	if msg != "" || nw == nil {
		return msg
	}
	s.workers[id], s.tasks[task] = nw, nt
	return ""
}

// check asserts every live worker's load and started counts equal the
// tasks it holds and never exceed its capacity.
func (s *workerSim) check() {
	s.t.Helper()
	load, started := map[string]int{}, map[string]int{}
	for _, t := range s.tasks {
		if t.State == api.WorkerTaskPending || ownerDead(t, s.owners(), s.now) {
			continue
		}
		load[t.Worker]++
		if t.State == api.WorkerTaskStarted {
			started[t.Worker]++
		}
	}
	for id, w := range s.workers {
		if !w.live(s.now) {
			continue
		}
		if w.Load != load[id] || w.Started != started[id] {
			s.t.Fatalf("worker %s: record load %d started %d, holds %d started %d", id, w.Load, w.Started, load[id], started[id])
		}
		if w.Load > w.Capacity {
			s.t.Fatalf("worker %s: load %d exceeds capacity %d", id, w.Load, w.Capacity)
		}
	}
}

func TestDecideWorkerClaimRespectsCapacity(t *testing.T) {
	s := newWorkerSim(t)
	a := s.register("a", 3, 10_000)
	s.submit(10)
	got, msg := s.claim("a", a, 16)
	if msg != "" || strings.Join(got, ",") != "t0000,t0001,t0002" {
		t.Fatalf("claim = %v %q; want the first 3 tasks", got, msg)
	}
	if got, _ := s.claim("a", a, 16); len(got) != 0 {
		t.Fatalf("claim at capacity took %v", got)
	}
	if msg := s.finish("a", a, "t0001", false); msg != "" {
		t.Fatal(msg)
	}
	if got, _ := s.claim("a", a, 16); strings.Join(got, ",") != "t0003" {
		t.Fatalf("claim after one completion = %v; want t0003", got)
	}
	if s.workers["a"].Completed != 1 {
		t.Fatalf("completed = %d", s.workers["a"].Completed)
	}
	s.check()
}

// TestDecideWorkerRandom drives random claims, steals, starts, completions,
// failures, expiries, deregistrations, prunes and re-registrations: no live
// worker ever holds more than its capacity, every record's load matches its
// tasks, no token repeats (register) and pruning changes no task's state
// (prune).
func TestDecideWorkerRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := newWorkerSim(t)
	names := []string{"a", "b", "c", "d"}
	tokens := map[string]uint64{}
	for i, n := range names {
		tokens[n] = s.register(n, i+1, 5_000)
	}
	s.submit(200)
	stolen, pruned := 0, 0
	for range 5_000 {
		n := names[r.IntN(len(names))]
		switch r.IntN(11) {
		case 9:
			if w := s.workers[n]; w != nil && r.IntN(3) == 0 {
				s.change(n, "deregister", w.FencingToken)
			}
		case 10:
			pruned += len(s.prune())
		case 8:
			s.assign(names, nil, 1+r.IntN(16))
		case 0, 1:
			s.claim(n, tokens[n], 1+r.IntN(16))
		case 2:
			v := names[r.IntN(len(names))]
			if v != n && s.workers[v].live(s.now) && s.workers[n].live(s.now) {
				before := s.workers[v].Load - s.workers[v].Started
				got := s.steal(n, tokens[n], v, 1+r.IntN(16))
				if len(got) > before/2 {
					t.Fatalf("stole %d of %d queued tasks", len(got), before)
				}
				stolen += len(got)
			}
		case 3, 4:
			for id, tk := range s.tasks {
				if tk.Worker == n && tk.Token == tokens[n] {
					s.finish(n, tokens[n], id, r.IntN(4) == 0)
					break
				}
			}
		case 5:
			for id, tk := range s.tasks {
				if tk.Worker == n && tk.Token == tokens[n] {
					s.start(n, tokens[n], id)
					break
				}
			}
		case 6:
			s.now += int64(r.IntN(2_000))
			s.change(n, "heartbeat", tokens[n])
		case 7:
			if !s.workers[n].live(s.now) {
				tokens[n] = s.register(n, 1+r.IntN(4), 5_000)
			}
		}
		s.check()
	}
	if stolen == 0 || s.done < 50 || pruned < 10 {
		t.Fatalf("the walk stole %d, completed %d tasks and pruned %d workers; too few to mean anything", stolen, s.done, pruned)
	}
}

func TestDecideWorkerDeadTasksReclaimed(t *testing.T) {
	s := newWorkerSim(t)
	a := s.register("a", 2, 1_000)
	b := s.register("b", 4, 100_000)
	s.submit(3)
	s.claim("a", a, 2)
	if msg := s.start("a", a, "t0000"); msg != "" {
		t.Fatal(msg)
	}
	if got, _ := s.claim("b", b, 4); strings.Join(got, ",") != "t0002" {
		t.Fatalf("b claimed %v while a is live; want only t0002", got)
	}
	s.now += 1_000 // a's deadline passes: started or not, its tasks are free
	if nw, _, msg := decideWorkerChange(s.workers["a"], "a", "heartbeat", a, s.now); nw != nil || !strings.Contains(msg, "expired") {
		t.Fatalf("heartbeat of an expired worker = %v %q", nw, msg)
	}
	if got, _ := s.claim("b", b, 4); strings.Join(got, ",") != "t0000,t0001" {
		t.Fatalf("b claimed %v after a expired; want t0000,t0001", got)
	}
	if s.tasks["t0000"].Attempts != 2 {
		t.Fatalf("attempts = %d, want 2", s.tasks["t0000"].Attempts)
	}
	if msg := s.finish("a", a, "t0000", false); msg == "" {
		t.Fatal("the expired worker completed a reclaimed task")
	}
	s.check()

	// Re-registering ends the earlier registration's hold too.
	c := s.register("c", 1, 100_000)
	s.submit(1) // t0003
	s.claim("c", c, 1)
	c2 := s.register("c", 1, 100_000)
	if c2 <= c {
		t.Fatalf("re-registration token %d, not > %d", c2, c)
	}
	if msg := s.finish("c", c, "t0003", false); !strings.Contains(msg, "fencing token mismatch") {
		t.Fatalf("complete with the stale token = %q", msg)
	}
	if got, _ := s.claim("c", c2, 1); strings.Join(got, ",") != "t0003" {
		t.Fatalf("c's new registration claimed %v; want its old task t0003", got)
	}
	// Deregistering frees them as well.
	if msg := s.change("c", "deregister", c2); msg != "" {
		t.Fatal(msg)
	}
	if !claimable(s.tasks["t0003"], s.owners(), s.now) {
		t.Fatal("a deregistered worker's task is not claimable")
	}
	s.check()
}

func TestDecideWorkerStaleToken(t *testing.T) {
	s := newWorkerSim(t)
	a := s.register("a", 2, 10_000)
	s.submit(1)
	if _, msg := s.claim("a", a+1, 1); !strings.Contains(msg, "fencing token mismatch") {
		t.Fatalf("claim with a wrong token = %q", msg)
	}
	s.claim("a", a, 1)
	for _, f := range []func() string{
		func() string { return s.start("a", a+1, "t0000") },
		func() string { return s.finish("a", a+1, "t0000", false) },
		func() string { return s.finish("a", a+1, "t0000", true) },
		func() string { return s.change("a", "heartbeat", a+1) },
	} {
		if msg := f(); !strings.Contains(msg, "fencing token mismatch") {
			t.Fatalf("got %q; want a token mismatch", msg)
		}
	}
	b := s.register("b", 2, 10_000)
	if msg := s.finish("b", b, "t0000", false); !strings.Contains(msg, "not assigned to worker b") {
		t.Fatalf("another worker completed a's task: %q", msg)
	}
	if msg := s.finish("a", a, "t0000", true); msg != "" {
		t.Fatal(msg)
	}
	if tk := s.tasks["t0000"]; tk.State != api.WorkerTaskPending || tk.LastError != "boom" || tk.Attempts != 1 {
		t.Fatalf("failed task = %+v", tk)
	}
	s.check()
}

func TestDecideWorkerStealBound(t *testing.T) {
	s := newWorkerSim(t)
	v := s.register("v", 10, 10_000)
	s.submit(10)
	s.claim("v", v, 10)
	s.start("v", v, "t0000")
	s.start("v", v, "t0001")
	// 8 queued: at most 4 may go, and only to a thief with room.
	small := s.register("small", 3, 10_000)
	if got := s.steal("small", small, "v", 16); len(got) != 3 {
		t.Fatalf("thief of capacity 3 stole %v", got)
	}
	big := s.register("big", 16, 10_000)
	got := s.steal("big", big, "v", 16)
	// 5 queued left: half is 2.
	if len(got) != 2 {
		t.Fatalf("second thief stole %v; want 2 of the 5 queued", got)
	}
	for _, id := range got {
		if id == "t0000" || id == "t0001" {
			t.Fatalf("stole started task %s", id)
		}
	}
	if g := s.steal("big", big, "v", 1); len(g) != 1 {
		t.Fatalf("max 1 stole %v", g)
	}
	// 2 queued left: 1 may go; then 1 queued: none.
	s.steal("big", big, "v", 16)
	if g := s.steal("big", big, "v", 16); len(g) != 0 {
		t.Fatalf("stole %v from a victim with one queued task", g)
	}
	if stealBound(&workerRecord{Capacity: 100}, &workerRecord{Load: 100}, 50) != api.MaxWorkerClaim {
		t.Fatal("steal not bounded by MaxWorkerClaim")
	}
	s.check()
}

func TestDecideWorkerPlaceLeastLoaded(t *testing.T) {
	s := newWorkerSim(t)
	s.register("x", 2, 10_000)
	s.register("y", 4, 10_000)
	z := s.register("z", 4, 10_000)
	s.submit(8)
	s.register("z", 4, 10_000) // re-registered since the scan saw token z
	got := s.assign([]string{"x", "y", "z"}, map[string]uint64{"z": z}, 16)
	want := "t0000@x,t0001@y,t0002@y,t0003@x,t0004@y,t0005@y"
	if strings.Join(got, ",") != want {
		t.Fatalf("assign = %v; want %s (z's scanned token is stale)", got, want)
	}
	if got := s.assign([]string{"x", "y"}, nil, 16); len(got) != 0 {
		t.Fatalf("assign with every worker full = %v", got)
	}
	s.check()
}

// TestDecideWorkerDeleteAndReregister: a deregistration without tasks
// deletes the record, one with tasks keeps it (dead) until they are
// reclaimed and pruning deletes it; a task of a deleted worker stays
// claimable and a re-registration of a deleted id gets a token larger
// than any the pool issued.
func TestDecideWorkerDeleteAndReregister(t *testing.T) {
	s := newWorkerSim(t)
	a := s.register("a", 1, 10_000)
	if msg := s.change("a", "deregister", a); msg != "" || s.workers["a"] != nil {
		t.Fatalf("deregister without tasks = %q, record %+v; want it deleted", msg, s.workers["a"])
	}
	b := s.register("b", 2, 1_000)
	a2 := s.register("a", 1, 10_000)
	if a2 <= b {
		t.Fatalf("re-registered a got token %d; want > %d, the largest issued", a2, b)
	}
	s.submit(2)
	s.claim("b", b, 2)
	if msg := s.change("b", "deregister", b); msg != "" || s.workers["b"] == nil {
		t.Fatalf("deregister with tasks = %q, record %+v; want it kept", msg, s.workers["b"])
	}
	if got := s.prune(); len(got) != 0 {
		t.Fatalf("pruned %v while b's tasks still name it", got)
	}
	if got, _ := s.claim("a", a2, 1); strings.Join(got, ",") != "t0000" {
		t.Fatalf("a claimed %v; want b's t0000", got)
	}
	if got := s.prune(); len(got) != 0 {
		t.Fatalf("pruned %v while t0001 still names b", got)
	}
	if msg := s.finish("a", a2, "t0000", false); msg != "" {
		t.Fatal(msg)
	}
	// An expired worker is prunable too; b's t0001 keeps b until claimed.
	c := s.register("c", 1, 500)
	s.now += 1_000
	if got := s.prune(); strings.Join(got, ",") != "c" {
		t.Fatalf("pruned %v; want only c", got)
	}
	if got, _ := s.claim("a", a2, 1); strings.Join(got, ",") != "t0001" {
		t.Fatalf("a claimed %v; want b's t0001", got)
	}
	if got := s.prune(); strings.Join(got, ",") != "b" {
		t.Fatalf("pruned %v; want b", got)
	}
	// t0001 now names a; a task naming a deleted worker's token is free.
	s.tasks["t0001"].Worker, s.tasks["t0001"].Token = "b", b
	if !claimable(s.tasks["t0001"], s.owners(), s.now) {
		t.Fatal("a task of a deleted worker is not claimable")
	}
	// A worker missing from a snapshot older than its token is live.
	if claimable(&taskRecord{State: api.WorkerTaskAssigned, Worker: "z", Token: s.seq + 1}, s.owners(), s.now) {
		t.Fatal("a task of a worker registered after the snapshot is claimable")
	}
	for _, id := range []string{"b", "c"} {
		if tok := s.register(id, 1, 1_000); tok <= c {
			t.Fatalf("re-registered %s got token %d; want > %d", id, tok, c)
		}
	}
}

// TestDecideWorkerPoolOutlivesLimit registers three times MaxWorkersPerPool
// distinct ids that each take a task and die, pruning when the pool is at
// the limit, as registration does: the pool never holds more than the
// limit, every token is new and every task is still done.
func TestDecideWorkerPoolOutlivesLimit(t *testing.T) {
	s := newWorkerSim(t)
	s.submit(3 * api.MaxWorkersPerPool)
	keep := s.register("keeper", api.MaxWorkerCapacity, 1<<40)
	seen := map[uint64]bool{keep: true}
	for i := range 3 * api.MaxWorkersPerPool {
		if len(s.workers) >= api.MaxWorkersPerPool && len(s.prune()) == 0 {
			t.Fatalf("pool at the limit with nothing to prune after %d ids", i)
		}
		id := fmt.Sprintf("pod-%d", i)
		tok := s.register(id, 1, 10)
		if seen[tok] {
			t.Fatalf("token %d issued twice", tok)
		}
		seen[tok] = true
		s.claim(id, tok, 1)
		if i%2 == 0 {
			s.change(id, "deregister", tok)
		}
		s.now += 10 // the pod dies with its task
		// Now and then the keeper reclaims and finishes what pods left.
		if i%100 == 99 {
			for {
				got, _ := s.claim("keeper", keep, 16)
				if len(got) == 0 {
					break
				}
				for _, tid := range got {
					s.finish("keeper", keep, tid, false)
				}
			}
		}
		s.check()
	}
	if len(s.workers) > api.MaxWorkersPerPool {
		t.Fatalf("pool holds %d worker records; the limit is %d", len(s.workers), api.MaxWorkersPerPool)
	}
	if s.done < 2*api.MaxWorkersPerPool {
		t.Fatalf("only %d tasks done", s.done)
	}
}
