package coordination

import (
	"context"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// RWLockClient is what an RWLock needs from a cluster; *client.Client has it.
type RWLockClient interface {
	RWLockTryRead(context.Context, *api.RWLockRequest) (*api.RWLockResponse, error)
	RWLockTryWrite(context.Context, *api.RWLockRequest) (*api.RWLockResponse, error)
	RWLockReleaseRead(context.Context, *api.RWLockRequest) (*api.RWLockResponse, error)
	RWLockReleaseWrite(context.Context, *api.RWLockRequest) (*api.RWLockResponse, error)
	RWLockDowngrade(context.Context, *api.RWLockRequest) (*api.RWLockResponse, error)
	RWLockStatus(context.Context, *api.RWLockRequest) (*api.RWLockResponse, error)
}

// RWLockOptions configure an RWLock. Zero values take the defaults.
type RWLockOptions struct {
	// Holder identifies this holder (default: a random id per RWLock).
	Holder string
	// TTL is how long a hold lasts, on the leader's clock (default 30s).
	TTL time.Duration
}

// RWLock is a named read/write lock: many readers or one writer. A writer
// that waits (Lock) keeps new readers out until it gets the lock (writer
// preference). Each write hold carries a fencing token strictly greater
// than every earlier one.
type RWLock struct {
	c    RWLockClient
	name string
	opts RWLockOptions
}

// NewRWLock returns a handle on the read/write lock name. It makes no call.
func NewRWLock(c RWLockClient, name string, opts RWLockOptions) *RWLock {
	if opts.Holder == "" {
		opts.Holder = randomID()
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	opts.TTL = max(opts.TTL, time.Millisecond)
	return &RWLock{c: c, name: name, opts: opts}
}

// Holder is the holder id this handle acquires with.
func (l *RWLock) Holder() string { return l.opts.Holder }

func (l *RWLock) req() *api.RWLockRequest {
	return &api.RWLockRequest{Name: l.name, HolderID: l.opts.Holder, TTLMs: l.opts.TTL.Milliseconds()}
}

// refused turns a negative answer into a *HeldError.
func (l *RWLock) refused(resp *api.RWLockResponse) error {
	return &HeldError{Key: l.name, Holder: resp.WriterHolder, FencingToken: resp.FencingToken, Message: resp.Error}
}

// TryRLock takes a read hold if no writer holds or waits for the lock;
// otherwise it returns a *HeldError (errors.Is(err, ErrHeld)).
func (l *RWLock) TryRLock(ctx context.Context) (*RWGuard, error) {
	resp, err := l.c.RWLockTryRead(ctx, l.req())
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, l.refused(resp)
	}
	return &RWGuard{l: l, deadline: time.UnixMilli(resp.DeadlineMs)}, nil
}

// TryLock takes the write hold if the lock is free.
func (l *RWLock) TryLock(ctx context.Context) (*RWGuard, error) { return l.tryWrite(ctx, false) }

func (l *RWLock) tryWrite(ctx context.Context, wait bool) (*RWGuard, error) {
	req := l.req()
	req.Wait = wait
	resp, err := l.c.RWLockTryWrite(ctx, req)
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, l.refused(resp)
	}
	return &RWGuard{l: l, write: true, token: resp.FencingToken, deadline: time.UnixMilli(resp.DeadlineMs)}, nil
}

// RLock waits for a read hold until ctx ends (jittered backoff).
func (l *RWLock) RLock(ctx context.Context) (*RWGuard, error) {
	return retry(ctx, func() (*RWGuard, error) { return l.TryRLock(ctx) }, held)
}

// Lock waits for the write hold until ctx ends. While it waits, new
// readers are refused.
func (l *RWLock) Lock(ctx context.Context) (*RWGuard, error) {
	return retry(ctx, func() (*RWGuard, error) { return l.tryWrite(ctx, true) }, held)
}

// RWGuard is one read or write hold.
type RWGuard struct {
	l        *RWLock
	write    bool
	token    uint64
	deadline time.Time // leader clock
}

// Write reports whether the guard is a write hold.
func (g *RWGuard) Write() bool { return g.write }

// FencingToken is the token of a write hold (kept after Downgrade).
func (g *RWGuard) FencingToken() uint64 { return g.token }

// LeaderDeadline is when the hold ends, by the leader's clock.
func (g *RWGuard) LeaderDeadline() time.Time { return g.deadline }

// Downgrade turns a write hold into a read hold, keeping the token.
func (g *RWGuard) Downgrade(ctx context.Context) error {
	if !g.write {
		return fmt.Errorf("coordination: rwlock %q: downgrade of a read hold", g.l.name)
	}
	req := g.l.req()
	req.FencingToken = g.token
	resp, err := g.l.c.RWLockDowngrade(ctx, req)
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return fmt.Errorf("%w: rwlock %q: %s", ErrLost, g.l.name, resp.Error)
	}
	g.write, g.deadline = false, time.UnixMilli(resp.DeadlineMs)
	return nil
}

// Release ends the hold.
func (g *RWGuard) Release(ctx context.Context) error {
	req := g.l.req()
	var resp *api.RWLockResponse
	var err error
	if g.write {
		req.FencingToken = g.token
		resp, err = g.l.c.RWLockReleaseWrite(ctx, req)
	} else {
		resp, err = g.l.c.RWLockReleaseRead(ctx, req)
	}
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return fmt.Errorf("%w: rwlock %q: %s", ErrLost, g.l.name, resp.Error)
	}
	return nil
}
