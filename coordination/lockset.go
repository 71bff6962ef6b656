package coordination

import (
	"context"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// LockSetClient is what a LockSet needs from a cluster; *client.Client has it.
type LockSetClient interface {
	LockSetTryAcquire(context.Context, *api.LockSetRequest) (*api.LockSetResponse, error)
	LockSetRelease(context.Context, *api.LockSetRequest) (*api.LockSetResponse, error)
	LockSetRenew(context.Context, *api.LockSetRequest) (*api.LockSetResponse, error)
}

// LockSet holds up to 16 locks all-or-nothing: an acquisition takes every
// member in one transaction or none. Members are ordinary locks (the same
// names as NewLock's), each with its own strictly increasing fencing token.
type LockSet struct {
	c     LockSetClient
	names []string
	opts  LockOptions
}

// NewLockSet returns a handle on the locks names. It makes no call; the
// names are checked (1..16, distinct) by the cluster.
func NewLockSet(c LockSetClient, names []string, opts LockOptions) *LockSet {
	l := NewLock(nil, "", opts) // the same defaults as a Lock
	return &LockSet{c: c, names: append([]string(nil), names...), opts: l.opts}
}

// Holder is the holder id this handle acquires with.
func (s *LockSet) Holder() string { return s.opts.Holder }

// TryAcquire acquires every member if all are free; otherwise it returns a
// *HeldError naming the first member held (errors.Is(err, ErrHeld)).
func (s *LockSet) TryAcquire(ctx context.Context) (*LockSetGuard, error) {
	resp, err := s.c.LockSetTryAcquire(ctx, &api.LockSetRequest{Keys: s.names, HolderID: s.opts.Holder, TTLMs: s.opts.TTL.Milliseconds()})
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, &HeldError{Key: resp.BlockedMember, Holder: resp.BlockedHolder, Message: resp.Error}
	}
	return &LockSetGuard{s: s, members: resp.Members}, nil
}

// Acquire waits for every member: it retries TryAcquire with jittered
// backoff until it gets them all or ctx ends.
func (s *LockSet) Acquire(ctx context.Context) (*LockSetGuard, error) {
	return retry(ctx, func() (*LockSetGuard, error) { return s.TryAcquire(ctx) }, held)
}

// LockSetGuard is one acquisition of a lock set.
type LockSetGuard struct {
	s       *LockSet
	members []api.LockSetMember // sorted by key
}

// Members are the member locks with their fencing tokens, sorted by name.
func (g *LockSetGuard) Members() []api.LockSetMember {
	return append([]api.LockSetMember(nil), g.members...)
}

// FencingToken is the token of member name (0 when it is not a member).
func (g *LockSetGuard) FencingToken(name string) uint64 {
	for _, m := range g.members {
		if m.Key == name {
			return m.FencingToken
		}
	}
	return 0
}

// Deadline is the earliest member deadline on the leader's clock.
func (g *LockSetGuard) Deadline() time.Time {
	var d int64
	for _, m := range g.members {
		if d == 0 || m.DeadlineMs < d {
			d = m.DeadlineMs
		}
	}
	return time.UnixMilli(d)
}

func (g *LockSetGuard) request() *api.LockSetRequest {
	req := &api.LockSetRequest{HolderID: g.s.opts.Holder}
	for _, m := range g.members {
		req.Keys = append(req.Keys, m.Key)
		req.FencingTokens = append(req.FencingTokens, m.FencingToken)
	}
	return req
}

// Renew extends every member by the set's TTL, or fails with ErrLost and
// changes nothing when any member expired or was taken over.
func (g *LockSetGuard) Renew(ctx context.Context) error {
	req := g.request()
	req.TTLMs = g.s.opts.TTL.Milliseconds()
	resp, err := g.s.c.LockSetRenew(ctx, req)
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return fmt.Errorf("%w: lock set: %s", ErrLost, resp.Error)
	}
	g.members = resp.Members
	return nil
}

// Release releases every member; it fails with ErrLost, and releases
// nothing, when any member expired or was taken over.
func (g *LockSetGuard) Release(ctx context.Context) error {
	resp, err := g.s.c.LockSetRelease(ctx, g.request())
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return fmt.Errorf("%w: lock set: %s", ErrLost, resp.Error)
	}
	return nil
}
