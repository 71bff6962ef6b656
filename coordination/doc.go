// Package coordination is the Go library of Aspen's coordination
// primitives: locks with fencing tokens, lock sets, read/write locks,
// counters, sequences, semaphores, token-bucket rate limiters, queues,
// barriers, the service registry, leases, leader election and worker pools
// (capacity-bounded task placement with work stealing), each a handle over
// a cluster client.
//
//	c, _ := client.New(client.Config{Ticket: t})
//	l := coordination.NewLock(c, "jobs/nightly", coordination.LockOptions{TTL: 30 * time.Second})
//	g, err := l.Acquire(ctx) // waits until the lock is free or ctx ends
//	if err != nil { ... }
//	defer g.Release(ctx)
//	write(g.FencingToken(), ...) // pass the token to whatever the lock protects
//
// Every operation runs on the cluster's leader as one replicated
// transaction; the only client-side logic is the waiting: Acquire methods
// retry the try operation with jittered exponential backoff (10 ms doubling
// to 1 s, or the server's retry-after hint) until it succeeds or the
// context ends. Handles are safe for concurrent use.
package coordination

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff bounds of the blocking acquires.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// backoff is a jittered exponential backoff: each pause is uniform in
// [d/2, d], d doubling from minBackoff up to maxBackoff.
type backoff struct{ d time.Duration }

// wait sleeps for the next pause, at least hint when hint > 0 (capped at
// maxBackoff), or until ctx ends.
func (b *backoff) wait(ctx context.Context, hint time.Duration) error {
	if b.d == 0 {
		b.d = minBackoff
	}
	p := b.d/2 + rand.N(b.d/2+1)
	if hint > p {
		p = min(hint, maxBackoff)
	}
	b.d = min(2*b.d, maxBackoff)
	t := time.NewTimer(p)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retry calls try until it succeeds, fails other than by a refusal, or ctx
// ends; refused says whether err is a refusal to wait out, and the least
// wait the server asked for. A wait that runs out of time returns an error
// wrapping both ctx's error and the last refusal, so callers see why they
// waited and errors.Is(err, context.DeadlineExceeded) holds.
func retry[T any](ctx context.Context, try func() (T, error), refused func(error) (time.Duration, bool)) (T, error) {
	var b backoff
	var last error
	for {
		v, err := try()
		if err == nil {
			return v, nil
		}
		hint, ok := refused(err)
		if !ok {
			if ended(ctx) != nil && last != nil {
				return v, fmt.Errorf("%w: %w", ended(ctx), last)
			}
			return v, err
		}
		last = err
		if werr := b.wait(ctx, hint); werr != nil {
			return v, fmt.Errorf("%w: %w", werr, err)
		}
	}
}

// held is the refusal of a lock that someone else holds (ErrHeld).
func held(err error) (time.Duration, bool) { return 0, errors.Is(err, ErrHeld) }

// denied is a refusal that says when to ask again (*DeniedError).
func denied(err error) (time.Duration, bool) {
	var d *DeniedError
	if errors.As(err, &d) {
		return d.RetryAfter, true
	}
	return 0, false
}

// ended returns ctx's error, or context.DeadlineExceeded once ctx's
// deadline has passed though ctx has not noticed yet: a call is cut by its
// stream's deadline, which is ctx's, a moment before ctx.Err() is set, and
// a wait that ran out of time must say so rather than report that call's
// failure.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// randomID is a random holder id for handles created without one.
func randomID() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 16)
	for i := range b {
		b[i] = hex[rand.N(16)]
	}
	return string(b)
}
