package coordination

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// WorkerClient is what a WorkerPool needs from a cluster; *client.Client
// has it.
type WorkerClient interface {
	WorkerRegister(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerHeartbeat(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerDeregister(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerSubmit(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerClaim(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerAssign(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerStart(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerComplete(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerFail(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerSteal(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerStatus(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
	WorkerTasks(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error)
}

// ErrWorkerRefused is wrapped by the errors of a refused worker operation:
// stale fencing token, expired or missing registration, a task that is not
// the worker's, a task id already submitted.
var ErrWorkerRefused = errors.New("worker operation refused")

// WorkerPool is a handle on a pool of workers and the tasks placed on
// them (spec 3.11). Placement never exceeds a worker's capacity; a worker
// that stops heartbeating for its TTL (leader clock) loses its unfinished
// tasks to the others.
type WorkerPool struct {
	c    WorkerClient
	pool string
}

// NewWorkerPool returns a handle on pool. It makes no call.
func NewWorkerPool(c WorkerClient, pool string) *WorkerPool { return &WorkerPool{c: c, pool: pool} }

func (p *WorkerPool) refused(op, worker string, resp *api.WorkerResponse) error {
	return fmt.Errorf("%w: pool %s worker %s: %s: %s", ErrWorkerRefused, p.pool, worker, op, resp.Error)
}

// Submit adds a pending task with a payload (at most 64 KiB) to the pool.
func (p *WorkerPool) Submit(ctx context.Context, taskID string, payload []byte) error {
	resp, err := p.c.WorkerSubmit(ctx, &api.WorkerRequest{Pool: p.pool, TaskID: taskID, Payload: payload})
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return p.refused("submit", "", resp)
	}
	return nil
}

// Assign places up to max (≤ 16) pending tasks on the pool's live workers,
// each on the least loaded one (load/capacity) with free capacity, and
// returns them with the worker each went to (see api.WorkerTask.WorkerID).
func (p *WorkerPool) Assign(ctx context.Context, max int) ([]api.WorkerTask, error) {
	resp, err := p.c.WorkerAssign(ctx, &api.WorkerRequest{Pool: p.pool, Max: max})
	if err != nil {
		return nil, err
	}
	return resp.Tasks, nil
}

// Status lists the pool's workers (capacity, load, liveness) and counts
// its unfinished tasks by state.
func (p *WorkerPool) Status(ctx context.Context) ([]api.WorkerInfo, map[string]int, error) {
	resp, err := p.c.WorkerStatus(ctx, &api.WorkerRequest{Pool: p.pool})
	if err != nil {
		return nil, nil, err
	}
	return resp.Workers, resp.Counts, nil
}

// Tasks lists the pool's unfinished tasks of state ("" = all), at most
// limit (0 = 100, at most 1,000).
func (p *WorkerPool) Tasks(ctx context.Context, state string, limit int) ([]api.WorkerTask, error) {
	resp, err := p.c.WorkerTasks(ctx, &api.WorkerRequest{Pool: p.pool, State: state, Limit: limit})
	if err != nil {
		return nil, err
	}
	return resp.Tasks, nil
}

// Worker is one registration of a worker in a pool, fenced by its token.
type Worker struct {
	p        *WorkerPool
	id       string
	token    uint64
	deadline time.Time
}

// Register registers (or re-registers, ending the earlier registration and
// releasing its tasks) worker id with capacity ≥ 1 and a liveness TTL
// (0 = 30 s, at most 24 h). The token is larger than any the pool issued
// before, even to an id whose record was deleted. A pool holds at most
// 1,000 workers that are live or still named by tasks; registering a new
// id beyond that is refused (api.CodeResourceExhausted).
func (p *WorkerPool) Register(ctx context.Context, id string, capacity int, ttl time.Duration) (*Worker, error) {
	resp, err := p.c.WorkerRegister(ctx, &api.WorkerRequest{Pool: p.pool, WorkerID: id, Capacity: capacity, TTLMs: ttl.Milliseconds()})
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, p.refused("register", id, resp)
	}
	return &Worker{p: p, id: id, token: resp.FencingToken, deadline: time.UnixMilli(resp.DeadlineMs)}, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.id }

// FencingToken is the registration's token.
func (w *Worker) FencingToken() uint64 { return w.token }

// LeaderDeadline is when the registration ends unless heartbeated, by the
// leader's clock.
func (w *Worker) LeaderDeadline() time.Time { return w.deadline }

func (w *Worker) req() *api.WorkerRequest {
	return &api.WorkerRequest{Pool: w.p.pool, WorkerID: w.id, FencingToken: w.token}
}

func (w *Worker) do(ctx context.Context, op string, f func(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error), req *api.WorkerRequest) (*api.WorkerResponse, error) {
	resp, err := f(ctx, req)
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, w.p.refused(op, w.id, resp)
	}
	if resp.DeadlineMs != 0 {
		w.deadline = time.UnixMilli(resp.DeadlineMs)
	}
	return resp, nil
}

// Heartbeat extends the registration to now + its TTL; an expired one is
// refused (register again).
func (w *Worker) Heartbeat(ctx context.Context) error {
	_, err := w.do(ctx, "heartbeat", w.p.c.WorkerHeartbeat, w.req())
	return err
}

// Deregister ends the registration; its unfinished tasks become pending.
// The worker's record is deleted at once when it holds no task, else once
// they are reclaimed (when the pool next prunes).
func (w *Worker) Deregister(ctx context.Context) error {
	_, err := w.do(ctx, "deregister", w.p.c.WorkerDeregister, w.req())
	return err
}

// Claim assigns up to min(max, free capacity) pending tasks (max ≤ 16) to
// the worker and returns them; none when the pool has nothing to place.
func (w *Worker) Claim(ctx context.Context, max int) ([]api.WorkerTask, error) {
	req := w.req()
	req.Max = max
	resp, err := w.do(ctx, "claim", w.p.c.WorkerClaim, req)
	if err != nil {
		return nil, err
	}
	return resp.Tasks, nil
}

// Steal moves up to max (≤ 16) assigned but not started tasks of the most
// loaded live worker to this one — never more than its free capacity nor
// half of the victim's not started tasks — and returns them and the
// victim's id.
func (w *Worker) Steal(ctx context.Context, max int) ([]api.WorkerTask, string, error) {
	req := w.req()
	req.Max = max
	resp, err := w.do(ctx, "steal", w.p.c.WorkerSteal, req)
	if err != nil {
		return nil, "", err
	}
	return resp.Tasks, resp.Victim, nil
}

func (w *Worker) taskOp(ctx context.Context, op string, f func(context.Context, *api.WorkerRequest) (*api.WorkerResponse, error), taskID, errMsg string) error {
	req := w.req()
	req.TaskID, req.Error = taskID, errMsg
	_, err := w.do(ctx, op, f, req)
	return err
}

// Start marks one of the worker's tasks started: it is no longer stolen.
func (w *Worker) Start(ctx context.Context, taskID string) error {
	return w.taskOp(ctx, "start", w.p.c.WorkerStart, taskID, "")
}

// Complete finishes one of the worker's tasks and frees its capacity.
func (w *Worker) Complete(ctx context.Context, taskID string) error {
	return w.taskOp(ctx, "complete", w.p.c.WorkerComplete, taskID, "")
}

// Fail returns one of the worker's tasks to pending (its attempt count
// kept) with a message, and frees its capacity.
func (w *Worker) Fail(ctx context.Context, taskID, msg string) error {
	return w.taskOp(ctx, "fail", w.p.c.WorkerFail, taskID, msg)
}
