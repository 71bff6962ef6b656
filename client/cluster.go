package client

import (
	"context"
	"io"

	"github.com/aspen-dev/aspen/api"
)

// Health reports the health of the node that answers; it works before init.
func (c *Client) Health(ctx context.Context) (*api.HealthResponse, error) {
	return call[api.HealthResponse](ctx, c, api.OpClusterHealth, &api.Empty{})
}

// Init makes the first node of the ticket the single voter of a new cluster.
func (c *Client) Init(ctx context.Context) (*api.MessageResponse, error) {
	return call[api.MessageResponse](ctx, c, api.OpClusterInit, &api.Empty{})
}

// Status lists the members, voters and learners, and the leader.
func (c *Client) Status(ctx context.Context) (*api.StatusResponse, error) {
	return call[api.StatusResponse](ctx, c, api.OpClusterStatus, &api.Empty{})
}

// Metrics reports the Raft state of the node that answers.
func (c *Client) Metrics(ctx context.Context) (*api.MetricsResponse, error) {
	return call[api.MetricsResponse](ctx, c, api.OpClusterMetrics, &api.Empty{})
}

// Ticket returns a fresh cluster ticket naming the current members.
func (c *Client) Ticket(ctx context.Context) (*api.TicketResponse, error) {
	return call[api.TicketResponse](ctx, c, api.OpClusterTicket, &api.Empty{})
}

// AddLearner adds a non-voting member.
func (c *Client) AddLearner(ctx context.Context, req *api.AddLearnerRequest) (*api.MessageResponse, error) {
	return call[api.MessageResponse](ctx, c, api.OpClusterAddLearner, req)
}

// ChangeMembership sets the exact voter set.
func (c *Client) ChangeMembership(ctx context.Context, req *api.ChangeMembershipRequest) (*api.MessageResponse, error) {
	return call[api.MessageResponse](ctx, c, api.OpClusterChangeMembership, req)
}

// Promote makes a learner a voter.
func (c *Client) Promote(ctx context.Context, req *api.PromoteRequest) (*api.MessageResponse, error) {
	return call[api.MessageResponse](ctx, c, api.OpClusterPromote, req)
}

// Remove removes a member.
func (c *Client) Remove(ctx context.Context, req *api.RemoveRequest) (*api.MessageResponse, error) {
	return call[api.MessageResponse](ctx, c, api.OpClusterRemove, req)
}

// Prometheus returns the answering node's metrics in text exposition format.
func (c *Client) Prometheus(ctx context.Context) (*api.PrometheusResponse, error) {
	return call[api.PrometheusResponse](ctx, c, api.OpClusterPrometheus, &api.Empty{})
}

// Snapshot makes the answering node take a Raft snapshot of its state now.
func (c *Client) Snapshot(ctx context.Context) (*api.SnapshotResponse, error) {
	return call[api.SnapshotResponse](ctx, c, api.OpClusterSnapshot, &api.Empty{})
}

// Backup writes a consistent copy of the answering node's whole state to w
// and returns the number of bytes written.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	rc, err := c.callStream(ctx, api.OpClusterBackup, &api.Empty{})
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(w, rc)
}
