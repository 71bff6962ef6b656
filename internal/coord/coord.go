// Package coord owns the coordination primitives served by a node: locks
// with fencing tokens and lock sets, unsigned and signed counters,
// sequences, semaphores, token-bucket rate limiters, read/write locks,
// queues, barriers, the service registry, leases and the worker
// coordinator (pools of workers with capacity-bounded task placement and
// work stealing), kept in keys of the replicated key/value store under a
// "__coord:" prefix.
//
// Every operation is one state-machine transaction or a bounded
// compare-and-swap loop run on the leader (see DESIGN.md): read the record
// linearizably, decide with a pure function, write with a compare on the
// record's mod_revision. The package never reads-then-writes from a client
// and never touches Raft, QUIC or the store directly: it talks to a Backend.
package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"unicode/utf8"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// Key prefixes of the primitives' records.
const (
	PrefixLock          = "__coord:lock:"
	PrefixCounter       = "__coord:counter:"
	PrefixSignedCounter = "__coord:scounter:"
	PrefixSequence      = "__coord:seq:"
	PrefixSemaphore     = "__coord:sem:"
	PrefixRateLimit     = "__coord:ratelimit:"
	PrefixRWLock        = "__coord:rwlock:"
	PrefixQueue         = "__coord:queue:"
	PrefixLease         = "__coord:lease:"
	PrefixLeaseKey      = "__coord:leasekey:"
)

// Backend is what the service needs from a node. Handlers call it from the
// RPC server's goroutines, concurrently.
//
// Read and Txn succeed only on the leader: on a follower they return an
// *api.Error with code NOT_LEADER, which the RPC layer turns into a
// forward of the whole request to the leader. Read is linearizable (a read
// fence, then the local replica). NowMs is the local wall clock in unix
// milliseconds; since every handler starts with Read or Txn, the value
// used to decide is the leader's clock.
type Backend interface {
	// Read returns the live record of key, or nil when it is absent.
	Read(ctx context.Context, key []byte) (*api.KeyValue, error)
	// ReadKeys is Read of several keys behind one read fence: the records
	// (nil when absent) in the order of keys.
	ReadKeys(ctx context.Context, keys [][]byte) ([]*api.KeyValue, error)
	// Txn replicates txn and returns its outcome. A failed operation inside
	// the state machine (e.g. an add that overflows int64) is an *api.Error
	// with code INVALID_ARGUMENT and changes nothing.
	Txn(ctx context.Context, txn *api.TxnRequest) (*api.TxnResponse, error)
	// Scan returns up to limit live records with prefix, strictly after
	// after when it is non-nil, in ascending key order, read linearizably
	// like Read; more reports whether further keys remain.
	Scan(ctx context.Context, prefix, after []byte, limit int) (kvs []api.KeyValue, more bool, err error)
	// NowMs is the wall clock, unix milliseconds.
	NowMs() int64
}

// maxAttempts bounds the compare-and-swap loop of one operation.
const maxAttempts = 16

// stripes serialise read-decide-write steps on the same key within this
// node, so that concurrent requests for one record on the leader queue up
// instead of failing each other's compares. Correctness never depends on
// them: the compare on mod_revision does that.
const stripes = 256

// Service serves the coordination operations. It is safe for concurrent use.
type Service struct {
	b        Backend
	reserved [][]byte
	seed     maphash.Seed
	stripes  [stripes]chan struct{}
}

// New returns a service over b. reserved are the key prefixes of system and
// service state that lease.put refuses to write as user keys.
func New(b Backend, reserved [][]byte) *Service {
	s := &Service{b: b, reserved: reserved, seed: maphash.MakeSeed()}
	for i := range s.stripes {
		s.stripes[i] = make(chan struct{}, 1)
	}
	return s
}

// Register adds the service's operations to reg.
func (s *Service) Register(reg *rpc.Registry) {
	rpc.Handle(reg, api.OpLockTryAcquire, s.LockTryAcquire)
	rpc.Handle(reg, api.OpLockRelease, s.LockRelease)
	rpc.Handle(reg, api.OpLockRenew, s.LockRenew)
	rpc.Handle(reg, api.OpLockStatus, s.LockStatus)
	rpc.Handle(reg, api.OpLockSetTryAcquire, s.LockSetTryAcquire)
	rpc.Handle(reg, api.OpLockSetRelease, s.LockSetRelease)
	rpc.Handle(reg, api.OpLockSetRenew, s.LockSetRenew)

	rpc.Handle(reg, api.OpLeaseGrant, s.LeaseGrant)
	rpc.Handle(reg, api.OpLeaseTTL, s.LeaseTTL)
	rpc.Handle(reg, api.OpLeaseKeepAlive, s.LeaseKeepAlive)
	rpc.Handle(reg, api.OpLeaseRevoke, s.LeaseRevoke)
	rpc.Handle(reg, api.OpLeaseList, s.LeaseList)
	rpc.Handle(reg, api.OpLeasePut, s.LeasePut)

	rpc.Handle(reg, api.OpCounterGet, s.CounterGet)
	rpc.Handle(reg, api.OpCounterAdd, s.CounterAdd)
	rpc.Handle(reg, api.OpCounterSub, s.CounterSub)
	rpc.Handle(reg, api.OpCounterSet, s.CounterSet)
	rpc.Handle(reg, api.OpCounterCAS, s.CounterCAS)
	rpc.Handle(reg, api.OpSignedCounterGet, s.SignedCounterGet)
	rpc.Handle(reg, api.OpSignedCounterAdd, s.SignedCounterAdd)

	rpc.Handle(reg, api.OpSequenceNext, s.SequenceNext)
	rpc.Handle(reg, api.OpSequenceReserve, s.SequenceReserve)
	rpc.Handle(reg, api.OpSequenceCurrent, s.SequenceCurrent)

	rpc.Handle(reg, api.OpSemaphoreTryAcquire, s.SemaphoreTryAcquire)
	rpc.Handle(reg, api.OpSemaphoreRelease, s.SemaphoreRelease)
	rpc.Handle(reg, api.OpSemaphoreStatus, s.SemaphoreStatus)

	rpc.Handle(reg, api.OpRateLimitTryAcquire, s.RateLimitTryAcquire)
	rpc.Handle(reg, api.OpRateLimitAvailable, s.RateLimitAvailable)
	rpc.Handle(reg, api.OpRateLimitReset, s.RateLimitReset)

	rpc.Handle(reg, api.OpRWLockTryRead, s.RWLockTryRead)
	rpc.Handle(reg, api.OpRWLockTryWrite, s.RWLockTryWrite)
	rpc.Handle(reg, api.OpRWLockReleaseRead, s.RWLockReleaseRead)
	rpc.Handle(reg, api.OpRWLockReleaseWrite, s.RWLockReleaseWrite)
	rpc.Handle(reg, api.OpRWLockDowngrade, s.RWLockDowngrade)
	rpc.Handle(reg, api.OpRWLockStatus, s.RWLockStatus)

	rpc.Handle(reg, api.OpQueueCreate, s.QueueCreate)
	rpc.Handle(reg, api.OpQueueDelete, s.QueueDelete)
	rpc.Handle(reg, api.OpQueueEnqueue, s.QueueEnqueue)
	rpc.Handle(reg, api.OpQueueDequeue, s.QueueDequeue)
	rpc.Handle(reg, api.OpQueuePeek, s.QueuePeek)
	rpc.Handle(reg, api.OpQueueAck, s.QueueAck)
	rpc.Handle(reg, api.OpQueueNack, s.QueueNack)
	rpc.Handle(reg, api.OpQueueExtend, s.QueueExtend)
	rpc.Handle(reg, api.OpQueueStatus, s.QueueStatus)
	rpc.Handle(reg, api.OpQueueDLQ, s.QueueDLQ)
	rpc.Handle(reg, api.OpQueueRedrive, s.QueueRedrive)

	rpc.Handle(reg, api.OpBarrierEnter, s.BarrierEnter)
	rpc.Handle(reg, api.OpBarrierLeave, s.BarrierLeave)
	rpc.Handle(reg, api.OpBarrierStatus, s.BarrierStatus)

	rpc.Handle(reg, api.OpServiceRegister, s.ServiceRegister)
	rpc.Handle(reg, api.OpServiceHeartbeat, s.ServiceHeartbeat)
	rpc.Handle(reg, api.OpServiceHealth, s.ServiceHealth)
	rpc.Handle(reg, api.OpServiceUpdate, s.ServiceUpdate)
	rpc.Handle(reg, api.OpServiceDeregister, s.ServiceDeregister)
	rpc.Handle(reg, api.OpServiceGet, s.ServiceGet)
	rpc.Handle(reg, api.OpServiceList, s.ServiceList)
	rpc.Handle(reg, api.OpServiceDiscover, s.ServiceDiscover)

	rpc.Handle(reg, api.OpWorkerRegister, s.WorkerRegister)
	rpc.Handle(reg, api.OpWorkerHeartbeat, s.WorkerHeartbeat)
	rpc.Handle(reg, api.OpWorkerDeregister, s.WorkerDeregister)
	rpc.Handle(reg, api.OpWorkerSubmit, s.WorkerSubmit)
	rpc.Handle(reg, api.OpWorkerClaim, s.WorkerClaim)
	rpc.Handle(reg, api.OpWorkerAssign, s.WorkerAssign)
	rpc.Handle(reg, api.OpWorkerStart, s.WorkerStart)
	rpc.Handle(reg, api.OpWorkerComplete, s.WorkerComplete)
	rpc.Handle(reg, api.OpWorkerFail, s.WorkerFail)
	rpc.Handle(reg, api.OpWorkerSteal, s.WorkerSteal)
	rpc.Handle(reg, api.OpWorkerStatus, s.WorkerStatus)
	rpc.Handle(reg, api.OpWorkerTasks, s.WorkerTasks)
}

// errContention is returned when maxAttempts compare-and-swaps all lost.
var errContention = errors.New("too much contention")

// update runs one read-decide-write step on key. decide gets the live
// record (nil when absent) and the leader's clock and returns the
// operations to apply if the record is still the one it saw; no operations
// means nothing to write (the decision rests on a linearizable read). On a
// lost compare decide runs again on the record the failed transaction
// read, at most maxAttempts times.
func (s *Service) update(ctx context.Context, key []byte, decide func(cur *api.KeyValue, nowMs int64) ([]api.TxnOp, error)) error {
	_, err := s.updateKeys(ctx, [][]byte{key}, func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		return decide(curs[0], nowMs)
	})
	return err
}

// updateKeys is update over several distinct keys (at most MaxBatchOps):
// decide gets the live record of each (nil when absent), in order, and the
// transaction is guarded by a compare on every one of them. The stripes of
// the keys are taken in index order, so concurrent multi-key steps never
// deadlock. It returns the revision of the write (0 when nothing was
// written).
func (s *Service) updateKeys(ctx context.Context, keys [][]byte, decide func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error)) (uint64, error) {
	release, err := s.lockStripes(ctx, keys)
	if err != nil {
		return 0, err
	}
	defer release()
	curs, err := s.b.ReadKeys(ctx, keys)
	if err != nil {
		return 0, err
	}
	compares := make([]api.Compare, len(keys))
	failure := make([]api.TxnOp, len(keys))
	for i, k := range keys {
		compares[i] = api.Compare{Key: k, Target: api.TargetModRevision, Result: api.Equal}
		failure[i] = api.TxnOp{Kind: api.TxnGet, Key: k}
	}
	for attempt := 1; ; attempt++ {
		ops, err := decide(curs, s.b.NowMs())
		if err != nil || len(ops) == 0 {
			return 0, err
		}
		for i, cur := range curs {
			compares[i].Number = 0
			if cur != nil {
				compares[i].Number = int64(cur.ModRevision)
			}
		}
		res, err := s.b.Txn(ctx, &api.TxnRequest{Compares: compares, Success: ops, Failure: failure})
		if err != nil {
			return 0, err
		}
		if res.Succeeded {
			return res.Revision, nil
		}
		if attempt == maxAttempts {
			return 0, api.Errorf(api.CodeUnavailable, "%q: %v (%d compare-and-swap attempts lost); retry", keys[0], errContention, attempt)
		}
		for i := range curs {
			curs[i] = nil
			if i < len(res.Results) && len(res.Results[i].KVs) == 1 {
				kv := res.Results[i].KVs[0]
				curs[i] = &kv
			}
		}
	}
}

// lockStripes waits for the stripes of keys, in index order, or for ctx.
func (s *Service) lockStripes(ctx context.Context, keys [][]byte) (func(), error) {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.Bytes(s.seed, k)%stripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	release := func(n int) {
		for _, i := range idx[:n] {
			<-s.stripes[i]
		}
	}
	for n, i := range idx {
		select {
		case s.stripes[i] <- struct{}{}:
		case <-ctx.Done():
			release(n)
			return nil, ctx.Err()
		}
	}
	return func() { release(len(idx)) }, nil
}

// recordKey checks a primitive's name and returns its record key.
func recordKey(prefix, what, name string) ([]byte, error) {
	if name == "" {
		return nil, api.Errorf(api.CodeInvalidArgument, "%s is empty", what)
	}
	if max := api.MaxKeySize - len(prefix); len(name) > max {
		return nil, api.Errorf(api.CodeInvalidArgument, "%s is %d bytes; the limit is %d", what, len(name), max)
	}
	if !utf8.ValidString(name) {
		return nil, api.Errorf(api.CodeInvalidArgument, "%s is not valid UTF-8", what)
	}
	return []byte(prefix + name), nil
}

// checkHolder validates a holder id.
func checkHolder(h string) error {
	if h == "" {
		return api.Errorf(api.CodeInvalidArgument, "holder_id is empty")
	}
	if len(h) > api.MaxHolderIDSize {
		return api.Errorf(api.CodeInvalidArgument, "holder_id is %d bytes; the limit is %d", len(h), api.MaxHolderIDSize)
	}
	return nil
}

// checkTTL validates a TTL in milliseconds.
func checkTTL(field string, ttl int64) error {
	if ttl < 1 || ttl > api.MaxTTLMs {
		return api.Errorf(api.CodeInvalidArgument, "%s is %d; want 1..%d milliseconds", field, ttl, int64(api.MaxTTLMs))
	}
	return nil
}

// pageLimit checks the limit of a listing: 0 means def, else 1..max.
func pageLimit(limit, def, max int) (int, error) {
	if limit == 0 {
		return def, nil
	}
	if limit < 1 || limit > max {
		return 0, api.Errorf(api.CodeInvalidArgument, "limit is %d; want 1..%d", limit, max)
	}
	return limit, nil
}

// corrupt reports a record that does not decode.
func corrupt(key []byte, err error) error {
	return api.Errorf(api.CodeInternal, "record %q does not decode: %v", key, err)
}

// put is a put operation of key.
func put(key, value []byte) api.TxnOp { return api.TxnOp{Kind: api.TxnPut, Key: key, Value: value} }

// addResult returns the value written by the add at index i of res.
func addResult(res *api.TxnResponse, i int) ([]byte, error) {
	if i >= len(res.Results) || len(res.Results[i].KVs) != 1 {
		return nil, fmt.Errorf("add result missing from the transaction response")
	}
	return res.Results[i].KVs[0].Value, nil
}

// recordStep runs decide on the JSON record at key in one compare-and-swap
// step of s.update: the record is decoded, decide returns the next record
// (nil = leave it unchanged) and the answer, and a new record is written
// back guarded by the revision it was decided on.
func recordStep[R, Resp any](ctx context.Context, s *Service, key []byte, decode func(*api.KeyValue) (*R, error), decide func(cur *R, nowMs int64) (*R, Resp)) (Resp, error) {
	var out Resp
	err := s.update(ctx, key, func(kv *api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		cur, err := decode(kv)
		if err != nil {
			return nil, err
		}
		next, resp := decide(cur, nowMs)
		out = resp
		if next == nil {
			return nil, nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		return []api.TxnOp{put(key, b)}, nil
	})
	return out, err
}
