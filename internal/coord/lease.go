package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/aspen-dev/aspen/api"
)

// leaseRecord is the JSON record of a lease at leaseKey(id). Keys counts
// its attachment records at leaseAttachPrefix(id); every attach rewrites
// the lease record, so its mod_revision guards the set of attachments.
type leaseRecord struct {
	TTLSeconds  int64 `json:"ttl_seconds"`
	GrantedAtMs int64 `json:"granted_at_ms"`
	DeadlineMs  int64 `json:"deadline_ms"` // unix ms, leader clock
	Keys        int   `json:"keys"`
}

// live reports whether r has not expired at nowMs.
func (r *leaseRecord) live(nowMs int64) bool { return r != nil && nowMs < r.DeadlineMs }

// leaseKey is the record key of lease id (fixed width, so records sort by
// id and no id's key is a prefix of another's).
func leaseKey(id int64) []byte { return fmt.Appendf(nil, "%s%020d", PrefixLease, id) }

// leaseAttachPrefix is the prefix of the attachment records of lease id.
func leaseAttachPrefix(id int64) []byte { return fmt.Appendf(nil, "%s%020d:", PrefixLeaseKey, id) }

// leaseAttachment is one attachment record: the user key and the revision
// it was written at together with the key. The key is still attached while
// its mod_revision equals that revision; once rewritten without the lease
// (or deleted) it is detached and the lease's end leaves it alone.
type leaseAttachment struct {
	Key []byte
	Rev uint64
}

func decodeLease(kv *api.KeyValue) (*leaseRecord, error) {
	if kv == nil {
		return nil, nil
	}
	var r leaseRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	if r.TTLSeconds < 1 || r.TTLSeconds > api.MaxLeaseTTLSeconds || r.Keys < 0 || r.Keys > api.MaxLeaseKeys {
		return nil, corrupt(kv.Key, fmt.Errorf("ttl_seconds %d or keys %d out of range", r.TTLSeconds, r.Keys))
	}
	return &r, nil
}

// checkLease refuses a lease that does not exist or has expired.
func checkLease(cur *leaseRecord, id, nowMs int64) error {
	switch {
	case cur == nil:
		return api.Errorf(api.CodeNotFound, "lease %d not found (never granted, revoked or expired)", id)
	case !cur.live(nowMs):
		return api.Errorf(api.CodeNotFound, "lease %d expired %d ms ago", id, nowMs-cur.DeadlineMs)
	}
	return nil
}

// decideLeaseGrant creates lease id unless a record of it exists (an
// expired one too: its keys are still to be deleted).
func decideLeaseGrant(cur *leaseRecord, id, ttlSeconds, nowMs int64) (*leaseRecord, error) {
	if cur != nil {
		return nil, api.Errorf(api.CodeConflict, "lease %d already exists", id)
	}
	return &leaseRecord{TTLSeconds: ttlSeconds, GrantedAtMs: nowMs, DeadlineMs: nowMs + ttlSeconds*1000}, nil
}

// decideLeaseKeepAlive moves a live lease's deadline to now + its TTL.
func decideLeaseKeepAlive(cur *leaseRecord, id, nowMs int64) (*leaseRecord, error) {
	if err := checkLease(cur, id, nowMs); err != nil {
		return nil, err
	}
	next := *cur
	next.DeadlineMs = nowMs + cur.TTLSeconds*1000
	return &next, nil
}

// decideLeaseAttach returns the lease record after attaching one more key
// (attached: the key already has an attachment record to this lease, which
// is rewritten and does not count twice).
func decideLeaseAttach(cur *leaseRecord, attached bool, id, nowMs int64) (*leaseRecord, error) {
	if err := checkLease(cur, id, nowMs); err != nil {
		return nil, err
	}
	next := *cur
	if !attached {
		if cur.Keys >= api.MaxLeaseKeys {
			return nil, api.Errorf(api.CodeResourceExhausted, "lease %d has %d attached keys; the limit is %d (revoke it or use another lease)", id, cur.Keys, api.MaxLeaseKeys)
		}
		next.Keys++
	}
	return &next, nil
}

// decideLeaseRevoke returns the operations that end lease id: delete every
// key still attached (keys[i] is the live record of atts[i].Key), all
// attachment records and the lease record. With expiredOnly a live lease
// is left alone (nil operations): a keepalive won the race with expiry.
func decideLeaseRevoke(cur *leaseRecord, id int64, atts []leaseAttachment, keys []*api.KeyValue, nowMs int64, expiredOnly bool) (ops []api.TxnOp, deleted int, err error) {
	if cur == nil {
		return nil, 0, api.Errorf(api.CodeNotFound, "lease %d not found (never granted, revoked or expired)", id)
	}
	if expiredOnly && cur.live(nowMs) {
		return nil, 0, nil
	}
	for i, a := range atts {
		if keys[i] != nil && keys[i].ModRevision == a.Rev {
			ops = append(ops, api.TxnOp{Kind: api.TxnDelete, Key: a.Key})
			deleted++
		}
	}
	ops = append(ops,
		api.TxnOp{Kind: api.TxnDeleteRange, Key: leaseAttachPrefix(id)},
		api.TxnOp{Kind: api.TxnDelete, Key: leaseKey(id)})
	return ops, deleted, nil
}

// leaseInfo describes a live lease at nowMs.
func leaseInfo(op string, id int64, r *leaseRecord, nowMs int64) *api.LeaseInfo {
	return &api.LeaseInfo{
		Operation: op, LeaseID: id, TTLSeconds: r.TTLSeconds, GrantedTTLSeconds: r.TTLSeconds,
		RemainingTTLSeconds: (r.DeadlineMs - nowMs + 999) / 1000, DeadlineMs: r.DeadlineMs, AttachedKeys: r.Keys,
	}
}

func checkLeaseID(id int64) error {
	if id < 1 || id > api.MaxLeaseID {
		return api.Errorf(api.CodeInvalidArgument, "lease_id is %d; want 1..%d", id, int64(api.MaxLeaseID))
	}
	return nil
}

// leaseStep runs decide on lease id's record in a compare-and-swap step.
func (s *Service) leaseStep(ctx context.Context, id int64, decide func(cur *leaseRecord, nowMs int64) (*leaseRecord, error)) (*leaseRecord, int64, error) {
	key := leaseKey(id)
	var out *leaseRecord
	var at int64
	err := s.update(ctx, key, func(kv *api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		cur, err := decodeLease(kv)
		if err != nil {
			return nil, err
		}
		next, err := decide(cur, nowMs)
		if err != nil {
			return nil, err
		}
		out, at = next, nowMs
		b, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		return []api.TxnOp{put(key, b)}, nil
	})
	return out, at, err
}

// LeaseGrant creates a lease.
func (s *Service) LeaseGrant(ctx context.Context, req *api.LeaseGrantRequest) (*api.LeaseInfo, error) {
	if req.TTLSeconds < 1 || req.TTLSeconds > api.MaxLeaseTTLSeconds {
		return nil, api.Errorf(api.CodeInvalidArgument, "ttl_seconds is %d; want 1..%d", req.TTLSeconds, int64(api.MaxLeaseTTLSeconds))
	}
	if req.LeaseID != 0 {
		if err := checkLeaseID(req.LeaseID); err != nil {
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		id := req.LeaseID
		if id == 0 {
			id = 1 + rand.Int64N(api.MaxLeaseID)
		}
		rec, at, err := s.leaseStep(ctx, id, func(cur *leaseRecord, nowMs int64) (*leaseRecord, error) {
			return decideLeaseGrant(cur, id, req.TTLSeconds, nowMs)
		})
		if req.LeaseID == 0 && api.CodeOf(err) == api.CodeConflict && attempt < maxAttempts {
			continue // a random id in use: draw another
		}
		if err != nil {
			return nil, fmt.Errorf("lease grant: %w", err)
		}
		return leaseInfo("grant", id, rec, at), nil
	}
}

// LeaseKeepAlive resets a live lease's deadline to now + its TTL.
func (s *Service) LeaseKeepAlive(ctx context.Context, req *api.LeaseRequest) (*api.LeaseInfo, error) {
	if err := checkLeaseID(req.LeaseID); err != nil {
		return nil, err
	}
	rec, at, err := s.leaseStep(ctx, req.LeaseID, func(cur *leaseRecord, nowMs int64) (*leaseRecord, error) {
		return decideLeaseKeepAlive(cur, req.LeaseID, nowMs)
	})
	if err != nil {
		return nil, fmt.Errorf("lease keepalive: %w", err)
	}
	return leaseInfo("keepalive", req.LeaseID, rec, at), nil
}

// LeaseTTL describes a live lease and, with Keys, the keys still attached.
func (s *Service) LeaseTTL(ctx context.Context, req *api.LeaseRequest) (*api.LeaseInfo, error) {
	if err := checkLeaseID(req.LeaseID); err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, leaseKey(req.LeaseID))
	if err != nil {
		return nil, err
	}
	now := s.b.NowMs()
	rec, err := decodeLease(kv)
	if err == nil {
		err = checkLease(rec, req.LeaseID, now)
	}
	if err != nil {
		return nil, fmt.Errorf("lease ttl: %w", err)
	}
	info := leaseInfo("ttl", req.LeaseID, rec, now)
	if req.Keys {
		atts, err := s.leaseAttachments(ctx, req.LeaseID)
		if err != nil {
			return nil, err
		}
		keys, err := s.b.ReadKeys(ctx, attachedKeys(atts))
		if err != nil {
			return nil, err
		}
		info.Keys = []string{}
		for i, a := range atts {
			if keys[i] != nil && keys[i].ModRevision == a.Rev {
				info.Keys = append(info.Keys, string(a.Key))
			}
		}
	}
	return info, nil
}

// LeaseRevoke ends a lease (an expired one too) and deletes its keys.
func (s *Service) LeaseRevoke(ctx context.Context, req *api.LeaseRequest) (*api.LeaseRevokeResponse, error) {
	if err := checkLeaseID(req.LeaseID); err != nil {
		return nil, err
	}
	n, _, err := s.revokeLease(ctx, req.LeaseID, false)
	if err != nil {
		return nil, fmt.Errorf("lease revoke: %w", err)
	}
	return &api.LeaseRevokeResponse{Operation: "revoke", LeaseID: req.LeaseID, KeysDeleted: n}, nil
}

// errRescan: the lease changed between the scan of its attachments and
// the revoke's read; scan again.
var errRescan = errors.New("lease changed during revoke")

// revokeLease deletes lease id, its attachment records and every key still
// attached, in one transaction guarded by the lease record's mod_revision
// (which every attach changes) and every key's. It reports the keys
// deleted and whether the lease was revoked (with expiredOnly, a live lease
// is not).
func (s *Service) revokeLease(ctx context.Context, id int64, expiredOnly bool) (deleted int, revoked bool, err error) {
	lk := leaseKey(id)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		before, err := s.b.Read(ctx, lk)
		if err != nil {
			return 0, false, err
		}
		if before == nil {
			return 0, false, api.Errorf(api.CodeNotFound, "lease %d not found (never granted, revoked or expired)", id)
		}
		atts, err := s.leaseAttachments(ctx, id)
		if err != nil {
			return 0, false, err
		}
		keys := append([][]byte{lk}, attachedKeys(atts)...)
		_, err = s.updateKeys(ctx, keys, func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
			if curs[0] == nil || curs[0].ModRevision != before.ModRevision {
				return nil, errRescan
			}
			cur, err := decodeLease(curs[0])
			if err != nil {
				return nil, err
			}
			ops, n, err := decideLeaseRevoke(cur, id, atts, curs[1:], nowMs, expiredOnly)
			deleted, revoked = n, len(ops) > 0
			return ops, err
		})
		if errors.Is(err, errRescan) {
			continue
		}
		return deleted, revoked, err
	}
	return 0, false, api.Errorf(api.CodeUnavailable, "lease %d: %v (%d attempts); retry", id, errContention, maxAttempts)
}

// leaseAttachments scans the attachment records of lease id.
func (s *Service) leaseAttachments(ctx context.Context, id int64) ([]leaseAttachment, error) {
	prefix := leaseAttachPrefix(id)
	kvs, more, err := s.b.Scan(ctx, prefix, nil, api.MaxLeaseKeys)
	if err != nil {
		return nil, err
	}
	if more {
		return nil, api.Errorf(api.CodeInternal, "lease %d has more than %d attachment records", id, api.MaxLeaseKeys)
	}
	atts := make([]leaseAttachment, len(kvs))
	for i, kv := range kvs {
		atts[i] = leaseAttachment{Key: bytes.TrimPrefix(kv.Key, prefix), Rev: kv.ModRevision}
	}
	return atts, nil
}

func attachedKeys(atts []leaseAttachment) [][]byte {
	keys := make([][]byte, len(atts))
	for i, a := range atts {
		keys[i] = a.Key
	}
	return keys
}

// LeaseList lists the live leases in id order.
func (s *Service) LeaseList(ctx context.Context, req *api.LeaseListRequest) (*api.LeaseListResponse, error) {
	limit, err := pageLimit(req.Limit, api.DefaultScanLimit, api.MaxScanLimit)
	if err != nil {
		return nil, err
	}
	out := &api.LeaseListResponse{Leases: []api.LeaseInfo{}}
	err = s.eachLease(ctx, func(id int64, r *leaseRecord, nowMs int64) bool {
		if !r.live(nowMs) {
			return true
		}
		if len(out.Leases) == limit {
			out.More = true
			return false
		}
		out.Leases = append(out.Leases, *leaseInfo("", id, r, nowMs))
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("lease list: %w", err)
	}
	return out, nil
}

// eachLease calls f with every lease record (expired ones too), in id
// order, in pages, until f returns false.
func (s *Service) eachLease(ctx context.Context, f func(id int64, r *leaseRecord, nowMs int64) bool) error {
	const page = 256
	var after []byte
	for {
		kvs, more, err := s.b.Scan(ctx, []byte(PrefixLease), after, page)
		if err != nil {
			return err
		}
		now := s.b.NowMs()
		for i := range kvs {
			var id int64
			if _, err := fmt.Sscanf(string(kvs[i].Key[len(PrefixLease):]), "%d", &id); err != nil {
				return corrupt(kvs[i].Key, err)
			}
			r, err := decodeLease(&kvs[i])
			if err != nil {
				return err
			}
			if !f(id, r, now) {
				return nil
			}
		}
		if !more || len(kvs) == 0 {
			return nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

// RevokeExpiredLeases revokes every lease whose deadline passed on this
// node's clock and deletes its keys; the node's leader loop calls it. A
// lease kept alive meanwhile is left alone. It returns how many leases it
// revoked.
func (s *Service) RevokeExpiredLeases(ctx context.Context) (int, error) {
	var expired []int64
	if err := s.eachLease(ctx, func(id int64, r *leaseRecord, nowMs int64) bool {
		if !r.live(nowMs) {
			expired = append(expired, id)
		}
		return true
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range expired {
		_, revoked, err := s.revokeLease(ctx, id, true)
		if api.CodeOf(err) == api.CodeNotFound {
			continue // revoked by a client meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("revoking expired lease %d: %w", id, err)
		}
		if revoked {
			n++
		}
	}
	return n, nil
}

// LeasePut writes a key attached to a live lease: the key, its attachment
// record and the lease record in one transaction guarded by the lease's
// and the attachment's mod_revisions.
func (s *Service) LeasePut(ctx context.Context, req *api.LeasePutRequest) (*api.LeasePutResponse, error) {
	if err := checkLeaseID(req.LeaseID); err != nil {
		return nil, err
	}
	ak := leaseAttachPrefix(req.LeaseID)
	if err := s.checkUserKey(req.Key, api.MaxKeySize-len(ak)); err != nil {
		return nil, err
	}
	if len(req.Value) > api.MaxValueSize {
		return nil, api.Errorf(api.CodeInvalidArgument, "value is %d bytes; the limit is %d", len(req.Value), api.MaxValueSize)
	}
	ak = append(ak, req.Key...)
	lk := leaseKey(req.LeaseID)
	rev, err := s.updateKeys(ctx, [][]byte{lk, ak}, func(curs []*api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		cur, err := decodeLease(curs[0])
		if err != nil {
			return nil, err
		}
		next, err := decideLeaseAttach(cur, curs[1] != nil, req.LeaseID, nowMs)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		value := req.Value
		if value == nil {
			value = []byte{}
		}
		return []api.TxnOp{put(req.Key, value), put(ak, []byte{}), put(lk, b)}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("lease put %q: %w", req.Key, err)
	}
	return &api.LeasePutResponse{LeaseID: req.LeaseID, Revision: rev}, nil
}

// checkUserKey validates a user key written by a service operation: not
// empty, at most max bytes, outside the reserved prefixes.
func (s *Service) checkUserKey(key []byte, max int) error {
	if len(key) == 0 {
		return api.Errorf(api.CodeInvalidArgument, "key is empty")
	}
	if len(key) > max {
		return api.Errorf(api.CodeInvalidArgument, "key is %d bytes; the limit for a key attached to a lease is %d", len(key), max)
	}
	for _, p := range s.reserved {
		if bytes.HasPrefix(key, p) {
			return api.Errorf(api.CodeInvalidArgument, "key %q is in the reserved prefix %q (system and service state)", key, p)
		}
	}
	return nil
}
