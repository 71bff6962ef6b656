package client

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// Coordination primitives: one typed method per operation. A negative
// answer (lock held, CAS lost, rate limited) is not an error: the response
// says IsSuccess false and Error why. Package coordination builds the
// idiomatic handles and the blocking loops on these.

// LockTryAcquire acquires a lock if it is free.
func (c *Client) LockTryAcquire(ctx context.Context, req *api.LockAcquireRequest) (*api.LockResponse, error) {
	return call[api.LockResponse](ctx, c, api.OpLockTryAcquire, req)
}

// LockRelease releases a lock held with a fencing token.
func (c *Client) LockRelease(ctx context.Context, req *api.LockReleaseRequest) (*api.LockResponse, error) {
	return call[api.LockResponse](ctx, c, api.OpLockRelease, req)
}

// LockRenew extends a held lock's deadline.
func (c *Client) LockRenew(ctx context.Context, req *api.LockRenewRequest) (*api.LockResponse, error) {
	return call[api.LockResponse](ctx, c, api.OpLockRenew, req)
}

// CounterGet reads an unsigned counter (missing = 0).
func (c *Client) CounterGet(ctx context.Context, req *api.CounterRequest) (*api.CounterResponse, error) {
	return call[api.CounterResponse](ctx, c, api.OpCounterGet, req)
}

// CounterAdd adds to an unsigned counter, saturating at 2^64-1.
func (c *Client) CounterAdd(ctx context.Context, req *api.CounterRequest) (*api.CounterResponse, error) {
	return call[api.CounterResponse](ctx, c, api.OpCounterAdd, req)
}

// CounterSub subtracts from an unsigned counter, saturating at 0.
func (c *Client) CounterSub(ctx context.Context, req *api.CounterRequest) (*api.CounterResponse, error) {
	return call[api.CounterResponse](ctx, c, api.OpCounterSub, req)
}

// CounterSet sets an unsigned counter.
func (c *Client) CounterSet(ctx context.Context, req *api.CounterSetRequest) (*api.CounterResponse, error) {
	return call[api.CounterResponse](ctx, c, api.OpCounterSet, req)
}

// CounterCAS compares and sets an unsigned counter.
func (c *Client) CounterCAS(ctx context.Context, req *api.CounterCASRequest) (*api.CounterResponse, error) {
	return call[api.CounterResponse](ctx, c, api.OpCounterCAS, req)
}

// SignedCounterGet reads a signed counter (missing = 0).
func (c *Client) SignedCounterGet(ctx context.Context, req *api.SignedCounterRequest) (*api.SignedCounterResponse, error) {
	return call[api.SignedCounterResponse](ctx, c, api.OpSignedCounterGet, req)
}

// SignedCounterAdd adds a signed delta to a signed counter.
func (c *Client) SignedCounterAdd(ctx context.Context, req *api.SignedCounterRequest) (*api.SignedCounterResponse, error) {
	return call[api.SignedCounterResponse](ctx, c, api.OpSignedCounterAdd, req)
}

// SequenceNext hands out the next ID of a sequence.
func (c *Client) SequenceNext(ctx context.Context, req *api.SequenceRequest) (*api.SequenceResponse, error) {
	return call[api.SequenceResponse](ctx, c, api.OpSequenceNext, req)
}

// SequenceReserve hands out req.Count consecutive IDs.
func (c *Client) SequenceReserve(ctx context.Context, req *api.SequenceRequest) (*api.SequenceResponse, error) {
	return call[api.SequenceResponse](ctx, c, api.OpSequenceReserve, req)
}

// SequenceCurrent returns the next ID a sequence would hand out.
func (c *Client) SequenceCurrent(ctx context.Context, req *api.SequenceRequest) (*api.SequenceResponse, error) {
	return call[api.SequenceResponse](ctx, c, api.OpSequenceCurrent, req)
}

// SemaphoreTryAcquire takes semaphore permits if they are free.
func (c *Client) SemaphoreTryAcquire(ctx context.Context, req *api.SemaphoreAcquireRequest) (*api.SemaphoreResponse, error) {
	return call[api.SemaphoreResponse](ctx, c, api.OpSemaphoreTryAcquire, req)
}

// SemaphoreRelease returns semaphore permits.
func (c *Client) SemaphoreRelease(ctx context.Context, req *api.SemaphoreReleaseRequest) (*api.SemaphoreResponse, error) {
	return call[api.SemaphoreResponse](ctx, c, api.OpSemaphoreRelease, req)
}

// SemaphoreStatus reports a semaphore's capacity and holders.
func (c *Client) SemaphoreStatus(ctx context.Context, req *api.SemaphoreStatusRequest) (*api.SemaphoreResponse, error) {
	return call[api.SemaphoreResponse](ctx, c, api.OpSemaphoreStatus, req)
}

// RateLimitTryAcquire takes tokens from a bucket if available.
func (c *Client) RateLimitTryAcquire(ctx context.Context, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
	return call[api.RateLimitResponse](ctx, c, api.OpRateLimitTryAcquire, req)
}

// RateLimitAvailable reports the tokens available in a bucket.
func (c *Client) RateLimitAvailable(ctx context.Context, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
	return call[api.RateLimitResponse](ctx, c, api.OpRateLimitAvailable, req)
}

// RateLimitReset refills a bucket.
func (c *Client) RateLimitReset(ctx context.Context, req *api.RateLimitRequest) (*api.RateLimitResponse, error) {
	return call[api.RateLimitResponse](ctx, c, api.OpRateLimitReset, req)
}
