package client

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// ServiceRegister registers (or re-registers) a service instance.
func (c *Client) ServiceRegister(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceRegister, req)
}

// ServiceHeartbeat extends a registration to now + its TTL.
func (c *Client) ServiceHeartbeat(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceHeartbeat, req)
}

// ServiceHealth sets an instance's reported health.
func (c *Client) ServiceHealth(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceHealth, req)
}

// ServiceUpdate changes an instance's version, weight or tags.
func (c *Client) ServiceUpdate(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceUpdate, req)
}

// ServiceDeregister removes an instance.
func (c *Client) ServiceDeregister(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceDeregister, req)
}

// ServiceGet returns one instance.
func (c *Client) ServiceGet(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceGet, req)
}

// ServiceList returns the names of services with registered instances.
func (c *Client) ServiceList(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceList, req)
}

// ServiceDiscover returns a service's instances matching the filters.
func (c *Client) ServiceDiscover(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return call[api.ServiceResponse](ctx, c, api.OpServiceDiscover, req)
}
