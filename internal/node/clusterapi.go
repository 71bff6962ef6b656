package node

import (
	"context"
	"io"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/consensus"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// registerCluster registers the cluster management operations.
func (n *Node) registerCluster() {
	rpc.Handle(n.reg, api.OpClusterHealth, n.clusterHealth)
	rpc.Handle(n.reg, api.OpClusterInit, n.clusterInit)
	rpc.Handle(n.reg, api.OpClusterStatus, n.clusterStatus)
	rpc.Handle(n.reg, api.OpClusterMetrics, n.clusterMetrics)
	rpc.Handle(n.reg, api.OpClusterTicket, n.clusterTicket)
	rpc.Handle(n.reg, api.OpClusterAddLearner, n.clusterAddLearner)
	rpc.Handle(n.reg, api.OpClusterChangeMembership, n.clusterChangeMembership)
	rpc.Handle(n.reg, api.OpClusterPromote, n.clusterPromote)
	rpc.Handle(n.reg, api.OpClusterRemove, n.clusterRemove)
	rpc.Handle(n.reg, api.OpClusterPrometheus, n.clusterPrometheus)
	rpc.Handle(n.reg, api.OpClusterSnapshot, n.clusterSnapshot)
	rpc.HandleStream(n.reg, api.OpClusterBackup, n.clusterBackup)
}

func (n *Node) clusterHealth(context.Context, *api.Empty) (*api.HealthResponse, error) {
	m := n.raft.Metrics()
	status := api.HealthDegraded
	if m.Leader != 0 {
		status = api.HealthHealthy
	}
	return &api.HealthResponse{
		Status:        status,
		NodeID:        n.cfg.NodeID,
		EndpointID:    n.self.Key.String(),
		UptimeSeconds: int64(time.Since(n.started).Seconds()),
		Initialized:   n.raft.Initialized(),
		LeaderID:      m.Leader,
	}, nil
}

func (n *Node) clusterInit(ctx context.Context, _ *api.Empty) (*api.MessageResponse, error) {
	if n.raft.Initialized() {
		return nil, api.Errorf(api.CodeConflict, "cluster already initialized")
	}
	if err := n.initCluster(ctx); err != nil {
		return nil, err
	}
	if err := n.writeTicket(); err != nil {
		n.log.Warn("rewriting ticket after init", "err", err)
	}
	return &api.MessageResponse{Message: "Cluster initialized"}, nil
}

func (n *Node) clusterStatus(context.Context, *api.Empty) (*api.StatusResponse, error) {
	if err := n.requireInit(); err != nil {
		return nil, err
	}
	servers, err := n.raft.Servers()
	if err != nil {
		return nil, err
	}
	_, leader := n.raft.Leader()
	out := &api.StatusResponse{LeaderID: leader}
	for _, s := range servers {
		id := consensus.ParseServerID(s.ID)
		ns := api.NodeStatus{NodeID: id, Addr: string(s.Address), IsLeader: id == leader, IsVoter: s.Suffrage == raft.Voter}
		if a, err := transport.ParseNodeAddr(string(s.Address)); err == nil {
			ns.EndpointID = a.Key.String()
		}
		out.Nodes = append(out.Nodes, ns)
	}
	slices.SortFunc(out.Nodes, func(a, b api.NodeStatus) int { return int(a.NodeID) - int(b.NodeID) })
	return out, nil
}

func (n *Node) clusterMetrics(context.Context, *api.Empty) (*api.MetricsResponse, error) {
	m := n.raft.Metrics()
	return &api.MetricsResponse{
		NodeID:        n.cfg.NodeID,
		State:         m.State,
		CurrentLeader: m.Leader,
		CurrentTerm:   m.Term,
		LastLogIndex:  m.LastLogIndex,
		CommitIndex:   m.CommitIndex,
		LastApplied:   m.AppliedIndex,
		SnapshotIndex: m.SnapshotIndex,
	}, nil
}

func (n *Node) clusterTicket(context.Context, *api.Empty) (*api.TicketResponse, error) {
	return &api.TicketResponse{Ticket: n.Ticket()}, nil
}

func (n *Node) clusterAddLearner(ctx context.Context, req *api.AddLearnerRequest) (*api.MessageResponse, error) {
	if err := n.requireInit(); err != nil {
		return nil, err
	}
	if req.NodeID == 0 {
		return nil, api.Errorf(api.CodeInvalidArgument, "node id must be > 0")
	}
	addr, err := transport.ParseNodeAddr(req.Addr)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "address: %v", err)
	}
	if err := n.raft.AddLearner(ctx, req.NodeID, raft.ServerAddress(addr.String())); err != nil {
		return nil, err
	}
	return &api.MessageResponse{Message: "learner added"}, nil
}

func (n *Node) clusterChangeMembership(ctx context.Context, req *api.ChangeMembershipRequest) (*api.MessageResponse, error) {
	if err := n.requireInit(); err != nil {
		return nil, err
	}
	if err := n.raft.ChangeMembership(ctx, req.Voters); err != nil {
		return nil, err
	}
	if err := n.waitVotersKnow(ctx); err != nil {
		return nil, err
	}
	return &api.MessageResponse{Message: "membership changed"}, nil
}

func (n *Node) clusterPromote(ctx context.Context, req *api.PromoteRequest) (*api.MessageResponse, error) {
	if err := n.requireInit(); err != nil {
		return nil, err
	}
	if err := n.raft.Promote(ctx, req.LearnerID, req.Replace); err != nil {
		return nil, err
	}
	if err := n.waitVotersKnow(ctx); err != nil {
		return nil, err
	}
	return &api.MessageResponse{Message: "learner promoted to voter"}, nil
}

func (n *Node) clusterRemove(ctx context.Context, req *api.RemoveRequest) (*api.MessageResponse, error) {
	if err := n.requireInit(); err != nil {
		return nil, err
	}
	if err := n.raft.Remove(ctx, req.NodeID, req.RequireVoter); err != nil {
		return nil, err
	}
	return &api.MessageResponse{Message: "node removed"}, nil
}

func (n *Node) clusterPrometheus(context.Context, *api.Empty) (*api.PrometheusResponse, error) {
	text, err := n.metrics.text()
	if err != nil {
		return nil, err
	}
	return &api.PrometheusResponse{Text: text}, nil
}

func (n *Node) clusterSnapshot(context.Context, *api.Empty) (*api.SnapshotResponse, error) {
	if err := n.requireInit(); err != nil {
		return nil, err
	}
	idx, term, err := n.raft.Snapshot()
	if err != nil {
		return nil, err
	}
	return &api.SnapshotResponse{Index: idx, Term: term}, nil
}

func (n *Node) clusterBackup(_ context.Context, _ *api.Empty, w io.Writer) error {
	if err := n.requireInit(); err != nil {
		return err
	}
	_, err := n.store.Backup(w)
	return err
}
