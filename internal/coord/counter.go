package coord

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/aspen-dev/aspen/api"
)

// Unsigned counters hold 0..2^64-1 as decimal text at PrefixCounter+key.
// Adds saturate at 2^64-1 and subtractions at 0. While the value and the
// amount fit in int64 an add is one transaction with the state machine's
// atomic add (no read, no retries under contention); past that, and for
// every subtraction, it is a compare-and-swap step.

func decodeUint(kv *api.KeyValue) (uint64, error) {
	if kv == nil {
		return 0, nil
	}
	v, err := strconv.ParseUint(string(kv.Value), 10, 64)
	if err != nil {
		return 0, corrupt(kv.Key, err)
	}
	return v, nil
}

func encodeUint(v uint64) []byte { return []byte(strconv.FormatUint(v, 10)) }

// satAdd and satSub are the saturating unsigned operations.
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func satSub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// decideCounterCAS: the swap happens iff the current value (missing = 0)
// equals expected. The returned value is the new one on success and the
// current one on failure.
func decideCounterCAS(cur, expected, newValue uint64) (write bool, value uint64) {
	if cur != expected {
		return false, cur
	}
	return true, newValue
}

func counterResp(op, key string, v uint64) *api.CounterResponse {
	return &api.CounterResponse{Key: key, Operation: op, IsSuccess: true, Value: v}
}

// CounterGet reads a counter; a missing one reads 0.
func (s *Service) CounterGet(ctx context.Context, req *api.CounterRequest) (*api.CounterResponse, error) {
	key, err := recordKey(PrefixCounter, "key", req.Key)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	v, err := decodeUint(kv)
	if err != nil {
		return nil, err
	}
	return counterResp("get", req.Key, v), nil
}

// CounterAdd adds Amount, saturating at 2^64-1.
func (s *Service) CounterAdd(ctx context.Context, req *api.CounterRequest) (*api.CounterResponse, error) {
	key, err := recordKey(PrefixCounter, "key", req.Key)
	if err != nil {
		return nil, err
	}
	if req.Amount <= math.MaxInt64 {
		res, err := s.b.Txn(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnAdd, Key: key, Delta: int64(req.Amount)}}})
		switch {
		case err == nil:
			b, err := addResult(res, 0)
			if err != nil {
				return nil, err
			}
			v, err := strconv.ParseUint(string(b), 10, 64)
			if err != nil {
				return nil, corrupt(key, err)
			}
			return counterResp("add", req.Key, v), nil
		case !errors.Is(err, api.ErrInvalidArgument):
			return nil, err
		}
		// The add left int64 (or met a value above it): saturate below.
	}
	return s.counterStep(ctx, "add", req.Key, key, func(cur uint64) uint64 { return satAdd(cur, req.Amount) })
}

// CounterSub subtracts Amount, saturating at 0.
func (s *Service) CounterSub(ctx context.Context, req *api.CounterRequest) (*api.CounterResponse, error) {
	key, err := recordKey(PrefixCounter, "key", req.Key)
	if err != nil {
		return nil, err
	}
	return s.counterStep(ctx, "sub", req.Key, key, func(cur uint64) uint64 { return satSub(cur, req.Amount) })
}

// counterStep sets the counter to f(current) in a compare-and-swap step.
func (s *Service) counterStep(ctx context.Context, op, name string, key []byte, f func(uint64) uint64) (*api.CounterResponse, error) {
	var out uint64
	err := s.update(ctx, key, func(kv *api.KeyValue, _ int64) ([]api.TxnOp, error) {
		cur, err := decodeUint(kv)
		if err != nil {
			return nil, err
		}
		out = f(cur)
		if kv != nil && out == cur {
			return nil, nil
		}
		return []api.TxnOp{put(key, encodeUint(out))}, nil
	})
	if err != nil {
		return nil, err
	}
	return counterResp(op, name, out), nil
}

// CounterSet sets the counter.
func (s *Service) CounterSet(ctx context.Context, req *api.CounterSetRequest) (*api.CounterResponse, error) {
	key, err := recordKey(PrefixCounter, "key", req.Key)
	if err != nil {
		return nil, err
	}
	if _, err := s.b.Txn(ctx, &api.TxnRequest{Success: []api.TxnOp{put(key, encodeUint(req.Value))}}); err != nil {
		return nil, err
	}
	return counterResp("set", req.Key, req.Value), nil
}

// CounterCAS sets the counter to NewValue if it holds Expected. On failure
// the response carries the current value and error "value has changed".
func (s *Service) CounterCAS(ctx context.Context, req *api.CounterCASRequest) (*api.CounterResponse, error) {
	key, err := recordKey(PrefixCounter, "key", req.Key)
	if err != nil {
		return nil, err
	}
	var ok bool
	var v uint64
	err = s.update(ctx, key, func(kv *api.KeyValue, _ int64) ([]api.TxnOp, error) {
		cur, err := decodeUint(kv)
		if err != nil {
			return nil, err
		}
		if ok, v = decideCounterCAS(cur, req.Expected, req.NewValue); !ok {
			return nil, nil
		}
		return []api.TxnOp{put(key, encodeUint(v))}, nil
	})
	if err != nil {
		return nil, err
	}
	out := counterResp("cas", req.Key, v)
	if !ok {
		out.IsSuccess, out.Error = false, fmt.Sprintf("value has changed: expected %d, current %d", req.Expected, v)
	}
	return out, nil
}

// Signed counters hold int64 as decimal text at PrefixSignedCounter+key; an
// add that would leave int64 fails and changes nothing.

// SignedCounterGet reads a signed counter; a missing one reads 0.
func (s *Service) SignedCounterGet(ctx context.Context, req *api.SignedCounterRequest) (*api.SignedCounterResponse, error) {
	key, err := recordKey(PrefixSignedCounter, "key", req.Key)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	var v int64
	if kv != nil {
		if v, err = strconv.ParseInt(string(kv.Value), 10, 64); err != nil {
			return nil, corrupt(key, err)
		}
	}
	return &api.SignedCounterResponse{Key: req.Key, Operation: "get", IsSuccess: true, Value: v}, nil
}

// SignedCounterAdd adds Delta (possibly negative) in one transaction.
func (s *Service) SignedCounterAdd(ctx context.Context, req *api.SignedCounterRequest) (*api.SignedCounterResponse, error) {
	key, err := recordKey(PrefixSignedCounter, "key", req.Key)
	if err != nil {
		return nil, err
	}
	res, err := s.b.Txn(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnAdd, Key: key, Delta: req.Delta}}})
	if errors.Is(err, api.ErrInvalidArgument) {
		return nil, api.Errorf(api.CodeInvalidArgument, "signed counter %q: adding %d leaves the int64 range; nothing changed", req.Key, req.Delta)
	}
	if err != nil {
		return nil, err
	}
	b, err := addResult(res, 0)
	if err != nil {
		return nil, err
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return nil, corrupt(key, err)
	}
	return &api.SignedCounterResponse{Key: req.Key, Operation: "add", IsSuccess: true, Value: v}, nil
}
