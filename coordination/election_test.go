package coordination_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
)

// refusingLocks grants every acquisition and refuses every renewal, as a
// cluster does once another candidate took the lock over.
type refusingLocks struct{ renewals atomic.Int32 }

func (f *refusingLocks) LockTryAcquire(_ context.Context, req *api.LockAcquireRequest) (*api.LockResponse, error) {
	return &api.LockResponse{IsSuccess: true, Key: req.Key, HolderID: req.HolderID, FencingToken: 7, DeadlineMs: time.Now().Add(time.Minute).UnixMilli()}, nil
}

func (f *refusingLocks) LockRelease(context.Context, *api.LockReleaseRequest) (*api.LockResponse, error) {
	return &api.LockResponse{Error: "lock is held by other with fencing token 8"}, nil
}

func (f *refusingLocks) LockRenew(context.Context, *api.LockRenewRequest) (*api.LockResponse, error) {
	f.renewals.Add(1)
	return &api.LockResponse{Error: "lock is held by other with fencing token 8"}, nil
}

func (f *refusingLocks) LockStatus(context.Context, *api.LockStatusRequest) (*api.LockResponse, error) {
	return &api.LockResponse{IsSuccess: true, HolderID: "other", FencingToken: 8}, nil
}

// TestLeadershipLostOnRefusedRenewal: when the background renewal is
// refused, Done closes long before the term's TTL would have run out, and
// Resign reports the loss.
func TestLeadershipLostOnRefusedRenewal(t *testing.T) {
	f := &refusingLocks{}
	e := coordination.NewElection(f, "jobs", "me", coordination.ElectionOptions{TTL: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lead, err := e.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lead.FencingToken() != 7 {
		t.Fatalf("token %d, want 7", lead.FencingToken())
	}
	select {
	case <-lead.Done():
	case <-ctx.Done():
		t.Fatal("leadership not lost after refused renewals")
	}
	if f.renewals.Load() == 0 {
		t.Error("Done closed without a renewal attempt")
	}
	if err := lead.Resign(ctx); !errors.Is(err, coordination.ErrLost) {
		t.Errorf("resign after loss: %v, want ErrLost", err)
	}
	l, err := e.Leader(ctx)
	if err != nil || l.Candidate != "other" || l.FencingToken != 8 {
		t.Errorf("Leader = %+v, %v", l, err)
	}
}
