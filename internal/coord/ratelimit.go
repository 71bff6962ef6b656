package coord

import (
	"context"
	"encoding/json"
	"math"

	"github.com/aspen-dev/aspen/api"
)

// bucketRecord is the JSON record of a token bucket at PrefixRateLimit+key.
// Tokens are counted in thousandths so the record holds integers only;
// refill is computed lazily from LastRefillMs with the leader's clock.
type bucketRecord struct {
	MilliTokens  int64 `json:"milli_tokens"`
	LastRefillMs int64 `json:"last_refill_ms"`
}

func decodeBucket(kv *api.KeyValue) (*bucketRecord, error) {
	if kv == nil {
		return nil, nil
	}
	var r bucketRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	return &r, nil
}

// refill returns the bucket at nowMs: full when new, else topped up by
// rate tokens per second since the last refill, at most capacity. A clock
// that went back (a new leader behind the old one) refills nothing and
// keeps the later timestamp, so no time is counted twice.
func refill(cur *bucketRecord, capacity uint64, rate float64, nowMs int64) bucketRecord {
	full := int64(capacity) * 1000
	if cur == nil {
		return bucketRecord{MilliTokens: full, LastRefillMs: nowMs}
	}
	b := *cur
	if elapsed := nowMs - b.LastRefillMs; elapsed > 0 {
		gained := float64(elapsed) * rate // thousandths of a token: ms × tokens/s
		if gained >= float64(full-b.MilliTokens) {
			b.MilliTokens = full
		} else {
			b.MilliTokens += int64(gained)
		}
		b.LastRefillMs = nowMs
	}
	b.MilliTokens = min(b.MilliTokens, full)
	return b
}

// decideTake takes tokens if the refilled bucket holds them; otherwise it
// writes nothing and says when enough will have refilled.
func decideTake(cur *bucketRecord, tokens, capacity uint64, rate float64, nowMs int64) (*bucketRecord, api.RateLimitResponse) {
	b := refill(cur, capacity, rate, nowMs)
	need := int64(tokens) * 1000
	if b.MilliTokens < need {
		wait := math.Ceil(float64(need-b.MilliTokens) / rate)
		return nil, api.RateLimitResponse{
			TokensRemaining: uint64(b.MilliTokens / 1000),
			RetryAfterMs:    max(int64(wait), 1),
			Error:           "rate limited",
		}
	}
	b.MilliTokens -= need
	return &b, api.RateLimitResponse{IsSuccess: true, TokensRemaining: uint64(b.MilliTokens / 1000)}
}

func checkBucket(req *api.RateLimitRequest) error {
	if req.Capacity < 1 || req.Capacity > api.MaxRateLimitCapacity {
		return api.Errorf(api.CodeInvalidArgument, "capacity is %d; want 1..%d", req.Capacity, api.MaxRateLimitCapacity)
	}
	if math.IsNaN(req.RatePerSecond) || req.RatePerSecond <= 0 || req.RatePerSecond > api.MaxRateLimitPerSecond {
		return api.Errorf(api.CodeInvalidArgument, "rate is %v tokens/s; want more than 0 and at most %d", req.RatePerSecond, api.MaxRateLimitPerSecond)
	}
	return nil
}

func (s *Service) bucketStep(ctx context.Context, op string, req *api.RateLimitRequest, decide func(cur *bucketRecord, nowMs int64) (*bucketRecord, api.RateLimitResponse)) (*api.RateLimitResponse, error) {
	key, err := recordKey(PrefixRateLimit, "key", req.Key)
	if err != nil {
		return nil, err
	}
	if err := checkBucket(req); err != nil {
		return nil, err
	}
	out, err := recordStep(ctx, s, key, decodeBucket, decide)
	if err != nil {
		return nil, err
	}
	out.Operation, out.Key = op, req.Key
	return &out, nil
}

// RateLimitTryAcquire takes Tokens (default 1) if available, without waiting.
func (s *Service) RateLimitTryAcquire(ctx context.Context, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
	tokens := req.Tokens
	if tokens == 0 {
		tokens = 1
	}
	if tokens > req.Capacity && req.Capacity > 0 {
		return nil, api.Errorf(api.CodeInvalidArgument, "tokens is %d, more than the capacity %d: it could never be granted", tokens, req.Capacity)
	}
	return s.bucketStep(ctx, "try_acquire", req, func(cur *bucketRecord, nowMs int64) (*bucketRecord, api.RateLimitResponse) {
		return decideTake(cur, tokens, req.Capacity, req.RatePerSecond, nowMs)
	})
}

// RateLimitAvailable reports the whole tokens available now.
func (s *Service) RateLimitAvailable(ctx context.Context, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
	return s.bucketStep(ctx, "available", req, func(cur *bucketRecord, nowMs int64) (*bucketRecord, api.RateLimitResponse) {
		b := refill(cur, req.Capacity, req.RatePerSecond, nowMs)
		return nil, api.RateLimitResponse{IsSuccess: true, TokensRemaining: uint64(b.MilliTokens / 1000)}
	})
}

// RateLimitReset refills the bucket to capacity.
func (s *Service) RateLimitReset(ctx context.Context, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
	return s.bucketStep(ctx, "reset", req, func(_ *bucketRecord, nowMs int64) (*bucketRecord, api.RateLimitResponse) {
		return &bucketRecord{MilliTokens: int64(req.Capacity) * 1000, LastRefillMs: nowMs},
			api.RateLimitResponse{IsSuccess: true, TokensRemaining: req.Capacity}
	})
}
