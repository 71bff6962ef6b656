package coordination

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// LockClient is what a Lock needs from a cluster; *client.Client has it.
type LockClient interface {
	LockTryAcquire(context.Context, *api.LockAcquireRequest) (*api.LockResponse, error)
	LockRelease(context.Context, *api.LockReleaseRequest) (*api.LockResponse, error)
	LockRenew(context.Context, *api.LockRenewRequest) (*api.LockResponse, error)
}

// Errors of the primitives; test them with errors.Is.
var (
	// ErrHeld: the lock is held by another holder (see *HeldError).
	ErrHeld = errors.New("coordination: lock held")
	// ErrLost: the guard no longer holds its lock (expired, taken over,
	// or already released).
	ErrLost = errors.New("coordination: lock lost")
	// ErrUnavailable: a semaphore has no free permits or a rate limiter
	// no tokens (see *DeniedError).
	ErrUnavailable = errors.New("coordination: not available")
)

// HeldError says who holds a lock a try-acquire did not get.
type HeldError struct {
	Key          string
	Holder       string
	FencingToken uint64
	Deadline     time.Time
	Message      string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("coordination: lock %q %s", e.Key, e.Message)
}

// Is makes errors.Is(err, ErrHeld) match.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// LockOptions configure a Lock. Zero values take the defaults.
type LockOptions struct {
	// Holder identifies this holder (default: a random id per Lock).
	Holder string
	// TTL is how long an acquisition lasts without renewal, on the
	// leader's clock (default 30s, at least 1ms).
	TTL time.Duration
}

// Lock is a named distributed lock. Each acquisition carries a fencing
// token, strictly greater than every earlier acquisition's (also across
// releases and expiries); pass it to the resources the lock protects so they
// can reject a stale holder. The lock is not re-entrant.
type Lock struct {
	c    LockClient
	name string
	opts LockOptions
}

// NewLock returns a handle on the lock name. It makes no call.
func NewLock(c LockClient, name string, opts LockOptions) *Lock {
	if opts.Holder == "" {
		opts.Holder = randomID()
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.TTL < time.Millisecond {
		opts.TTL = time.Millisecond
	}
	return &Lock{c: c, name: name, opts: opts}
}

// Holder is the holder id this handle acquires with.
func (l *Lock) Holder() string { return l.opts.Holder }

// TryAcquire acquires the lock if it is free; otherwise it returns a
// *HeldError (errors.Is(err, ErrHeld)).
func (l *Lock) TryAcquire(ctx context.Context) (*Guard, error) {
	resp, err := l.c.LockTryAcquire(ctx, &api.LockAcquireRequest{Key: l.name, HolderID: l.opts.Holder, TTLMs: l.opts.TTL.Milliseconds()})
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, &HeldError{Key: l.name, Holder: resp.HolderID, FencingToken: resp.FencingToken,
			Deadline: time.UnixMilli(resp.DeadlineMs), Message: resp.Error}
	}
	return newGuard(l, resp), nil
}

// Acquire waits for the lock: it retries TryAcquire with jittered backoff
// until it gets the lock or ctx ends. On timeout the error wraps both the
// context's error and the last *HeldError.
func (l *Lock) Acquire(ctx context.Context) (*Guard, error) {
	return retry(ctx, func() (*Guard, error) { return l.TryAcquire(ctx) }, held)
}

// Guard is one acquisition of a lock. Done is closed when the guard is
// known to no longer hold the lock: released, a renewal refused, or its
// deadline passed on this machine's clock.
type Guard struct {
	l     *Lock
	token uint64

	mu       sync.Mutex // guards deadline, leader, timer
	deadline time.Time
	leader   time.Time
	timer    *time.Timer
	done     chan struct{}
	once     sync.Once
}

func newGuard(l *Lock, resp *api.LockResponse) *Guard {
	g := &Guard{l: l, token: resp.FencingToken, done: make(chan struct{})}
	g.setDeadline(l.opts.TTL, resp.DeadlineMs)
	return g
}

// setDeadline arms the local expiry timer ttl from now (the leader's
// deadline is at most this late, since the request left before it was
// stamped).
func (g *Guard) setDeadline(ttl time.Duration, leaderMs int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deadline = time.Now().Add(ttl)
	g.leader = time.UnixMilli(leaderMs)
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timer = time.AfterFunc(ttl, g.lose)
}

func (g *Guard) lose() { g.once.Do(func() { close(g.done) }) }

// FencingToken is the token of this acquisition.
func (g *Guard) FencingToken() uint64 { return g.token }

// Key is the lock's name.
func (g *Guard) Key() string { return g.l.name }

// Deadline is when the hold ends unless renewed, by this machine's clock.
func (g *Guard) Deadline() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.deadline
}

// LeaderDeadline is the deadline the leader recorded, by its clock.
func (g *Guard) LeaderDeadline() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leader
}

// Holder is the holder id of the acquisition.
func (g *Guard) Holder() string { return g.l.opts.Holder }

// Done is closed when the guard no longer holds the lock.
func (g *Guard) Done() <-chan struct{} { return g.done }

// Renew extends the hold by the lock's TTL. It fails with ErrLost when the
// lock expired or was taken over.
func (g *Guard) Renew(ctx context.Context) error {
	resp, err := g.l.c.LockRenew(ctx, &api.LockRenewRequest{Key: g.l.name, HolderID: g.l.opts.Holder, FencingToken: g.token, TTLMs: g.l.opts.TTL.Milliseconds()})
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		g.lose()
		return fmt.Errorf("%w: lock %q: %s", ErrLost, g.l.name, resp.Error)
	}
	g.setDeadline(g.l.opts.TTL, resp.DeadlineMs)
	return nil
}

// Release releases the lock; the next acquisition gets a greater token.
// Releasing twice succeeds. It fails with ErrLost when the hold expired or
// was taken over before the release.
func (g *Guard) Release(ctx context.Context) error {
	resp, err := g.l.c.LockRelease(ctx, &api.LockReleaseRequest{Key: g.l.name, HolderID: g.l.opts.Holder, FencingToken: g.token})
	if err != nil {
		return err
	}
	g.mu.Lock()
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	g.lose()
	if !resp.IsSuccess {
		return fmt.Errorf("%w: lock %q: %s", ErrLost, g.l.name, resp.Error)
	}
	return nil
}
