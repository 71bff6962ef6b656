package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/aspen-dev/aspen/api"
)

// lockSetMember is one member of a canonicalised lock set request.
type lockSetMember struct {
	name  string
	token uint64 // release, renew
}

// canonicalLockSet checks a lock set request and returns its members
// sorted by name, each with its token when tokens are required.
func canonicalLockSet(req *api.LockSetRequest, withTokens bool) ([]lockSetMember, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	n := len(req.Keys)
	switch {
	case n == 0:
		return nil, api.Errorf(api.CodeInvalidArgument, "keys is empty; a lock set has 1..%d members", api.MaxLockSetMembers)
	case n > api.MaxLockSetMembers:
		return nil, api.Errorf(api.CodeInvalidArgument, "keys has %d members; the limit is %d", n, api.MaxLockSetMembers)
	case withTokens && len(req.FencingTokens) != n:
		return nil, api.Errorf(api.CodeInvalidArgument, "fencing_tokens has %d entries for %d keys; give one token per key, in the same order", len(req.FencingTokens), n)
	case !withTokens && len(req.FencingTokens) != 0:
		return nil, api.Errorf(api.CodeInvalidArgument, "fencing_tokens is only for release and renew")
	}
	ms := make([]lockSetMember, n)
	for i, k := range req.Keys {
		if _, err := recordKey(PrefixLock, fmt.Sprintf("keys[%d]", i), k); err != nil {
			return nil, err
		}
		ms[i].name = k
		if withTokens {
			ms[i].token = req.FencingTokens[i]
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
	for i := 1; i < n; i++ {
		if ms[i].name == ms[i-1].name {
			return nil, api.Errorf(api.CodeInvalidArgument, "keys has %q twice; members must be distinct", ms[i].name)
		}
	}
	return ms, nil
}

// decideLockSet applies decide (one of the single-lock decisions) to every
// member: all succeed, and the new records are returned, or nothing
// changes and the answer names the first member that refused.
func decideLockSet(curs []*lockRecord, ms []lockSetMember, holder string, decide func(cur *lockRecord, m lockSetMember) (*lockRecord, api.LockResponse)) ([]*lockRecord, api.LockSetResponse) {
	out := api.LockSetResponse{HolderID: holder, Members: make([]api.LockSetMember, len(ms))}
	next := make([]*lockRecord, len(ms))
	for i, m := range ms {
		rec, r := decide(curs[i], m)
		if !r.IsSuccess {
			out.BlockedMember, out.BlockedHolder = m.name, r.HolderID
			out.Error = fmt.Sprintf("member %q: %s", m.name, r.Error)
			for j, m := range ms {
				out.Members[j] = api.LockSetMember{Key: m.name, FencingToken: m.token}
			}
			return nil, out
		}
		next[i] = rec
		out.Members[i] = api.LockSetMember{Key: m.name, FencingToken: r.FencingToken, DeadlineMs: r.DeadlineMs}
	}
	out.IsSuccess = true
	return next, out
}

// lockSetStep runs decide over the member locks' records in one
// compare-and-swap step guarded by every member's mod_revision.
func (s *Service) lockSetStep(ctx context.Context, op string, req *api.LockSetRequest, withTokens bool, decide func(cur *lockRecord, m lockSetMember, nowMs int64) (*lockRecord, api.LockResponse)) (*api.LockSetResponse, error) {
	ms, err := canonicalLockSet(req, withTokens)
	if err != nil {
		return nil, err
	}
	keys := make([][]byte, len(ms))
	for i, m := range ms {
		keys[i] = []byte(PrefixLock + m.name)
	}
	var out api.LockSetResponse
	_, err = s.updateKeys(ctx, keys, func(kvs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		curs := make([]*lockRecord, len(kvs))
		for i, kv := range kvs {
			cur, err := decodeLock(kv)
			if err != nil {
				return nil, err
			}
			curs[i] = cur
		}
		var next []*lockRecord
		next, out = decideLockSet(curs, ms, req.HolderID, func(cur *lockRecord, m lockSetMember) (*lockRecord, api.LockResponse) {
			return decide(cur, m, nowMs)
		})
		var ops []api.TxnOp
		for i, rec := range next {
			if rec == nil {
				continue // unchanged (released already)
			}
			b, err := json.Marshal(rec)
			if err != nil {
				return nil, err
			}
			ops = append(ops, put(keys[i], b))
		}
		return ops, nil
	})
	if err != nil {
		return nil, fmt.Errorf("lock set %s: %w", op, err)
	}
	out.Operation = op
	return &out, nil
}

// LockSetTryAcquire acquires every member lock, or none, without waiting.
func (s *Service) LockSetTryAcquire(ctx context.Context, req *api.LockSetRequest) (*api.LockSetResponse, error) {
	if err := checkTTL("ttl_ms", req.TTLMs); err != nil {
		return nil, err
	}
	return s.lockSetStep(ctx, "try_acquire", req, false, func(cur *lockRecord, _ lockSetMember, nowMs int64) (*lockRecord, api.LockResponse) {
		return decideLockAcquire(cur, req.HolderID, req.TTLMs, nowMs)
	})
}

// LockSetRelease releases every member lock, or none.
func (s *Service) LockSetRelease(ctx context.Context, req *api.LockSetRequest) (*api.LockSetResponse, error) {
	return s.lockSetStep(ctx, "release", req, true, func(cur *lockRecord, m lockSetMember, nowMs int64) (*lockRecord, api.LockResponse) {
		return decideLockRelease(cur, req.HolderID, m.token, nowMs)
	})
}

// LockSetRenew extends every member lock, or none.
func (s *Service) LockSetRenew(ctx context.Context, req *api.LockSetRequest) (*api.LockSetResponse, error) {
	if req.TTLMs != 0 {
		if err := checkTTL("ttl_ms", req.TTLMs); err != nil {
			return nil, err
		}
	}
	return s.lockSetStep(ctx, "renew", req, true, func(cur *lockRecord, m lockSetMember, nowMs int64) (*lockRecord, api.LockResponse) {
		return decideLockRenew(cur, req.HolderID, m.token, req.TTLMs, nowMs)
	})
}

// LockStatus reads a lock: on success the current holder, token and
// deadline; IsSuccess false with an empty holder when it is free.
func (s *Service) LockStatus(ctx context.Context, req *api.LockStatusRequest) (*api.LockResponse, error) {
	key, err := recordKey(PrefixLock, "key", req.Key)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	cur, err := decodeLock(kv)
	if err != nil {
		return nil, err
	}
	out := &api.LockResponse{Operation: "status", Key: req.Key}
	now := s.b.NowMs()
	switch {
	case cur.held(now):
		out.IsSuccess, out.HolderID, out.FencingToken, out.DeadlineMs = true, cur.HolderID, cur.FencingToken, cur.DeadlineMs
	case cur != nil:
		out.FencingToken, out.Error = cur.FencingToken, "lock is free"
	default:
		out.Error = "lock is free"
	}
	return out, nil
}
