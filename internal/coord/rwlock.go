package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/aspen-dev/aspen/api"
)

// rwRecord is the JSON record of a read/write lock at PrefixRWLock+name.
// It is never deleted, so write fencing tokens strictly increase across
// releases and expiries. Expired readers, writer and waiting writers are
// ignored when read and dropped when written.
type rwRecord struct {
	FencingToken     uint64     `json:"fencing_token"` // of the current or last write hold
	Writer           string     `json:"writer,omitempty"`
	WriterDeadlineMs int64      `json:"writer_deadline_ms,omitempty"` // 0 = no writer
	WriterTTLMs      int64      `json:"writer_ttl_ms,omitempty"`
	Readers          []rwHolder `json:"readers"`
	Pending          []rwHolder `json:"pending_writers,omitempty"`
}

type rwHolder struct {
	HolderID   string `json:"holder_id"`
	DeadlineMs int64  `json:"deadline_ms"`
}

// defaultRWLockTTLMs is the TTL of a hold that gives none.
const defaultRWLockTTLMs = 30000

// pendingWriterMs is how long a refused waiting writer keeps new readers
// out after its last attempt. The blocking client retries at least every
// second, so a live waiter keeps refreshing it.
const pendingWriterMs = 3000

func decodeRW(kv *api.KeyValue) (*rwRecord, error) {
	if kv == nil {
		return nil, nil
	}
	var r rwRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	return &r, nil
}

// live returns a copy of r without what expired at nowMs (an empty record
// for nil).
func (r *rwRecord) live(nowMs int64) *rwRecord {
	out := &rwRecord{Readers: []rwHolder{}}
	if r == nil {
		return out
	}
	out.FencingToken = r.FencingToken
	if r.WriterDeadlineMs != 0 && nowMs < r.WriterDeadlineMs {
		out.Writer, out.WriterDeadlineMs, out.WriterTTLMs = r.Writer, r.WriterDeadlineMs, r.WriterTTLMs
	}
	for _, h := range r.Readers {
		if nowMs < h.DeadlineMs {
			out.Readers = append(out.Readers, h)
		}
	}
	for _, h := range r.Pending {
		if nowMs < h.DeadlineMs {
			out.Pending = append(out.Pending, h)
		}
	}
	return out
}

func (r *rwRecord) mode() string {
	switch {
	case r.WriterDeadlineMs != 0:
		return "write"
	case len(r.Readers) > 0:
		return "read"
	}
	return "free"
}

// response describes the (live) record r.
func (r *rwRecord) response() api.RWLockResponse {
	return api.RWLockResponse{Mode: r.mode(), FencingToken: r.FencingToken, ReaderCount: len(r.Readers),
		WriterHolder: r.Writer, PendingWriter: len(r.Pending)}
}

func indexOf(hs []rwHolder, holder string) int {
	for i, h := range hs {
		if h.HolderID == holder {
			return i
		}
	}
	return -1
}

func without(hs []rwHolder, i int) []rwHolder {
	if i < 0 {
		return hs
	}
	return append(hs[:i:i], hs[i+1:]...)
}

// decideRWRead grants a read hold unless a writer holds the lock or waits
// for it (writer preference). A reader acquiring again refreshes its TTL,
// even while a writer waits.
func decideRWRead(cur *rwRecord, holder string, ttlMs, nowMs int64) (*rwRecord, api.RWLockResponse) {
	r := cur.live(nowMs)
	idx := indexOf(r.Readers, holder)
	switch {
	case r.WriterDeadlineMs != 0:
		resp := r.response()
		resp.Error = fmt.Sprintf("write-locked by %s (fencing token %d)", r.Writer, r.FencingToken)
		return nil, resp
	case idx < 0 && len(r.Pending) > 0:
		resp := r.response()
		resp.Error = fmt.Sprintf("a writer is waiting (%s)", r.Pending[0].HolderID)
		return nil, resp
	case idx < 0 && len(r.Readers) >= api.MaxRWLockReaders:
		resp := r.response()
		resp.Error = fmt.Sprintf("too many readers: the limit is %d", api.MaxRWLockReaders)
		return nil, resp
	}
	h := rwHolder{HolderID: holder, DeadlineMs: nowMs + ttlMs}
	if idx >= 0 {
		r.Readers[idx] = h
	} else {
		r.Readers = append(r.Readers, h)
		sort.Slice(r.Readers, func(i, j int) bool { return r.Readers[i].HolderID < r.Readers[j].HolderID })
	}
	resp := r.response()
	resp.IsSuccess, resp.DeadlineMs = true, h.DeadlineMs
	return r, resp
}

// decideRWWrite grants the write hold when no live writer or reader holds
// the lock, with the next fencing token. Refused with wait, the caller is
// recorded as a waiting writer (new readers are then refused).
func decideRWWrite(cur *rwRecord, holder string, ttlMs int64, wait bool, nowMs int64) (*rwRecord, api.RWLockResponse) {
	r := cur.live(nowMs)
	var why string
	switch {
	case r.WriterDeadlineMs != 0:
		why = fmt.Sprintf("write-locked by %s (fencing token %d)", r.Writer, r.FencingToken)
	case len(r.Readers) == 1:
		why = fmt.Sprintf("read-locked by %s", r.Readers[0].HolderID)
	case len(r.Readers) > 1:
		why = fmt.Sprintf("read-locked by %d readers", len(r.Readers))
	}
	pi := indexOf(r.Pending, holder)
	if why != "" {
		resp := r.response()
		resp.Error = why
		if !wait {
			return nil, resp
		}
		p := rwHolder{HolderID: holder, DeadlineMs: nowMs + pendingWriterMs}
		if pi >= 0 {
			r.Pending[pi] = p
		} else if len(r.Pending) < api.MaxRWLockReaders {
			r.Pending = append(r.Pending, p)
		}
		resp.PendingWriter = len(r.Pending)
		return r, resp
	}
	r.Pending = without(r.Pending, pi)
	r.FencingToken++
	r.Writer, r.WriterDeadlineMs, r.WriterTTLMs = holder, nowMs+ttlMs, ttlMs
	resp := r.response()
	resp.IsSuccess, resp.DeadlineMs = true, r.WriterDeadlineMs
	return r, resp
}

// decideRWReleaseRead drops holder's read hold; releasing what is not held
// succeeds and writes nothing.
func decideRWReleaseRead(cur *rwRecord, holder string, nowMs int64) (*rwRecord, api.RWLockResponse) {
	r := cur.live(nowMs)
	idx := indexOf(r.Readers, holder)
	if idx < 0 {
		resp := r.response()
		resp.IsSuccess = true
		return nil, resp
	}
	r.Readers = without(r.Readers, idx)
	resp := r.response()
	resp.IsSuccess = true
	return r, resp
}

// writerCheck reports why holder with token does not hold the write lock,
// or "".
func writerCheck(r *rwRecord, holder string, token uint64) string {
	switch {
	case r.WriterDeadlineMs == 0:
		return fmt.Sprintf("not write-locked by %s with fencing token %d (mode %s)", holder, token, r.mode())
	case r.Writer != holder || r.FencingToken != token:
		return fmt.Sprintf("write-locked by %s with fencing token %d, not by %s with %d", r.Writer, r.FencingToken, holder, token)
	}
	return ""
}

// decideRWReleaseWrite ends holder's write hold; the token is kept for the
// next writer to exceed.
func decideRWReleaseWrite(cur *rwRecord, holder string, token uint64, nowMs int64) (*rwRecord, api.RWLockResponse) {
	r := cur.live(nowMs)
	if why := writerCheck(r, holder, token); why != "" {
		resp := r.response()
		resp.Error = why
		return nil, resp
	}
	r.Writer, r.WriterDeadlineMs, r.WriterTTLMs = "", 0, 0
	resp := r.response()
	resp.IsSuccess = true
	return r, resp
}

// decideRWDowngrade turns holder's write hold into a read hold of ttlMs (0:
// the write hold's TTL), keeping the token; other readers may then enter.
func decideRWDowngrade(cur *rwRecord, holder string, token uint64, ttlMs, nowMs int64) (*rwRecord, api.RWLockResponse) {
	r := cur.live(nowMs)
	if why := writerCheck(r, holder, token); why != "" {
		resp := r.response()
		resp.Error = why
		return nil, resp
	}
	if ttlMs == 0 {
		ttlMs = r.WriterTTLMs
	}
	r.Writer, r.WriterDeadlineMs, r.WriterTTLMs = "", 0, 0
	h := rwHolder{HolderID: holder, DeadlineMs: nowMs + ttlMs}
	r.Readers = append(without(r.Readers, indexOf(r.Readers, holder)), h)
	sort.Slice(r.Readers, func(i, j int) bool { return r.Readers[i].HolderID < r.Readers[j].HolderID })
	resp := r.response()
	resp.IsSuccess, resp.DeadlineMs = true, h.DeadlineMs
	return r, resp
}

func (s *Service) rwStep(ctx context.Context, op, name string, decide func(cur *rwRecord, nowMs int64) (*rwRecord, api.RWLockResponse)) (*api.RWLockResponse, error) {
	key, err := recordKey(PrefixRWLock, "name", name)
	if err != nil {
		return nil, err
	}
	out, err := recordStep(ctx, s, key, decodeRW, decide)
	if err != nil {
		return nil, err
	}
	out.Operation, out.Name = op, name
	return &out, nil
}

// rwTTL validates the TTL of a hold (0 = dflt).
func rwTTL(ttl, dflt int64) (int64, error) {
	if ttl == 0 {
		return dflt, nil
	}
	return ttl, checkTTL("ttl_ms", ttl)
}

// RWLockTryRead takes a read hold if no writer holds or waits for the lock.
func (s *Service) RWLockTryRead(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	ttl, err := rwTTL(req.TTLMs, defaultRWLockTTLMs)
	if err != nil {
		return nil, err
	}
	return s.rwStep(ctx, "try_read", req.Name, func(cur *rwRecord, nowMs int64) (*rwRecord, api.RWLockResponse) {
		return decideRWRead(cur, req.HolderID, ttl, nowMs)
	})
}

// RWLockTryWrite takes the write hold if the lock is free.
func (s *Service) RWLockTryWrite(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	ttl, err := rwTTL(req.TTLMs, defaultRWLockTTLMs)
	if err != nil {
		return nil, err
	}
	return s.rwStep(ctx, "try_write", req.Name, func(cur *rwRecord, nowMs int64) (*rwRecord, api.RWLockResponse) {
		return decideRWWrite(cur, req.HolderID, ttl, req.Wait, nowMs)
	})
}

// RWLockReleaseRead drops a read hold.
func (s *Service) RWLockReleaseRead(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	return s.rwStep(ctx, "release_read", req.Name, func(cur *rwRecord, nowMs int64) (*rwRecord, api.RWLockResponse) {
		return decideRWReleaseRead(cur, req.HolderID, nowMs)
	})
}

// RWLockReleaseWrite ends a write hold.
func (s *Service) RWLockReleaseWrite(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	return s.rwStep(ctx, "release_write", req.Name, func(cur *rwRecord, nowMs int64) (*rwRecord, api.RWLockResponse) {
		return decideRWReleaseWrite(cur, req.HolderID, req.FencingToken, nowMs)
	})
}

// RWLockDowngrade turns a write hold into a read hold.
func (s *Service) RWLockDowngrade(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	if err := checkHolder(req.HolderID); err != nil {
		return nil, err
	}
	ttl, err := rwTTL(req.TTLMs, 0)
	if err != nil {
		return nil, err
	}
	return s.rwStep(ctx, "downgrade", req.Name, func(cur *rwRecord, nowMs int64) (*rwRecord, api.RWLockResponse) {
		return decideRWDowngrade(cur, req.HolderID, req.FencingToken, ttl, nowMs)
	})
}

// RWLockStatus describes a read/write lock (a lock never used is free).
func (s *Service) RWLockStatus(ctx context.Context, req *api.RWLockRequest) (*api.RWLockResponse, error) {
	key, err := recordKey(PrefixRWLock, "name", req.Name)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	cur, err := decodeRW(kv)
	if err != nil {
		return nil, err
	}
	r := cur.live(s.b.NowMs())
	out := r.response()
	out.Operation, out.Name, out.IsSuccess = "status", req.Name, true
	if r.WriterDeadlineMs != 0 {
		out.DeadlineMs = r.WriterDeadlineMs
	}
	return &out, nil
}
