package client

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// WorkerRegister registers (or re-registers) a worker of a pool.
func (c *Client) WorkerRegister(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerRegister, req)
}

// WorkerHeartbeat extends a worker's registration to now + its TTL.
func (c *Client) WorkerHeartbeat(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerHeartbeat, req)
}

// WorkerDeregister ends a worker's registration.
func (c *Client) WorkerDeregister(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerDeregister, req)
}

// WorkerSubmit adds a task to a pool.
func (c *Client) WorkerSubmit(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerSubmit, req)
}

// WorkerClaim assigns pending tasks to a worker within its free capacity.
func (c *Client) WorkerClaim(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerClaim, req)
}

// WorkerAssign places pending tasks on a pool's least loaded live workers.
func (c *Client) WorkerAssign(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerAssign, req)
}

// WorkerStart marks a worker's task started.
func (c *Client) WorkerStart(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerStart, req)
}

// WorkerComplete finishes a worker's task.
func (c *Client) WorkerComplete(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerComplete, req)
}

// WorkerFail returns a worker's task to pending.
func (c *Client) WorkerFail(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerFail, req)
}

// WorkerSteal moves not started tasks of the most loaded worker to this one.
func (c *Client) WorkerSteal(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerSteal, req)
}

// WorkerStatus lists a pool's workers and counts its tasks by state.
func (c *Client) WorkerStatus(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerStatus, req)
}

// WorkerTasks lists a pool's unfinished tasks.
func (c *Client) WorkerTasks(ctx context.Context, req *api.WorkerRequest) (*api.WorkerResponse, error) {
	return call[api.WorkerResponse](ctx, c, api.OpWorkerTasks, req)
}
