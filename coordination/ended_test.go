package coordination

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// lateCtx is a context whose deadline has passed but which has not noticed
// yet, as a real one is for a moment after a stream cut by the same
// deadline failed a call.
type lateCtx struct {
	context.Context
	deadline time.Time
}

func (c lateCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func TestEnded(t *testing.T) {
	if err := ended(lateCtx{context.Background(), time.Now().Add(-time.Millisecond)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ended(deadline passed, not noticed) = %v; want DeadlineExceeded", err)
	}
	if err := ended(lateCtx{context.Background(), time.Now().Add(time.Hour)}); err != nil {
		t.Errorf("ended(deadline ahead) = %v; want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ended(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ended(cancelled) = %v; want Canceled", err)
	}
}

// heldThenCut answers the first acquisition "held" and fails the next one
// the way a call cut by its deadline fails.
type heldThenCut struct{ calls int }

func (f *heldThenCut) LockTryAcquire(ctx context.Context, _ *api.LockAcquireRequest) (*api.LockResponse, error) {
	f.calls++
	if f.calls == 1 {
		return &api.LockResponse{Error: "lock is held by B", HolderID: "B", FencingToken: 3}, nil
	}
	d, _ := ctx.Deadline()
	time.Sleep(time.Until(d)) // the stream's deadline cuts the call
	return nil, api.Errorf(api.CodeUnavailable, "lock.try_acquire: reading response: deadline exceeded (the outcome is unknown)")
}

func (f *heldThenCut) LockRelease(context.Context, *api.LockReleaseRequest) (*api.LockResponse, error) {
	return nil, errors.New("unused")
}

func (f *heldThenCut) LockRenew(context.Context, *api.LockRenewRequest) (*api.LockResponse, error) {
	return nil, errors.New("unused")
}

// TestAcquireTimesOutWhenTheLastCallIsCut: a wait whose last call failed
// because the deadline passed reports running out of time (and who held
// the lock), not the failed call — so aspen-cli exits 1 "timed out", not 3.
func TestAcquireTimesOutWhenTheLastCallIsCut(t *testing.T) {
	f := &heldThenCut{}
	ctx := lateCtx{context.Background(), time.Now().Add(20 * time.Millisecond)}
	_, err := NewLock(f, "L", LockOptions{Holder: "A"}).Acquire(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrHeld) {
		t.Fatalf("Acquire = %v after %d calls; want DeadlineExceeded wrapping ErrHeld", err, f.calls)
	}
}
