package coord

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aspen-dev/aspen/api"
)

// lockRecord is the JSON record of a lock at PrefixLock+name. It is never
// deleted: a release writes DeadlineMs 0 and keeps the token, so the next
// acquisition gets FencingToken+1 whether the lock was released or expired.
type lockRecord struct {
	HolderID     string `json:"holder_id"`
	FencingToken uint64 `json:"fencing_token"`
	AcquiredAtMs int64  `json:"acquired_at_ms"`
	TTLMs        int64  `json:"ttl_ms"`
	DeadlineMs   int64  `json:"deadline_ms"` // unix ms, leader clock; 0 = released
}

// held reports whether r is held at nowMs.
func (r *lockRecord) held(nowMs int64) bool {
	return r != nil && r.DeadlineMs != 0 && nowMs < r.DeadlineMs
}

func decodeLock(kv *api.KeyValue) (*lockRecord, error) {
	if kv == nil {
		return nil, nil
	}
	var r lockRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	return &r, nil
}

// decideLockAcquire: the lock is granted iff it has no record, is released
// or is expired; the token is the previous one + 1 (1 for a new lock). The
// holder of a live lock cannot acquire it again (not re-entrant).
func decideLockAcquire(cur *lockRecord, holder string, ttlMs, nowMs int64) (*lockRecord, api.LockResponse) {
	if cur.held(nowMs) {
		return nil, api.LockResponse{
			HolderID: cur.HolderID, FencingToken: cur.FencingToken, DeadlineMs: cur.DeadlineMs,
			Error: fmt.Sprintf("held by %s (fencing token %d, expires in %d ms)", cur.HolderID, cur.FencingToken, cur.DeadlineMs-nowMs),
		}
	}
	var token uint64 = 1
	if cur != nil {
		token = cur.FencingToken + 1
	}
	next := &lockRecord{HolderID: holder, FencingToken: token, AcquiredAtMs: nowMs, TTLMs: ttlMs, DeadlineMs: nowMs + ttlMs}
	return next, api.LockResponse{IsSuccess: true, HolderID: holder, FencingToken: token, DeadlineMs: next.DeadlineMs}
}

// decideLockRelease: the holder and token must match a live hold; the
// release keeps the token. Releasing a lock that never existed succeeds,
// as does releasing again what the same holder and token already released.
// A lock whose deadline passed is no longer the caller's: "lock expired".
func decideLockRelease(cur *lockRecord, holder string, token uint64, nowMs int64) (*lockRecord, api.LockResponse) {
	switch {
	case cur == nil:
		return nil, api.LockResponse{IsSuccess: true, HolderID: holder, FencingToken: token}
	case cur.HolderID != holder || cur.FencingToken != token:
		return nil, mismatch(cur, holder, token, nowMs)
	case cur.DeadlineMs == 0:
		return nil, api.LockResponse{IsSuccess: true, HolderID: holder, FencingToken: token}
	case !cur.held(nowMs):
		return nil, api.LockResponse{HolderID: holder, FencingToken: token, DeadlineMs: cur.DeadlineMs,
			Error: fmt.Sprintf("lock expired %d ms ago", nowMs-cur.DeadlineMs)}
	}
	next := *cur
	next.DeadlineMs = 0
	return &next, api.LockResponse{IsSuccess: true, HolderID: holder, FencingToken: token}
}

// decideLockRenew: the holder and token must match a live hold; the token
// is kept and the deadline moves to now+ttl (ttl 0: the acquisition's).
func decideLockRenew(cur *lockRecord, holder string, token uint64, ttlMs, nowMs int64) (*lockRecord, api.LockResponse) {
	switch {
	case cur == nil:
		return nil, api.LockResponse{HolderID: holder, FencingToken: token, Error: "lock not found"}
	case cur.HolderID != holder || cur.FencingToken != token:
		return nil, mismatch(cur, holder, token, nowMs)
	case cur.DeadlineMs == 0:
		return nil, api.LockResponse{HolderID: holder, FencingToken: token, Error: "lock not held: it was released"}
	case !cur.held(nowMs):
		return nil, api.LockResponse{HolderID: holder, FencingToken: token, DeadlineMs: cur.DeadlineMs,
			Error: fmt.Sprintf("lock expired %d ms ago", nowMs-cur.DeadlineMs)}
	}
	if ttlMs == 0 {
		ttlMs = cur.TTLMs
	}
	next := *cur
	next.TTLMs, next.DeadlineMs = ttlMs, nowMs+ttlMs
	return &next, api.LockResponse{IsSuccess: true, HolderID: holder, FencingToken: token, DeadlineMs: next.DeadlineMs}
}

// mismatch is the answer to a release or renew by the wrong holder or token.
func mismatch(cur *lockRecord, holder string, token uint64, nowMs int64) api.LockResponse {
	r := api.LockResponse{HolderID: cur.HolderID, FencingToken: cur.FencingToken}
	if cur.held(nowMs) {
		r.DeadlineMs = cur.DeadlineMs
		r.Error = fmt.Sprintf("lock is held by %s with fencing token %d, not by %s with %d", cur.HolderID, cur.FencingToken, holder, token)
	} else {
		r.Error = fmt.Sprintf("lock is not held by %s with fencing token %d (last holder %s, token %d, now free)", holder, token, cur.HolderID, cur.FencingToken)
	}
	return r
}

// lockStep runs decide on the lock's record in a compare-and-swap step.
func (s *Service) lockStep(ctx context.Context, op, name string, decide func(cur *lockRecord, nowMs int64) (*lockRecord, api.LockResponse)) (*api.LockResponse, error) {
	key, err := recordKey(PrefixLock, "key", name)
	if err != nil {
		return nil, err
	}
	out, err := recordStep(ctx, s, key, decodeLock, decide)
	if err != nil {
		return nil, err
	}
	out.Operation, out.Key = op, name
	return &out, nil
}

// LockTryAcquire acquires a lock if it is free, without waiting.
func (s *Service) LockTryAcquire(ctx context.Context, req *api.LockAcquireRequest) (*api.LockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	if err := checkTTL("ttl_ms", req.TTLMs); err != nil {
		return nil, err
	}
	return s.lockStep(ctx, "try_acquire", req.Key, func(cur *lockRecord, nowMs int64) (*lockRecord, api.LockResponse) {
		return decideLockAcquire(cur, req.HolderID, req.TTLMs, nowMs)
	})
}

// LockRelease releases a lock held by the holder with the token.
func (s *Service) LockRelease(ctx context.Context, req *api.LockReleaseRequest) (*api.LockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	return s.lockStep(ctx, "release", req.Key, func(cur *lockRecord, nowMs int64) (*lockRecord, api.LockResponse) {
		return decideLockRelease(cur, req.HolderID, req.FencingToken, nowMs)
	})
}

// LockRenew extends a live hold.
func (s *Service) LockRenew(ctx context.Context, req *api.LockRenewRequest) (*api.LockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	if req.TTLMs != 0 {
		if err := checkTTL("ttl_ms", req.TTLMs); err != nil {
			return nil, err
		}
	}
	return s.lockStep(ctx, "renew", req.Key, func(cur *lockRecord, nowMs int64) (*lockRecord, api.LockResponse) {
		return decideLockRenew(cur, req.HolderID, req.FencingToken, req.TTLMs, nowMs)
	})
}
