package coordination

import (
	"context"
	"fmt"

	"github.com/aspen-dev/aspen/api"
)

// BarrierClient is what a Barrier needs from a cluster; *client.Client has it.
type BarrierClient interface {
	BarrierEnter(context.Context, *api.BarrierRequest) (*api.BarrierResponse, error)
	BarrierLeave(context.Context, *api.BarrierRequest) (*api.BarrierResponse, error)
	BarrierStatus(context.Context, *api.BarrierRequest) (*api.BarrierResponse, error)
}

// BarrierError is a refused barrier step (count mismatch, barrier full or
// leaving, not a participant).
type BarrierError struct {
	Name    string
	Message string
}

func (e *BarrierError) Error() string {
	return fmt.Sprintf("coordination: barrier %q: %s", e.Name, e.Message)
}

// Barrier is a double barrier: Enter waits until Count participants have
// entered, Leave waits until all of them have left. The waiting is done
// here, by polling with jittered backoff (10 ms → 1 s); the cluster keeps
// no waiter.
type Barrier struct {
	c           BarrierClient
	name        string
	participant string
	count       int
}

// NewBarrier returns a handle on the barrier name for participant (a
// random id when empty), among count participants. It makes no call.
func NewBarrier(c BarrierClient, name, participant string, count int) *Barrier {
	if participant == "" {
		participant = randomID()
	}
	return &Barrier{c: c, name: name, participant: participant, count: count}
}

// Participant is the participant id of this handle.
func (b *Barrier) Participant() string { return b.participant }

// Enter enters the barrier and waits until it is ready, or ctx ends. It
// returns the last answer (also with an error, when there was one): a
// *BarrierError when refused, or ctx's error wrapped when it ended first.
func (b *Barrier) Enter(ctx context.Context) (*api.BarrierResponse, error) {
	return b.poll(ctx, b.c.BarrierEnter)
}

// Leave leaves the barrier and waits until every participant has left.
func (b *Barrier) Leave(ctx context.Context) (*api.BarrierResponse, error) {
	return b.poll(ctx, b.c.BarrierLeave)
}

// Status describes the barrier.
func (b *Barrier) Status(ctx context.Context) (*api.BarrierResponse, error) {
	return b.c.BarrierStatus(ctx, &api.BarrierRequest{Name: b.name})
}

func (b *Barrier) poll(ctx context.Context, step func(context.Context, *api.BarrierRequest) (*api.BarrierResponse, error)) (*api.BarrierResponse, error) {
	req := &api.BarrierRequest{Name: b.name, Participant: b.participant, Count: b.count}
	var bo backoff
	var last *api.BarrierResponse
	for {
		resp, err := step(ctx, req)
		if err != nil {
			if ended(ctx) != nil && last != nil {
				return last, fmt.Errorf("%w: barrier %q: %s", ended(ctx), b.name, last.Error)
			}
			return last, err
		}
		last = resp
		switch {
		case resp.IsSuccess:
			return resp, nil
		case !resp.Pending:
			return resp, &BarrierError{Name: b.name, Message: resp.Error}
		}
		if err := bo.wait(ctx, 0); err != nil {
			return resp, fmt.Errorf("%w: barrier %q: %s", err, b.name, resp.Error)
		}
	}
}
