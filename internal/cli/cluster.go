package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/transport"
)

func (a *app) newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Manage and inspect the cluster",
		Long: `Bootstrap and grow the cluster, inspect its health and Raft state, share
tickets, take snapshots and backups.

Growing a cluster: run 'cluster init' once on the first node, add the others
with 'cluster add-learner', then make them voters with 'cluster promote' or
'cluster change-membership'.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.AddCommand(
		a.newClusterInitCmd(),
		a.newClusterHealthCmd(),
		a.newClusterStatusCmd(),
		a.newClusterMetricsCmd(),
		a.newClusterTicketCmd(),
		a.newClusterAddLearnerCmd(),
		a.newClusterChangeMembershipCmd(),
		a.newClusterPromoteCmd(),
		a.newClusterRemoveCmd(),
		a.newClusterExpungeCmd(),
		a.newClusterPrometheusCmd(),
		a.newClusterSnapshotCmd(),
		a.newClusterBackupCmd(),
	)
	return cmd
}

// nodeIDJSON is a node ID in JSON: null when zero (no node, no leader).
type nodeIDJSON uint64

// MarshalJSON implements json.Marshaler.
func (n nodeIDJSON) MarshalJSON() ([]byte, error) {
	if n == 0 {
		return []byte("null"), nil
	}
	return fmt.Appendf(nil, "%d", uint64(n)), nil
}

func (n nodeIDJSON) String() string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprint(uint64(n))
}

// messageResult is the result of simple cluster mutations.
type messageResult struct {
	Status  string `json:"status"`
	Message string `json:"message"`

	human string // human text, when not Message
}

func (r *messageResult) printHuman(out, _ io.Writer) error {
	text := r.human
	if text == "" {
		text = r.Message
	}
	_, err := fmt.Fprintln(out, text)
	return err
}

// ---- cluster init ----

func (a *app) newClusterInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Initialize a new cluster on the ticket's node",
		Long: `Make the node named by the ticket the single voter of a new cluster. Run it
once, on the first node; add more nodes with 'cluster add-learner'.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRemote(func(c remote) error {
				if _, err := c.Init(cmd.Context()); err != nil {
					return err
				}
				return a.printer().print(&messageResult{
					Status:  "success",
					Message: "Cluster initialized",
					human:   "Cluster initialized successfully",
				})
			})
		},
	}
}

// ---- cluster health ----

type healthResult struct {
	Status        string     `json:"status"`
	NodeID        uint64     `json:"node_id"`
	EndpointID    string     `json:"endpoint_id"`
	UptimeSeconds int64      `json:"uptime_seconds"`
	Initialized   bool       `json:"initialized"`
	LeaderID      nodeIDJSON `json:"leader_id"`
}

func (r *healthResult) printHuman(out, _ io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Status:\t%s\n", r.Status)
	fmt.Fprintf(tw, "Node:\t%d\n", r.NodeID)
	fmt.Fprintf(tw, "Endpoint:\t%s\n", r.EndpointID)
	fmt.Fprintf(tw, "Uptime:\t%s\n", time.Duration(r.UptimeSeconds)*time.Second)
	fmt.Fprintf(tw, "Initialized:\t%s\n", yesNo(r.Initialized))
	fmt.Fprintf(tw, "Leader:\t%s\n", r.LeaderID)
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *app) newClusterHealthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Show the health of the ticket's node",
		Long: `Show the health of the node that answers: healthy (a leader is known),
degraded (no leader, for example before init) or unhealthy. Works before init.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRemote(func(c remote) error {
				h, err := c.Health(cmd.Context())
				if err != nil {
					return err
				}
				return a.printer().print(&healthResult{
					Status:        h.Status,
					NodeID:        h.NodeID,
					EndpointID:    h.EndpointID,
					UptimeSeconds: h.UptimeSeconds,
					Initialized:   h.Initialized,
					LeaderID:      nodeIDJSON(h.LeaderID),
				})
			})
		},
	}
}

// ---- cluster status ----

type nodeResult struct {
	NodeID     uint64 `json:"node_id"`
	EndpointID string `json:"endpoint_id"`
	Addr       string `json:"addr"`
	IsLeader   bool   `json:"is_leader"`
	IsVoter    bool   `json:"is_voter"`
}

type statusResult struct {
	Nodes    []nodeResult `json:"nodes"`
	LeaderID nodeIDJSON   `json:"leader_id"`
}

func (r *statusResult) printHuman(out, _ io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tENDPOINT\tADDR")
	for _, n := range r.Nodes {
		id := fmt.Sprint(n.NodeID)
		if n.IsLeader {
			id += "*"
		}
		role := "learner"
		if n.IsVoter {
			role = "voter"
		}
		// The endpoint column already shows the key of "KEY@host:port".
		addr := n.Addr
		if k, rest, ok := strings.Cut(addr, "@"); ok && strings.EqualFold(k, n.EndpointID) {
			addr = rest
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", id, role, n.EndpointID, addr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out, "* leader")
	return err
}

func (a *app) newClusterStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List the members of the cluster",
		Long: `List the members, voters and learners, marking the leader with '*'. A node's
address for 'cluster add-learner' is ENDPOINT@ADDR (addr in --json).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRemote(func(c remote) error {
				s, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				r := &statusResult{Nodes: make([]nodeResult, 0, len(s.Nodes)), LeaderID: nodeIDJSON(s.LeaderID)}
				for _, n := range s.Nodes {
					r.Nodes = append(r.Nodes, nodeResult{
						NodeID:     n.NodeID,
						EndpointID: n.EndpointID,
						Addr:       n.Addr,
						IsLeader:   n.IsLeader,
						IsVoter:    n.IsVoter,
					})
				}
				return a.printer().print(r)
			})
		},
	}
}

// ---- cluster metrics ----

type metricsResult struct {
	NodeID        uint64     `json:"node_id"`
	State         string     `json:"state"`
	CurrentLeader nodeIDJSON `json:"current_leader"`
	CurrentTerm   uint64     `json:"current_term"`
	LastLogIndex  uint64     `json:"last_log_index"`
	CommitIndex   uint64     `json:"commit_index"`
	LastApplied   uint64     `json:"last_applied"`
	SnapshotIndex uint64     `json:"snapshot_index"`
}

func (r *metricsResult) printHuman(out, _ io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Node:\t%d\n", r.NodeID)
	fmt.Fprintf(tw, "State:\t%s\n", r.State)
	fmt.Fprintf(tw, "Leader:\t%s\n", r.CurrentLeader)
	fmt.Fprintf(tw, "Term:\t%d\n", r.CurrentTerm)
	fmt.Fprintf(tw, "Last log index:\t%d\n", r.LastLogIndex)
	fmt.Fprintf(tw, "Commit index:\t%d\n", r.CommitIndex)
	fmt.Fprintf(tw, "Last applied:\t%d\n", r.LastApplied)
	fmt.Fprintf(tw, "Snapshot index:\t%d\n", r.SnapshotIndex)
	return tw.Flush()
}

func (a *app) newClusterMetricsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "metrics",
		Short: "Show the Raft state of the ticket's node",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRemote(func(c remote) error {
				m, err := c.Metrics(cmd.Context())
				if err != nil {
					return err
				}
				return a.printer().print(&metricsResult{
					NodeID:        m.NodeID,
					State:         m.State,
					CurrentLeader: nodeIDJSON(m.CurrentLeader),
					CurrentTerm:   m.CurrentTerm,
					LastLogIndex:  m.LastLogIndex,
					CommitIndex:   m.CommitIndex,
					LastApplied:   m.LastApplied,
					SnapshotIndex: m.SnapshotIndex,
				})
			})
		},
	}
}

// ---- cluster ticket ----

type ticketResult struct {
	Ticket string `json:"ticket"`
}

func (r *ticketResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintln(out, r.Ticket)
	return err
}

func (a *app) newClusterTicketCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ticket",
		Short: "Print a fresh ticket naming the current members",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRemote(func(c remote) error {
				t, err := c.Ticket(cmd.Context())
				if err != nil {
					return err
				}
				return a.printer().print(&ticketResult{Ticket: t.Ticket})
			})
		},
	}
}

// ---- cluster add-learner ----

type addLearnerOptions struct {
	nodeID uint64
	addr   string
}

// nodeAddrForm is the expected form of --addr, for error messages.
const nodeAddrForm = "KEY@HOST:PORT[,HOST:PORT...], KEY being the node's 64-hex-character key as printed by the node and by 'aspen-cli cluster status'"

// parseLearnerAddr validates --addr of add-learner and returns its
// canonical text form.
func parseLearnerAddr(s string) (string, error) {
	na, err := transport.ParseNodeAddr(s)
	if err != nil {
		return "", usageErrorf("invalid --addr: %v; the form is %s", err, nodeAddrForm)
	}
	return na.String(), nil
}

func (a *app) newClusterAddLearnerCmd() *cobra.Command {
	var o addLearnerOptions
	cmd := &cobra.Command{
		Use:   "add-learner --node-id N --addr KEY@HOST:PORT",
		Short: "Add a node as a non-voting member",
		Long: `Add a node as a learner: it replicates the log but does not vote. Promote it
later with 'cluster promote' or 'cluster change-membership'.

--addr is ` + nodeAddrForm + `.`,
		Example: `  aspen-cli cluster add-learner --node-id 2 --addr 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29@10.0.0.2:7946`,
		Args:    exactArgs(0, "no arguments (use --node-id and --addr)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.nodeID == 0 {
				return &usageError{msg: "--node-id must be a positive integer", cmd: cmd}
			}
			addr, err := parseLearnerAddr(o.addr)
			if err != nil {
				return err
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.AddLearner(cmd.Context(), &api.AddLearnerRequest{NodeID: o.nodeID, Addr: addr})
				if err != nil {
					return err
				}
				return a.printMessage(resp, fmt.Sprintf("Node %d added as a learner", o.nodeID))
			})
		},
	}
	cmd.Flags().Uint64Var(&o.nodeID, "node-id", 0, "Raft node ID of the new member")
	cmd.Flags().StringVar(&o.addr, "addr", "", "address of the node: KEY@HOST:PORT[,HOST:PORT...]")
	_ = cmd.MarkFlagRequired("node-id")
	_ = cmd.MarkFlagRequired("addr")
	return cmd
}

// printMessage prints the answer of a simple cluster mutation, using
// fallback when the node sent no message.
func (a *app) printMessage(resp *api.MessageResponse, fallback string) error {
	msg := fallback
	if resp != nil && resp.Message != "" {
		msg = resp.Message
	}
	return a.printer().print(&messageResult{Status: "success", Message: msg})
}

// ---- cluster change-membership ----

// parseVoters parses the node IDs of change-membership.
func parseVoters(args []string) ([]uint64, error) {
	if len(args) == 0 {
		return nil, usageErrorf("give at least one voter node ID")
	}
	seen := make(map[uint64]bool, len(args))
	ids := make([]uint64, 0, len(args))
	for _, s := range args {
		id, err := parseNodeID(s, "node ID")
		if err != nil {
			return nil, err
		}
		if seen[id] {
			return nil, usageErrorf("node ID %d is given twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

func (a *app) newClusterChangeMembershipCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "change-membership NODE_ID...",
		Short: "Set the exact voter set",
		Long: `Make the given nodes the exact set of voters. Each must already be a member
(added with 'cluster add-learner'); voters left out become learners.`,
		Example: `  aspen-cli cluster change-membership 1 2 3`,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseVoters(args)
			if err != nil {
				return err
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.ChangeMembership(cmd.Context(), &api.ChangeMembershipRequest{Voters: ids})
				if err != nil {
					return err
				}
				return a.printMessage(resp, "Membership changed")
			})
		},
	}
}

// ---- cluster promote ----

type promoteOptions struct {
	learnerID uint64
	replace   uint64
}

func (a *app) newClusterPromoteCmd() *cobra.Command {
	var o promoteOptions
	cmd := &cobra.Command{
		Use:   "promote --learner-id N [--replace M]",
		Short: "Make a learner a voter",
		Long:  `Make learner N a voter, optionally removing voter M in the same change.`,
		Args:  exactArgs(0, "no arguments (use --learner-id)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.learnerID == 0 {
				return &usageError{msg: "--learner-id must be a positive integer", cmd: cmd}
			}
			if cmd.Flags().Changed("replace") && o.replace == 0 {
				return &usageError{msg: "--replace must be a positive integer", cmd: cmd}
			}
			if o.replace == o.learnerID {
				return &usageError{msg: "--replace must name another node than --learner-id", cmd: cmd}
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.Promote(cmd.Context(), &api.PromoteRequest{LearnerID: o.learnerID, Replace: o.replace})
				if err != nil {
					return err
				}
				return a.printMessage(resp, fmt.Sprintf("Node %d promoted to voter", o.learnerID))
			})
		},
	}
	cmd.Flags().Uint64Var(&o.learnerID, "learner-id", 0, "node ID of the learner to promote")
	cmd.Flags().Uint64Var(&o.replace, "replace", 0, "node ID of a voter to remove in the same change")
	_ = cmd.MarkFlagRequired("learner-id")
	return cmd
}

// ---- cluster remove ----

func (a *app) newClusterRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE_ID",
		Short: "Remove a member (voter or learner)",
		Args:  exactArgs(1, "one NODE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(args[0], "NODE_ID")
			if err != nil {
				return err
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.Remove(cmd.Context(), &api.RemoveRequest{NodeID: id})
				if err != nil {
					return err
				}
				return a.printMessage(resp, fmt.Sprintf("Node %d removed", id))
			})
		},
	}
}

// ---- cluster expunge ----

func (a *app) newClusterExpungeCmd() *cobra.Command {
	var confirm bool
	cmd := &cobra.Command{
		Use:   "expunge NODE_ID --confirm",
		Short: "Remove a voter for good (the node must be wiped to rejoin)",
		Long: `Remove voter NODE_ID from the cluster. Unlike 'remove' it refuses a node that
is not a voter, and it needs --confirm: the expunged node keeps its old state and
must have its data dir wiped before it can join again.`,
		Args: exactArgs(1, "one NODE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(args[0], "NODE_ID")
			if err != nil {
				return err
			}
			if !confirm {
				return &usageError{msg: fmt.Sprintf("expunging node %d cannot be undone: add --confirm", id), cmd: cmd}
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.Remove(cmd.Context(), &api.RemoveRequest{NodeID: id, RequireVoter: true})
				if err != nil {
					return err
				}
				return a.printMessage(resp, fmt.Sprintf("Node %d expunged", id))
			})
		},
	}
	cmd.Flags().BoolVar(&confirm, "confirm", false, "confirm the removal")
	return cmd
}

// ---- cluster prometheus ----

type prometheusResult struct {
	Format  string `json:"format"`
	Metrics string `json:"metrics"`
}

func (r *prometheusResult) printHuman(out, _ io.Writer) error {
	text := r.Metrics
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	_, err := io.WriteString(out, text)
	return err
}

func (a *app) newClusterPrometheusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "prometheus",
		Short: "Print the node's metrics in Prometheus text format",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRemote(func(c remote) error {
				p, err := c.Prometheus(cmd.Context())
				if err != nil {
					return err
				}
				return a.printer().print(&prometheusResult{Format: "prometheus", Metrics: p.Text})
			})
		},
	}
}

// ---- cluster snapshot ----

type snapshotResult struct {
	Status string `json:"status"`
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
}

func (r *snapshotResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintf(out, "Snapshot taken at index %d (term %d)\n", r.Index, r.Term)
	return err
}

func (a *app) newClusterSnapshotCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "snapshot",
		Short: "Make the answering node take a Raft snapshot now",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRemote(func(c remote) error {
				s, err := c.Snapshot(cmd.Context())
				if err != nil {
					return err
				}
				return a.printer().print(&snapshotResult{Status: "success", Index: s.Index, Term: s.Term})
			})
		},
	}
}
