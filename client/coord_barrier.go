package client

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// BarrierEnter enters a barrier (one step; see coordination.Barrier).
func (c *Client) BarrierEnter(ctx context.Context, req *api.BarrierRequest) (*api.BarrierResponse, error) {
	return call[api.BarrierResponse](ctx, c, api.OpBarrierEnter, req)
}

// BarrierLeave leaves a barrier (one step).
func (c *Client) BarrierLeave(ctx context.Context, req *api.BarrierRequest) (*api.BarrierResponse, error) {
	return call[api.BarrierResponse](ctx, c, api.OpBarrierLeave, req)
}

// BarrierStatus describes a barrier.
func (c *Client) BarrierStatus(ctx context.Context, req *api.BarrierRequest) (*api.BarrierResponse, error) {
	return call[api.BarrierResponse](ctx, c, api.OpBarrierStatus, req)
}
