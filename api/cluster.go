package api

// Operation names of the cluster API.
const (
	OpClusterHealth           = "cluster.health"
	OpClusterInit             = "cluster.init"
	OpClusterStatus           = "cluster.status"
	OpClusterMetrics          = "cluster.metrics"
	OpClusterTicket           = "cluster.ticket"
	OpClusterAddLearner       = "cluster.add_learner"
	OpClusterChangeMembership = "cluster.change_membership"
	OpClusterPromote          = "cluster.promote"
	OpClusterRemove           = "cluster.remove"
	OpClusterPrometheus       = "cluster.prometheus"
	OpClusterSnapshot         = "cluster.snapshot"
	OpClusterBackup           = "cluster.backup" // streaming: the response is followed by the raw backup bytes
)

// Empty is the request or response of operations that carry no data.
type Empty struct{}

// Health states.
const (
	HealthHealthy   = "healthy"   // a leader is known
	HealthDegraded  = "degraded"  // no leader (for example before init)
	HealthUnhealthy = "unhealthy" // Raft metrics unavailable
)

// HealthResponse describes the node that answered.
type HealthResponse struct {
	Status        string `cbor:"status" json:"status"`
	NodeID        uint64 `cbor:"node_id" json:"node_id"`
	EndpointID    string `cbor:"endpoint_id" json:"endpoint_id"`
	UptimeSeconds int64  `cbor:"uptime_seconds" json:"uptime_seconds"`
	Initialized   bool   `cbor:"initialized" json:"initialized"`
	LeaderID      uint64 `cbor:"leader_id,omitempty" json:"leader_id,omitempty"`
}

// MessageResponse is the answer of simple cluster mutations.
type MessageResponse struct {
	Message string `cbor:"message" json:"message"`
}

// NodeStatus is one member of the cluster.
type NodeStatus struct {
	NodeID     uint64 `cbor:"node_id" json:"node_id"`
	EndpointID string `cbor:"endpoint_id" json:"endpoint_id"`
	Addr       string `cbor:"addr" json:"addr"` // NodeAddr text form: KEY@host:port
	IsLeader   bool   `cbor:"is_leader" json:"is_leader"`
	IsVoter    bool   `cbor:"is_voter" json:"is_voter"`
}

// StatusResponse lists the members (voters and learners).
type StatusResponse struct {
	Nodes    []NodeStatus `cbor:"nodes" json:"nodes"`
	LeaderID uint64       `cbor:"leader_id,omitempty" json:"leader_id,omitempty"`
}

// MetricsResponse is the Raft state of the node that answered.
type MetricsResponse struct {
	NodeID        uint64 `cbor:"node_id" json:"node_id"`
	State         string `cbor:"state" json:"state"` // Leader, Follower, Candidate, Learner, Shutdown
	CurrentLeader uint64 `cbor:"current_leader,omitempty" json:"current_leader,omitempty"`
	CurrentTerm   uint64 `cbor:"current_term" json:"current_term"`
	LastLogIndex  uint64 `cbor:"last_log_index" json:"last_log_index"`
	CommitIndex   uint64 `cbor:"commit_index" json:"commit_index"`
	LastApplied   uint64 `cbor:"last_applied" json:"last_applied"`
	SnapshotIndex uint64 `cbor:"snapshot_index" json:"snapshot_index"`
}

// TicketResponse carries a cluster ticket naming this node and up to 15 other members.
type TicketResponse struct {
	Ticket string `cbor:"ticket" json:"ticket"`
}

// AddLearnerRequest adds a non-voting member. Addr is "KEY@host:port"
// (hex Ed25519 key of the node, then one or more comma-separated host:port).
type AddLearnerRequest struct {
	NodeID uint64 `cbor:"node_id" json:"node_id"`
	Addr   string `cbor:"addr" json:"addr"`
}

// ChangeMembershipRequest makes Voters the exact voter set. Every new voter
// must already be a member (a learner).
type ChangeMembershipRequest struct {
	Voters []uint64 `cbor:"voters" json:"voters"`
}

// PromoteRequest makes a learner a voter, optionally removing Replace (0 = none).
type PromoteRequest struct {
	LearnerID uint64 `cbor:"learner_id" json:"learner_id"`
	Replace   uint64 `cbor:"replace,omitempty" json:"replace,omitempty"`
}

// RemoveRequest removes a member (voter or learner). With RequireVoter the
// removal fails unless the node is a voter (the CLI's `cluster expunge`).
type RemoveRequest struct {
	NodeID       uint64 `cbor:"node_id" json:"node_id"`
	RequireVoter bool   `cbor:"require_voter,omitempty" json:"require_voter,omitempty"`
}

// PrometheusResponse is the node's metrics in Prometheus text exposition format.
type PrometheusResponse struct {
	Text string `cbor:"text" json:"text"`
}

// SnapshotResponse reports the snapshot taken.
type SnapshotResponse struct {
	Index uint64 `cbor:"index" json:"index"`
	Term  uint64 `cbor:"term" json:"term"`
}
