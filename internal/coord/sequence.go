package coord

import (
	"context"
	"errors"
	"math"
	"strconv"

	"github.com/aspen-dev/aspen/api"
)

// A sequence stores the last ID handed out, as decimal text at
// PrefixSequence+key. next and reserve are one atomic add each, so IDs are
// 1, 2, 3… with no gaps and no duplicates across all nodes, and contention
// costs no retries. IDs range over 1..2^63-1; past that: "sequence
// exhausted".

// reserveRange returns the first ID of a reservation of count IDs that
// moved the stored value to last.
func reserveRange(last, count uint64) uint64 { return last - count + 1 }

func (s *Service) seqAdd(ctx context.Context, op, name string, count uint64) (*api.SequenceResponse, error) {
	key, err := recordKey(PrefixSequence, "key", name)
	if err != nil {
		return nil, err
	}
	if count == 0 || count > math.MaxInt64 {
		return nil, api.Errorf(api.CodeInvalidArgument, "count is %d; want 1..%d", count, int64(math.MaxInt64))
	}
	out := &api.SequenceResponse{Key: name, Operation: op}
	if op == "reserve" {
		out.Count = count
	}
	res, err := s.b.Txn(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnAdd, Key: key, Delta: int64(count)}}})
	if errors.Is(err, api.ErrInvalidArgument) {
		// The add failed inside the state machine: tell overflow from a
		// damaged record.
		kv, rerr := s.b.Read(ctx, key)
		if rerr != nil {
			return nil, rerr
		}
		if kv != nil {
			if _, perr := strconv.ParseInt(string(kv.Value), 10, 64); perr != nil {
				return nil, corrupt(key, perr)
			}
		}
		out.Error = "sequence exhausted"
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := addResult(res, 0)
	if err != nil {
		return nil, err
	}
	last, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return nil, corrupt(key, err)
	}
	out.IsSuccess, out.Value = true, reserveRange(last, count)
	return out, nil
}

// SequenceNext hands out the next ID.
func (s *Service) SequenceNext(ctx context.Context, req *api.SequenceRequest) (*api.SequenceResponse, error) {
	return s.seqAdd(ctx, "next", req.Key, 1)
}

// SequenceReserve hands out Count consecutive IDs [Value, Value+Count).
func (s *Service) SequenceReserve(ctx context.Context, req *api.SequenceRequest) (*api.SequenceResponse, error) {
	return s.seqAdd(ctx, "reserve", req.Key, req.Count)
}

// SequenceCurrent returns the next ID that would be handed out (1 for a
// new sequence), without taking it.
func (s *Service) SequenceCurrent(ctx context.Context, req *api.SequenceRequest) (*api.SequenceResponse, error) {
	key, err := recordKey(PrefixSequence, "key", req.Key)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	last, err := decodeUint(kv) // stored by the state machine's atomic add, so <= MaxInt64
	if err != nil {
		return nil, err
	}
	out := &api.SequenceResponse{Key: req.Key, Operation: "current", IsSuccess: true, Value: last + 1}
	if last == math.MaxInt64 {
		out.IsSuccess, out.Value, out.Error = false, 0, "sequence exhausted"
	}
	return out, nil
}
