package kv

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// SetApplyGate makes ApplyBatch call gate with each batch's last index
// after applying the batch and before any of it becomes visible: before
// ApplyBatch returns its results, before reads, commits and history
// readers see it, and before the applied index moves. consensus passes the
// wait for the Raft log's fsync, so the state machine's work overlaps the
// leader's fsync of the same entries. Call it before the first apply.
func (s *Store) SetApplyGate(gate func(index uint64)) { s.applyGate = gate }

// Apply applies one log; see ApplyBatch.
func (s *Store) Apply(l *raft.Log) interface{} {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies logs in order in the store's pending bbolt write
// transaction together with the new applied index, and returns one result per
// log: a *ApplyResult for each command log applied, nil for a log at or below
// the stored applied index (already applied before a restart) and for
// configuration and other non-command logs, which only advance the applied
// index. A command that fails validation or fails mid-transaction applies
// nothing and reports Err; the other commands of the batch are unaffected.
//
// The pending transaction spans batches (group commit): it is committed when
// a read needs the state it holds, when it has been open for commitInterval or
// holds maxPendingLogs logs, and by Snapshot, Backup and Close. Durability
// does not depend on it (see the package documentation, "Durability").
//
// A storage failure is fatal: Raft already counts the entries as applied, so
// ApplyBatch panics rather than let this replica diverge. On restart the
// entries after the stored applied index are applied again.
//
// With an apply gate (SetApplyGate), the batch is applied first and then
// held until the gate returns: results, reads and events see it only then.
//
// Raft calls ApplyBatch from its FSM goroutine only; reads may run
// concurrently.
func (s *Store) ApplyBatch(logs []*raft.Log) []interface{} {
	results := make([]interface{}, len(logs))
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		for i, l := range logs {
			if l.Type == raft.LogCommand {
				results[i] = &ApplyResult{Err: fmt.Errorf("kv: apply index %d: %w", l.Index, ErrClosed)}
			}
		}
		s.logger.Error("kv apply on a closed store", "logs", len(logs))
		return results
	}
	prev := s.applied.Load()
	last := prev
	for _, l := range logs {
		if l.Index > last {
			last = l.Index
		}
	}
	if last == prev {
		return results // everything already applied
	}
	last = prev
	clock := s.maxNow.Load()
	a := applier{maxNow: clock}

	s.txMu.Lock()
	defer s.txMu.Unlock()
	tx, err := s.pendingTx()
	if err == nil {
		err = func() error {
			a.kv, a.ttl, a.hist = tx.Bucket(bucketKV), tx.Bucket(bucketTTL), history{
				b: tx.Bucket(bucketEvents), meta: tx.Bucket(bucketMeta), retention: s.retention,
			}
			// events are appended in key order: full pages, not the half
			// pages bbolt leaves for random inserts
			a.hist.b.FillPercent = 1.0
			a.kvRead = a.kv.Cursor()
			for i, l := range logs {
				if l.Index <= last {
					continue
				}
				if l.Type == raft.LogCommand {
					a.hist.begin(l.Index)
					res, err := a.applyCommand(l.Index, l.Data)
					if err == nil {
						err = a.hist.compact()
					}
					if err != nil {
						return fmt.Errorf("apply index %d: %w", l.Index, err)
					}
					results[i] = res
				}
				s.pendingLogs++
				last = l.Index
			}
			if err := a.storeClock(tx.Bucket(bucketMeta), clock); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(keyApplied, u64(last))
		}()
	}
	if err != nil {
		s.fatal(fmt.Sprintf("kv: apply indexes %d..%d to %s: %v", prev+1, last, s.path, err))
	}
	if s.applyGate != nil {
		// still holding txMu: no read, commit or event sees the batch yet
		s.applyGate(last)
	}
	s.maxNow.Store(a.maxNow)
	s.setApplied(last)
	if s.pendingLogs >= maxPendingLogs || time.Since(s.pendingSince) >= commitInterval {
		s.commitPending()
	}
	return results
}

// pendingTx returns the pending write transaction, beginning one (and
// scheduling its commit) when none is open. The caller holds s.mu shared and
// s.txMu.
func (s *Store) pendingTx() (*bbolt.Tx, error) {
	if s.wtx != nil {
		return s.wtx, nil
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, fmt.Errorf("begin write transaction: %w", err)
	}
	s.wtx, s.pendingLogs, s.pendingSince = tx, 0, time.Now()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return tx, nil
}

// commitPending commits the pending write transaction, if any, making the
// applied state visible to new read transactions. The caller holds s.mu
// shared (or exclusively) and s.txMu. A failed commit is fatal (see
// ApplyBatch).
func (s *Store) commitPending() {
	if s.wtx == nil {
		return
	}
	tx := s.wtx
	s.wtx = nil
	if err := tx.Commit(); err != nil {
		s.fatal(fmt.Sprintf("kv: commit indexes up to %d to %s: %v", s.applied.Load(), s.path, err))
	}
	s.committed.Store(s.applied.Load())
	s.wake()
}

// flush commits the pending write transaction unless the file already holds
// everything applied. The caller holds s.mu (shared or exclusively) with s.db
// open.
func (s *Store) flush() {
	if s.committed.Load() == s.applied.Load() {
		return
	}
	s.txMu.Lock()
	s.commitPending()
	s.txMu.Unlock()
}

// flushLoop commits a pending write transaction commitInterval after it
// began if nothing else has, so that an idle store holds no uncommitted state.
func (s *Store) flushLoop() {
	for {
		select {
		case <-s.closed:
			return
		case <-s.kick:
		}
		t := time.NewTimer(commitInterval)
		select {
		case <-s.closed:
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.RLock()
		if s.db != nil {
			s.flush()
		}
		s.mu.RUnlock()
	}
}

// fatal logs msg and panics: the applied state can no longer reach the file.
func (s *Store) fatal(msg string) {
	s.logger.Error("kv apply failed; stopping", "error", msg)
	panic(msg)
}

// applier applies commands inside one bbolt write transaction, recording
// every change in the history.
type applier struct {
	kv, ttl *bbolt.Bucket
	kvRead  *bbolt.Cursor // reads of kv for the whole batch (Bucket.Get makes a cursor per call)
	hist    history
	nowMs   int64 // time of the command being applied: max(its NowMs, maxNow before it)
	maxNow  int64 // the state machine clock (Store.MaxNowMs) as of the command being applied
}

// applyCommand decodes, validates and applies one command. A returned error is
// a storage failure that must abort the whole batch; a bad command yields an
// ApplyResult with Err.
func (a *applier) applyCommand(index uint64, data []byte) (*ApplyResult, error) {
	cmd, err := DecodeCommand(data)
	if err != nil {
		return &ApplyResult{Err: api.Errorf(api.CodeInvalidArgument, "command at index %d: %v", index, err)}, nil
	}
	if err := validateCommand(cmd); err != nil {
		return &ApplyResult{Err: err}, nil
	}
	a.nowMs = a.advanceClock(cmd.NowMs)
	if cmd.Txn != nil {
		n := len(cmd.Txn.Success) // usually the number of keys read and written
		o := &overlay{kv: a.kv, read: a.kvRead, nowMs: a.nowMs, index: index,
			writes: make(map[string]*record, n), stored: make(map[string]*record, n)}
		resp, opErr, err := o.txn(cmd.Txn)
		if err != nil {
			return nil, err
		}
		if opErr != nil {
			return &ApplyResult{Err: opErr}, nil
		}
		if err := a.commit(o); err != nil {
			return nil, err
		}
		return &ApplyResult{Txn: resp}, nil
	}
	n, err := a.expire(a.nowMs, cmd.Expire)
	if err != nil {
		return nil, err
	}
	return &ApplyResult{Expired: n}, nil
}

// expire deletes each key whose record still has the given ModRevision and is
// expired at nowMs, and returns how many it deleted.
func (a *applier) expire(nowMs int64, keys []ExpiredKey) (int, error) {
	n := 0
	for _, e := range keys {
		raw := lookup(a.kvRead, e.Key)
		if raw == nil {
			continue
		}
		r, err := decodeRecord(e.Key, raw)
		if err != nil {
			return n, err
		}
		if r.ModRevision != e.ModRevision || r.live(nowMs) {
			continue
		}
		if err := a.write(string(e.Key), nil, r); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// commit writes the pending writes of a transaction in key order.
func (a *applier) commit(o *overlay) error {
	keys := make([]string, 0, len(o.writes))
	for k := range o.writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		old, err := o.storedRecord([]byte(k)) // read by the transaction already: no second lookup
		if err != nil {
			return err
		}
		if err := a.write(k, o.writes[k], old); err != nil {
			return err
		}
	}
	return nil
}

// write stores r under key (nil r deletes it) in place of old, the record
// stored there (nil = none), keeping the TTL index in step and recording the
// change in the history: a put event for every r, a delete event when a
// stored record (live or expired) is removed.
func (a *applier) write(key string, r, old *record) error {
	k := []byte(key)
	ev := &storedEvent{Kind: EventPut, Key: k}
	if r == nil {
		ev.Kind = EventDelete
	}
	if old != nil {
		if r == nil || old.live(a.nowMs) {
			ev.Prev, ev.HasPrev = old.Value, true
		}
		if old.ExpiresAtMs != 0 {
			if err := a.ttl.Delete(ttlKey(old.ExpiresAtMs, k)); err != nil {
				return fmt.Errorf("kv: delete ttl entry of key %q: %w", k, err)
			}
		}
		if r == nil {
			if err := a.kv.Delete(k); err != nil {
				return fmt.Errorf("kv: delete key %q: %w", k, err)
			}
			return a.hist.record(ev)
		}
	}
	if r == nil {
		return nil // deleting an absent key changes nothing
	}
	ev.Value = r.Value
	if err := a.hist.record(ev); err != nil {
		return err
	}
	b, err := encodeRecord(r)
	if err != nil {
		return err
	}
	if err := a.kv.Put(k, b); err != nil {
		return fmt.Errorf("kv: put key %q: %w", k, err)
	}
	if r.ExpiresAtMs != 0 {
		if err := a.ttl.Put(ttlKey(r.ExpiresAtMs, k), []byte{}); err != nil {
			return fmt.Errorf("kv: put ttl entry of key %q: %w", k, err)
		}
	}
	return nil
}

// overlay is the view of one transaction: its pending writes over the bucket.
// Nothing reaches the bucket until the whole transaction succeeded.
type overlay struct {
	kv     *bbolt.Bucket
	read   *bbolt.Cursor // over kv
	nowMs  int64
	index  uint64
	writes map[string]*record // nil = deleted
	stored map[string]*record // records read from the bucket (nil = absent), decoded once
}

// lookup is Bucket.Get through a cursor kept for many lookups: the value
// of key in the cursor's bucket, or nil. The cursor is positioned anew for
// each lookup, so writes to the bucket in between do not matter.
func lookup(c *bbolt.Cursor, key []byte) []byte {
	k, v := c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// storedRecord returns the record of key in the bucket (live or expired),
// or nil, reading and decoding it at most once per transaction.
func (o *overlay) storedRecord(key []byte) (*record, error) {
	if r, ok := o.stored[string(key)]; ok {
		return r, nil
	}
	var r *record
	if raw := lookup(o.read, key); raw != nil {
		var err error
		if r, err = decodeRecord(key, raw); err != nil {
			return nil, err
		}
	}
	o.stored[string(key)] = r
	return r, nil
}

// get returns the live record of key, or nil.
func (o *overlay) get(key []byte) (*record, error) {
	r, ok := o.writes[string(key)]
	if !ok {
		var err error
		if r, err = o.storedRecord(key); err != nil {
			return nil, err
		}
	}
	if r == nil || !r.live(o.nowMs) {
		return nil, nil
	}
	return r, nil
}

// put records a write of value to key and returns the new record.
func (o *overlay) put(key, value []byte, ttlMs int64) (*record, error) {
	old, err := o.get(key)
	if err != nil {
		return nil, err
	}
	if value == nil {
		value = []byte{}
	}
	r := &record{Value: value, Version: 1, CreateRevision: o.index, ModRevision: o.index}
	if old != nil {
		r.Version = old.Version + 1
		r.CreateRevision = old.CreateRevision
	}
	if ttlMs > 0 {
		r.ExpiresAtMs = o.nowMs + ttlMs // validateCommand bounds NowMs so this cannot overflow
	}
	o.writes[string(key)] = r
	return r, nil
}

// txn evaluates t. opErr (an *api.Error) means an operation failed and the
// transaction must apply nothing; err is a storage failure.
func (o *overlay) txn(t *api.TxnRequest) (resp *api.TxnResponse, opErr, err error) {
	resp = &api.TxnResponse{Succeeded: true, FailedCompare: -1, Revision: o.index}
	for i := range t.Compares {
		c := &t.Compares[i]
		r, err := o.get(c.Key)
		if err != nil {
			return nil, nil, err
		}
		if !compareHolds(c, r) {
			resp.Succeeded, resp.FailedCompare = false, i
			break
		}
	}
	branch, name := t.Success, "success"
	if !resp.Succeeded {
		branch, name = t.Failure, "failure"
	}
	if len(branch) > 0 {
		resp.Results = make([]api.TxnOpResult, len(branch))
	}
	for i := range branch {
		res, opErr, err := o.op(&branch[i])
		if err != nil || opErr != nil {
			if opErr != nil {
				opErr = api.Errorf(api.CodeInvalidArgument, "%s[%d] (%s %q): %s", name, i, branch[i].Kind, branch[i].Key, opErr.Error())
			}
			return nil, opErr, err
		}
		resp.Results[i] = res
	}
	return resp, nil, nil
}

// op runs one operation against the overlay.
func (o *overlay) op(op *api.TxnOp) (res api.TxnOpResult, opErr, err error) {
	res.Kind = op.Kind
	switch op.Kind {
	case api.TxnPut:
		_, err = o.put(op.Key, op.Value, op.TTLMs)
	case api.TxnDelete:
		var r *record
		if r, err = o.get(op.Key); err == nil {
			if r != nil {
				res.Deleted = 1
			}
			o.writes[string(op.Key)] = nil
		}
	case api.TxnDeleteRange:
		var keys []string
		err = scanLive(o.kv, o.writes, op.Key, nil, o.nowMs, func(k []byte, _ *record) (bool, error) {
			keys = append(keys, string(k))
			return true, nil
		})
		for _, k := range keys {
			o.writes[k] = nil
		}
		res.Deleted = int64(len(keys))
	case api.TxnGet:
		var r *record
		if r, err = o.get(op.Key); err == nil && r != nil {
			res.KVs = []api.KeyValue{r.toKV(op.Key)}
		}
	case api.TxnRange:
		limit := clampLimit(op.Limit)
		err = scanLive(o.kv, o.writes, op.Key, nil, o.nowMs, func(k []byte, r *record) (bool, error) {
			if len(res.KVs) == limit {
				res.More = true
				return false, nil
			}
			res.KVs = append(res.KVs, r.toKV(k))
			return true, nil
		})
	case api.TxnAdd:
		var r *record
		if r, err = o.get(op.Key); err != nil {
			break
		}
		var cur int64
		if r != nil {
			if cur, err = strconv.ParseInt(string(r.Value), 10, 64); err != nil {
				return res, fmt.Errorf("value %q is not a decimal int64", truncate(r.Value)), nil
			}
		}
		if (op.Delta > 0 && cur > math.MaxInt64-op.Delta) || (op.Delta < 0 && cur < math.MinInt64-op.Delta) {
			return res, fmt.Errorf("%d + %d overflows int64", cur, op.Delta), nil
		}
		if r, err = o.put(op.Key, []byte(strconv.FormatInt(cur+op.Delta, 10)), op.TTLMs); err == nil {
			res.KVs = []api.KeyValue{r.toKV(op.Key)}
		}
	default:
		// ValidateTxn rejects unknown kinds before evaluation.
		return res, fmt.Errorf("unknown kind %q", op.Kind), nil
	}
	return res, nil, err
}

func truncate(v []byte) []byte {
	const n = 32
	if len(v) > n {
		return v[:n]
	}
	return v
}

// compareHolds reports whether c holds for r (nil = absent). An absent key has
// version and revisions 0 and never satisfies a value comparison.
func compareHolds(c *api.Compare, r *record) bool {
	var cmp int
	switch c.Target {
	case api.TargetValue:
		if r == nil {
			return false
		}
		cmp = bytes.Compare(r.Value, c.Value)
	case api.TargetVersion:
		var v int64
		if r != nil {
			v = r.Version
		}
		cmp = cmpInt(v, c.Number)
	case api.TargetCreateRevision, api.TargetModRevision:
		var v uint64
		if r != nil {
			v = r.CreateRevision
			if c.Target == api.TargetModRevision {
				v = r.ModRevision
			}
		}
		cmp = cmpUint(v, c.Number)
	default:
		return false
	}
	switch c.Result {
	case api.Equal:
		return cmp == 0
	case api.NotEqual:
		return cmp != 0
	case api.Less:
		return cmp < 0
	case api.Greater:
		return cmp > 0
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpUint compares a revision with a signed number without overflow.
func cmpUint(a uint64, b int64) int {
	if b < 0 {
		return 1
	}
	switch ub := uint64(b); {
	case a < ub:
		return -1
	case a > ub:
		return 1
	}
	return 0
}
