package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/aspen-dev/aspen/api"
)

// semRecord is the JSON record of a semaphore at PrefixSemaphore+name:
// the capacity of the latest acquire and the holders, sorted by id.
// Expired holders are dropped whenever the record is written and ignored
// when it is read.
type semRecord struct {
	Capacity uint32      `json:"capacity"`
	Holders  []semHolder `json:"holders"`
}

type semHolder struct {
	HolderID     string `json:"holder_id"`
	Permits      uint32 `json:"permits"`
	AcquiredAtMs int64  `json:"acquired_at_ms"`
	DeadlineMs   int64  `json:"deadline_ms"`
}

// defaultSemaphoreTTLMs is the TTL of a semaphore acquire that gives none.
const defaultSemaphoreTTLMs = 30000

func decodeSem(kv *api.KeyValue) (*semRecord, error) {
	if kv == nil {
		return nil, nil
	}
	var r semRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	return &r, nil
}

// live returns the holders of r alive at nowMs and the permits they hold.
func (r *semRecord) live(nowMs int64) ([]semHolder, uint64) {
	if r == nil {
		return nil, 0
	}
	var out []semHolder
	var used uint64
	for _, h := range r.Holders {
		if nowMs < h.DeadlineMs {
			out = append(out, h)
			used += uint64(h.Permits)
		}
	}
	return out, used
}

// avail is capacity minus used, floored at 0.
func avail(capacity uint32, used uint64) uint32 {
	if used >= uint64(capacity) {
		return 0
	}
	return capacity - uint32(used)
}

// decideSemAcquire grants permits to holder if, with its own previous hold
// replaced, the live permits stay within capacity. A holder acquiring again
// refreshes its record (TTL and permit count) instead of adding one.
func decideSemAcquire(cur *semRecord, holder string, permits, capacity uint32, ttlMs, nowMs int64) (*semRecord, api.SemaphoreResponse) {
	holders, _ := cur.live(nowMs)
	var others uint64
	var earliest int64
	idx := -1
	for i, h := range holders {
		if h.HolderID == holder {
			idx = i
			continue
		}
		others += uint64(h.Permits)
		if earliest == 0 || h.DeadlineMs < earliest {
			earliest = h.DeadlineMs
		}
	}
	resp := api.SemaphoreResponse{MaxPermits: capacity, CapacityPermits: capacity}
	if idx < 0 && len(holders) >= api.MaxSemaphoreHolders {
		resp.Available = avail(capacity, others)
		resp.Error = fmt.Sprintf("too many holders: the limit is %d", api.MaxSemaphoreHolders)
		return nil, resp
	}
	if others+uint64(permits) > uint64(capacity) {
		if idx >= 0 {
			resp.PermitsAcquired = holders[idx].Permits
			others += uint64(holders[idx].Permits)
		}
		resp.Available = avail(capacity, others)
		resp.RetryAfterMs = max(earliest-nowMs, 1)
		resp.Error = fmt.Sprintf("no permits available: %d of %d free, %d requested", avail(capacity, others), capacity, permits)
		return nil, resp
	}
	h := semHolder{HolderID: holder, Permits: permits, AcquiredAtMs: nowMs, DeadlineMs: nowMs + ttlMs}
	if idx >= 0 {
		h.AcquiredAtMs = holders[idx].AcquiredAtMs
		holders[idx] = h
	} else {
		holders = append(holders, h)
		sort.Slice(holders, func(i, j int) bool { return holders[i].HolderID < holders[j].HolderID })
	}
	resp.IsSuccess, resp.PermitsAcquired = true, permits
	resp.Available = avail(capacity, others+uint64(permits))
	return &semRecord{Capacity: capacity, Holders: holders}, resp
}

// decideSemRelease returns permits of holder (0 = all). Releasing what is
// not held (never acquired, expired, already released) succeeds and writes
// nothing.
func decideSemRelease(cur *semRecord, holder string, permits uint32, nowMs int64) (*semRecord, api.SemaphoreResponse) {
	holders, used := cur.live(nowMs)
	var capacity uint32
	if cur != nil {
		capacity = cur.Capacity
	}
	resp := api.SemaphoreResponse{IsSuccess: true, MaxPermits: capacity, CapacityPermits: capacity}
	for i, h := range holders {
		if h.HolderID != holder {
			continue
		}
		if permits == 0 || permits >= h.Permits {
			used -= uint64(h.Permits)
			holders = append(holders[:i], holders[i+1:]...)
		} else {
			used -= uint64(permits)
			holders[i].Permits -= permits
			resp.PermitsAcquired = holders[i].Permits
		}
		resp.Available = avail(capacity, used)
		return &semRecord{Capacity: capacity, Holders: holders}, resp
	}
	resp.Available = avail(capacity, used)
	return nil, resp
}

func (s *Service) semStep(ctx context.Context, op, name string, decide func(cur *semRecord, nowMs int64) (*semRecord, api.SemaphoreResponse)) (*api.SemaphoreResponse, error) {
	key, err := recordKey(PrefixSemaphore, "name", name)
	if err != nil {
		return nil, err
	}
	out, err := recordStep(ctx, s, key, decodeSem, func(cur *semRecord, nowMs int64) (*semRecord, api.SemaphoreResponse) {
		next, resp := decide(cur, nowMs)
		if next != nil && next.Holders == nil {
			next.Holders = []semHolder{} // stored as [], not null
		}
		return next, resp
	})
	if err != nil {
		return nil, err
	}
	out.Operation, out.Name = op, name
	return &out, nil
}

// SemaphoreTryAcquire takes permits if they are free, without waiting.
func (s *Service) SemaphoreTryAcquire(ctx context.Context, req *api.SemaphoreAcquireRequest) (*api.SemaphoreResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	if req.Capacity < 1 || req.Capacity > api.MaxSemaphoreCapacity {
		return nil, api.Errorf(api.CodeInvalidArgument, "capacity is %d; want 1..%d", req.Capacity, api.MaxSemaphoreCapacity)
	}
	permits := req.Permits
	if permits == 0 {
		permits = 1
	}
	if permits > req.Capacity {
		return nil, api.Errorf(api.CodeInvalidArgument, "permits is %d, more than the capacity %d: it could never be granted", permits, req.Capacity)
	}
	ttl := req.TTLMs
	if ttl == 0 {
		ttl = defaultSemaphoreTTLMs
	}
	if err := checkTTL("ttl_ms", ttl); err != nil {
		return nil, err
	}
	return s.semStep(ctx, "try_acquire", req.Name, func(cur *semRecord, nowMs int64) (*semRecord, api.SemaphoreResponse) {
		return decideSemAcquire(cur, req.HolderID, permits, req.Capacity, ttl, nowMs)
	})
}

// SemaphoreRelease returns permits.
func (s *Service) SemaphoreRelease(ctx context.Context, req *api.SemaphoreReleaseRequest) (*api.SemaphoreResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	return s.semStep(ctx, "release", req.Name, func(cur *semRecord, nowMs int64) (*semRecord, api.SemaphoreResponse) {
		return decideSemRelease(cur, req.HolderID, req.Permits, nowMs)
	})
}

// SemaphoreStatus reports capacity, free permits and live holders. A
// semaphore never acquired answers is_success false, "semaphore not found".
func (s *Service) SemaphoreStatus(ctx context.Context, req *api.SemaphoreStatusRequest) (*api.SemaphoreResponse, error) {
	key, err := recordKey(PrefixSemaphore, "name", req.Name)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	cur, err := decodeSem(kv)
	if err != nil {
		return nil, err
	}
	out := &api.SemaphoreResponse{Operation: "status", Name: req.Name}
	if cur == nil {
		out.Error = "semaphore not found"
		return out, nil
	}
	holders, used := cur.live(s.b.NowMs())
	out.IsSuccess = true
	out.MaxPermits, out.CapacityPermits = cur.Capacity, cur.Capacity
	out.Available = avail(cur.Capacity, used)
	for _, h := range holders {
		out.Holders = append(out.Holders, api.SemaphoreHolder{HolderID: h.HolderID, Permits: h.Permits, DeadlineMs: h.DeadlineMs})
	}
	return out, nil
}
