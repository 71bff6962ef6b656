package client

import (
	"context"

	"github.com/aspen-dev/aspen/api"
)

// LeaseGrant creates a lease (LeaseID 0: the cluster picks an id).
func (c *Client) LeaseGrant(ctx context.Context, req *api.LeaseGrantRequest) (*api.LeaseInfo, error) {
	return call[api.LeaseInfo](ctx, c, api.OpLeaseGrant, req)
}

// LeaseTTL describes a live lease; NOT_FOUND when it is unknown or expired.
func (c *Client) LeaseTTL(ctx context.Context, req *api.LeaseRequest) (*api.LeaseInfo, error) {
	return call[api.LeaseInfo](ctx, c, api.OpLeaseTTL, req)
}

// LeaseKeepAlive resets a live lease's deadline to now + its TTL; NOT_FOUND
// when it is unknown or expired.
func (c *Client) LeaseKeepAlive(ctx context.Context, req *api.LeaseRequest) (*api.LeaseInfo, error) {
	return call[api.LeaseInfo](ctx, c, api.OpLeaseKeepAlive, req)
}

// LeaseRevoke ends a lease and deletes the keys still attached to it.
func (c *Client) LeaseRevoke(ctx context.Context, req *api.LeaseRequest) (*api.LeaseRevokeResponse, error) {
	return call[api.LeaseRevokeResponse](ctx, c, api.OpLeaseRevoke, req)
}

// LeaseList lists the live leases.
func (c *Client) LeaseList(ctx context.Context, req *api.LeaseListRequest) (*api.LeaseListResponse, error) {
	return call[api.LeaseListResponse](ctx, c, api.OpLeaseList, req)
}

// LeasePut writes a key attached to a lease.
func (c *Client) LeasePut(ctx context.Context, req *api.LeasePutRequest) (*api.LeasePutResponse, error) {
	return call[api.LeasePutResponse](ctx, c, api.OpLeasePut, req)
}

// LockSetTryAcquire acquires every lock of a set, or none.
func (c *Client) LockSetTryAcquire(ctx context.Context, req *api.LockSetRequest) (*api.LockSetResponse, error) {
	return call[api.LockSetResponse](ctx, c, api.OpLockSetTryAcquire, req)
}

// LockSetRelease releases every lock of a set, or none.
func (c *Client) LockSetRelease(ctx context.Context, req *api.LockSetRequest) (*api.LockSetResponse, error) {
	return call[api.LockSetResponse](ctx, c, api.OpLockSetRelease, req)
}

// LockSetRenew extends every lock of a set, or none.
func (c *Client) LockSetRenew(ctx context.Context, req *api.LockSetRequest) (*api.LockSetResponse, error) {
	return call[api.LockSetResponse](ctx, c, api.OpLockSetRenew, req)
}

// LockStatus reads a lock's holder, token and deadline (IsSuccess false
// when it is free).
func (c *Client) LockStatus(ctx context.Context, req *api.LockStatusRequest) (*api.LockResponse, error) {
	return call[api.LockResponse](ctx, c, api.OpLockStatus, req)
}
