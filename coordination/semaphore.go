package coordination

import (
	"context"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// SemaphoreClient is what a Semaphore needs; *client.Client has it.
type SemaphoreClient interface {
	SemaphoreTryAcquire(context.Context, *api.SemaphoreAcquireRequest) (*api.SemaphoreResponse, error)
	SemaphoreRelease(context.Context, *api.SemaphoreReleaseRequest) (*api.SemaphoreResponse, error)
	SemaphoreStatus(context.Context, *api.SemaphoreStatusRequest) (*api.SemaphoreResponse, error)
}

// DeniedError says why a semaphore or rate limiter refused, and when to try
// again.
type DeniedError struct {
	Name       string
	Message    string
	RetryAfter time.Duration
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("coordination: %q: %s (retry after %s)", e.Name, e.Message, e.RetryAfter)
}

// Is makes errors.Is(err, ErrUnavailable) match.
func (e *DeniedError) Is(target error) bool { return target == ErrUnavailable }

// SemaphoreOptions configure a Semaphore.
type SemaphoreOptions struct {
	// Holder identifies this holder (default: a random id per Semaphore).
	Holder string
	// Capacity is the number of permits (required, 1..1,000,000).
	Capacity uint32
	// TTL is how long permits stay held without a new acquire (default 30s).
	TTL time.Duration
}

// Semaphore is a named counting semaphore: the live permits of all holders
// never exceed the capacity; permits of a holder that does not come back
// within its TTL are freed. Acquiring again refreshes the holder's TTL.
type Semaphore struct {
	c    SemaphoreClient
	name string
	opts SemaphoreOptions
}

// NewSemaphore returns a handle on the semaphore name.
func NewSemaphore(c SemaphoreClient, name string, opts SemaphoreOptions) *Semaphore {
	if opts.Holder == "" {
		opts.Holder = randomID()
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	return &Semaphore{c: c, name: name, opts: opts}
}

// TryAcquire takes n permits (refreshing this holder's TTL) if they are
// free; otherwise a *DeniedError (errors.Is(err, ErrUnavailable)).
func (s *Semaphore) TryAcquire(ctx context.Context, n uint32) (*api.SemaphoreResponse, error) {
	resp, err := s.c.SemaphoreTryAcquire(ctx, &api.SemaphoreAcquireRequest{Name: s.name, HolderID: s.opts.Holder,
		Permits: n, Capacity: s.opts.Capacity, TTLMs: max(s.opts.TTL.Milliseconds(), 1)})
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return resp, &DeniedError{Name: s.name, Message: resp.Error, RetryAfter: time.Duration(resp.RetryAfterMs) * time.Millisecond}
	}
	return resp, nil
}

// Acquire waits for n permits until ctx ends.
func (s *Semaphore) Acquire(ctx context.Context, n uint32) (*api.SemaphoreResponse, error) {
	return retry(ctx, func() (*api.SemaphoreResponse, error) { return s.TryAcquire(ctx, n) }, denied)
}

// Release returns n permits (0: all this holder has).
func (s *Semaphore) Release(ctx context.Context, n uint32) error {
	_, err := s.c.SemaphoreRelease(ctx, &api.SemaphoreReleaseRequest{Name: s.name, HolderID: s.opts.Holder, Permits: n})
	return err
}

// Status reports capacity, free permits and live holders.
func (s *Semaphore) Status(ctx context.Context) (*api.SemaphoreResponse, error) {
	return s.c.SemaphoreStatus(ctx, &api.SemaphoreStatusRequest{Name: s.name})
}
