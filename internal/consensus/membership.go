package consensus

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/api"
)

// AddLearner adds a non-voting member that replicates the log.
func (n *Node) AddLearner(ctx context.Context, id uint64, addr raft.ServerAddress) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == ServerID(id) && s.Address != addr {
			return api.Errorf(api.CodeConflict, "node %d is already a member at %s; remove it first", id, s.Address)
		}
		if s.ID != ServerID(id) && s.Address == addr {
			return api.Errorf(api.CodeConflict, "address %s already belongs to node %s", addr, s.ID)
		}
	}
	return n.await(ctx, n.raft.AddNonvoter(ServerID(id), addr, 0, timeoutOf(ctx, 30*time.Second)))
}

// ChangeMembership makes voters the exact voter set. New voters must already
// be members (learners); voters left out are removed from the cluster.
func (n *Node) ChangeMembership(ctx context.Context, voters []uint64) error {
	if len(voters) == 0 {
		return api.Errorf(api.CodeInvalidArgument, "the voter set cannot be empty")
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	byID := map[raft.ServerID]raft.Server{}
	for _, s := range servers {
		byID[s.ID] = s
	}
	want := map[raft.ServerID]bool{}
	for _, v := range voters {
		id := ServerID(v)
		if _, ok := byID[id]; !ok {
			return api.Errorf(api.CodeInvalidArgument, "node %d is not a member; add it with add-learner first", v)
		}
		want[id] = true
	}
	timeout := timeoutOf(ctx, 30*time.Second)
	// Add voters first so the quorum never shrinks below what is needed.
	for _, v := range voters {
		s := byID[ServerID(v)]
		if s.Suffrage == raft.Voter {
			continue
		}
		if err := n.await(ctx, n.raft.AddVoter(s.ID, s.Address, 0, timeout)); err != nil {
			return fmt.Errorf("promoting node %d: %w", v, err)
		}
	}
	for _, s := range servers {
		if s.Suffrage == raft.Voter && !want[s.ID] {
			if err := n.await(ctx, n.raft.RemoveServer(s.ID, 0, timeout)); err != nil {
				return fmt.Errorf("removing node %s: %w", s.ID, err)
			}
		}
	}
	return nil
}

// Promote makes learner a voter and, when replace is non-zero, removes replace.
func (n *Node) Promote(ctx context.Context, learner, replace uint64) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	var voters []uint64
	found := false
	for _, s := range servers {
		id := ParseServerID(s.ID)
		if id == learner {
			found = true
			if s.Suffrage == raft.Voter {
				return api.Errorf(api.CodeInvalidArgument, "node %d is already a voter", learner)
			}
		}
		if s.Suffrage == raft.Voter && id != replace {
			voters = append(voters, id)
		}
	}
	if !found {
		return api.Errorf(api.CodeNotFound, "node %d is not a member; add it with add-learner first", learner)
	}
	if replace != 0 && !slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == ServerID(replace) }) {
		return api.Errorf(api.CodeNotFound, "node %d to replace is not a member", replace)
	}
	return n.ChangeMembership(ctx, append(voters, learner))
}

// Remove removes a member; with requireVoter only a voter.
func (n *Node) Remove(ctx context.Context, id uint64, requireVoter bool) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(servers, func(s raft.Server) bool { return s.ID == ServerID(id) })
	if i < 0 {
		return api.Errorf(api.CodeNotFound, "node %d is not a member", id)
	}
	if requireVoter && servers[i].Suffrage != raft.Voter {
		return api.Errorf(api.CodeInvalidArgument, "node %d is not a voter", id)
	}
	return n.await(ctx, n.raft.RemoveServer(ServerID(id), 0, timeoutOf(ctx, 30*time.Second)))
}

// Snapshot takes a snapshot now and returns its index and term.
func (n *Node) Snapshot() (index, term uint64, err error) {
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		if err == raft.ErrNothingNewToSnapshot {
			return 0, 0, api.Errorf(api.CodeConflict, "nothing new to snapshot since the last one")
		}
		return 0, 0, n.mapErr(err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return 0, 0, fmt.Errorf("opening new snapshot: %w", err)
	}
	rc.Close()
	return meta.Index, meta.Term, nil
}

// Metrics is the Raft state of this node.
type Metrics struct {
	State         string
	Leader        uint64
	Term          uint64
	LastLogIndex  uint64
	CommitIndex   uint64
	AppliedIndex  uint64
	SnapshotIndex uint64
	FirstLogIndex uint64 // oldest entry still in the log
	IsVoter       bool
}

// Metrics reports this node's Raft state.
func (n *Node) Metrics() Metrics {
	_, leader := n.raft.LeaderWithID()
	stats := n.raft.Stats()
	snap, _ := strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	m := Metrics{
		State:         n.raft.State().String(),
		Leader:        ParseServerID(leader),
		Term:          n.raft.CurrentTerm(),
		LastLogIndex:  n.raft.LastIndex(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.fsm.AppliedIndex(),
		SnapshotIndex: snap,
	}
	m.FirstLogIndex, _ = n.wal.FirstIndex()
	if servers, err := n.Servers(); err == nil {
		for _, s := range servers {
			if s.ID != ServerID(n.cfg.NodeID) {
				continue
			}
			m.IsVoter = s.Suffrage == raft.Voter
			if !m.IsVoter && m.State == raft.Follower.String() {
				m.State = "Learner"
			}
		}
	}
	return m
}
