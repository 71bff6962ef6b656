package coordination

import (
	"context"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// LeaseClient is what a Lease needs from a cluster; *client.Client has it.
type LeaseClient interface {
	LeaseGrant(context.Context, *api.LeaseGrantRequest) (*api.LeaseInfo, error)
	LeaseTTL(context.Context, *api.LeaseRequest) (*api.LeaseInfo, error)
	LeaseKeepAlive(context.Context, *api.LeaseRequest) (*api.LeaseInfo, error)
	LeaseRevoke(context.Context, *api.LeaseRequest) (*api.LeaseRevokeResponse, error)
	LeaseList(context.Context, *api.LeaseListRequest) (*api.LeaseListResponse, error)
	LeasePut(context.Context, *api.LeasePutRequest) (*api.LeasePutResponse, error)
}

// Lease is a granted lease: keys written through it are deleted, in one
// transaction, when it is revoked or its TTL passes without a keepalive
// (on the leader's clock). Operations on a lease that ended fail with an
// error matching api.ErrNotFound.
type Lease struct {
	c  LeaseClient
	id int64
}

// GrantLease creates a lease of ttl (whole seconds, at least 1s) with an id
// chosen by the cluster.
func GrantLease(ctx context.Context, c LeaseClient, ttl time.Duration) (*Lease, error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	info, err := c.LeaseGrant(ctx, &api.LeaseGrantRequest{TTLSeconds: max(secs, 1)})
	if err != nil {
		return nil, fmt.Errorf("granting lease: %w", err)
	}
	return &Lease{c: c, id: info.LeaseID}, nil
}

// OpenLease returns a handle on an existing lease id. It makes no call.
func OpenLease(c LeaseClient, id int64) *Lease { return &Lease{c: c, id: id} }

// ID is the lease id.
func (l *Lease) ID() int64 { return l.id }

// Put writes key = value attached to the lease.
func (l *Lease) Put(ctx context.Context, key string, value []byte) error {
	_, err := l.c.LeasePut(ctx, &api.LeasePutRequest{LeaseID: l.id, Key: []byte(key), Value: value})
	return err
}

// KeepAlive resets the lease's deadline to now + its TTL.
func (l *Lease) KeepAlive(ctx context.Context) (*api.LeaseInfo, error) {
	return l.c.LeaseKeepAlive(ctx, &api.LeaseRequest{LeaseID: l.id})
}

// TTL describes the lease and the keys still attached to it.
func (l *Lease) TTL(ctx context.Context) (*api.LeaseInfo, error) {
	return l.c.LeaseTTL(ctx, &api.LeaseRequest{LeaseID: l.id, Keys: true})
}

// Revoke ends the lease and returns how many attached keys it deleted.
func (l *Lease) Revoke(ctx context.Context) (int, error) {
	resp, err := l.c.LeaseRevoke(ctx, &api.LeaseRequest{LeaseID: l.id})
	if err != nil {
		return 0, err
	}
	return resp.KeysDeleted, nil
}
