package coordination

import (
	"context"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// RateLimitClient is what a RateLimiter needs; *client.Client has it.
type RateLimitClient interface {
	RateLimitTryAcquire(context.Context, *api.RateLimitRequest) (*api.RateLimitResponse, error)
	RateLimitAvailable(context.Context, *api.RateLimitRequest) (*api.RateLimitResponse, error)
	RateLimitReset(context.Context, *api.RateLimitRequest) (*api.RateLimitResponse, error)
}

// RateLimitOptions configure a RateLimiter; both are required and must be
// the same for every user of the key.
type RateLimitOptions struct {
	Capacity      uint64  // tokens the bucket holds when full
	RatePerSecond float64 // tokens added per second
}

// RateLimiter is a named token bucket shared by all clients: it starts full
// and refills continuously, on the leader's clock.
type RateLimiter struct {
	c    RateLimitClient
	key  string
	opts RateLimitOptions
}

// NewRateLimiter returns a handle on the bucket key.
func NewRateLimiter(c RateLimitClient, key string, opts RateLimitOptions) *RateLimiter {
	return &RateLimiter{c: c, key: key, opts: opts}
}

func (r *RateLimiter) req(n uint64) *api.RateLimitRequest {
	return &api.RateLimitRequest{Key: r.key, Tokens: n, Capacity: r.opts.Capacity, RatePerSecond: r.opts.RatePerSecond}
}

// TryAcquire takes n tokens and returns the whole tokens left, or a
// *DeniedError (errors.Is(err, ErrUnavailable)) saying when to retry.
func (r *RateLimiter) TryAcquire(ctx context.Context, n uint64) (uint64, error) {
	resp, err := r.c.RateLimitTryAcquire(ctx, r.req(n))
	if err != nil {
		return 0, err
	}
	if !resp.IsSuccess {
		return resp.TokensRemaining, &DeniedError{Name: r.key, Message: resp.Error, RetryAfter: time.Duration(resp.RetryAfterMs) * time.Millisecond}
	}
	return resp.TokensRemaining, nil
}

// Acquire waits until it can take n tokens or ctx ends.
func (r *RateLimiter) Acquire(ctx context.Context, n uint64) (uint64, error) {
	return retry(ctx, func() (uint64, error) { return r.TryAcquire(ctx, n) }, denied)
}

// Available returns the whole tokens available now.
func (r *RateLimiter) Available(ctx context.Context) (uint64, error) {
	resp, err := r.c.RateLimitAvailable(ctx, r.req(0))
	if err != nil {
		return 0, err
	}
	return resp.TokensRemaining, nil
}

// Reset refills the bucket.
func (r *RateLimiter) Reset(ctx context.Context) error {
	_, err := r.c.RateLimitReset(ctx, r.req(0))
	return err
}
