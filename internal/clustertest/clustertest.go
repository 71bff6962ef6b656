// Package clustertest starts real Aspen nodes in-process for tests: QUIC on
// loopback, storage in t.TempDir(), built by the same node.Start as
// aspen-node. It offers waiting for a leader, stopping and restarting nodes
// on their data dirs, and clients bound to chosen nodes.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/faults"
	"github.com/aspen-dev/aspen/internal/node"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Options tune a test cluster. Zero values take defaults.
type Options struct {
	// Configure, when set, adjusts each node's config before it starts.
	Configure func(*node.Config)
	// Learners leaves nodes 2..n as learners instead of voters.
	Learners bool
	// Net injects network faults into every node; default: a fault-free
	// faults.Network seeded from the clock. See Partition, Isolate, Block,
	// Heal, and Net's own methods for loss and delay.
	Net *faults.Network
	// Clock gives each node its wall clock (node.Config.Clock); default: a
	// new faults.Clock, every node on the real time until a test moves it.
	Clock *faults.Clock
}

// Cluster is a set of in-process nodes.
type Cluster struct {
	t       testing.TB
	opts    Options
	cookie  string
	Members []*Member
	// Net is the fault injector shared by all nodes (Options.Net or a new one).
	Net *faults.Network
	// Clock holds every node's clock offset (Options.Clock or a new one).
	Clock *faults.Clock
}

// Member is one node slot: its stable ID, data dir and address survive
// restarts.
type Member struct {
	ID   uint64
	Dir  string
	Bind string              // fixed after the first start so restarts keep the address
	Key  transport.PublicKey // node identity, fixed after the first start
	Node *node.Node
}

// New starts an n-node cluster: node 1 is initialized, the others are added
// as learners and (unless opts.Learners) promoted so all n are voters.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts, cookie: fmt.Sprintf("test-cookie-%d", time.Now().UnixNano()), Net: opts.Net}
	if c.Net == nil {
		c.Net = faults.New(uint64(time.Now().UnixNano()))
	}
	if c.Clock = opts.Clock; c.Clock == nil {
		c.Clock = &faults.Clock{}
	}
	root := t.TempDir() // created before the Cleanup below, so removed after it
	t.Cleanup(c.Close)
	for i := 1; i <= n; i++ {
		m := &Member{ID: uint64(i), Dir: filepath.Join(root, fmt.Sprintf("node%d", i)), Bind: "127.0.0.1:0"}
		c.Members = append(c.Members, m)
		c.Start(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(1)
	if _, err := cl.Init(ctx); err != nil {
		t.Fatalf("init: %v", err)
	}
	var voters []uint64
	for _, m := range c.Members {
		voters = append(voters, m.ID)
		if m.ID == 1 {
			continue
		}
		if _, err := cl.AddLearner(ctx, &api.AddLearnerRequest{NodeID: m.ID, Addr: m.Node.Addr().String()}); err != nil {
			t.Fatalf("add-learner %d: %v", m.ID, err)
		}
	}
	if n > 1 && !opts.Learners {
		if _, err := cl.ChangeMembership(ctx, &api.ChangeMembershipRequest{Voters: voters}); err != nil {
			t.Fatalf("change-membership: %v", err)
		}
	}
	c.WaitLeader()
	return c
}

// Config returns the node config of member i (1-based).
func (c *Cluster) Config(i int) node.Config {
	m := c.Members[i-1]
	cfg := node.DefaultConfig()
	cfg.NodeID = m.ID
	cfg.Cookie = c.cookie
	cfg.DataDir = m.Dir
	cfg.Bind = m.Bind
	cfg.Faults = c.Net
	cfg.Clock = c.Clock.For(m.ID)
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	return cfg
}

// Start starts member i (1-based) on its data dir.
func (c *Cluster) Start(i int) *node.Node {
	c.t.Helper()
	m := c.Members[i-1]
	if m.Node != nil {
		c.t.Fatalf("node %d already running", m.ID)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", c.t.Name())
	var err error
	// the port of a just-closed socket can take a moment to be reusable
	for tries := 0; ; tries++ {
		m.Node, err = node.Start(c.Config(i), logger)
		if err == nil || tries == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("starting node %d: %v", m.ID, err)
	}
	m.Bind = m.Node.Addr().Addrs[0]
	m.Key = m.Node.Addr().Key
	return m.Node
}

// Stop stops member i; its data stays for Restart.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.Members[i-1]
	if m.Node == nil {
		return
	}
	if err := m.Node.Close(); err != nil {
		c.t.Logf("stopping node %d: %v", m.ID, err)
	}
	m.Node = nil
}

// Restart stops and starts member i.
func (c *Cluster) Restart(i int) *node.Node {
	c.Stop(i)
	return c.Start(i)
}

// Close stops every node.
func (c *Cluster) Close() {
	for i := range c.Members {
		c.Stop(i + 1)
	}
}

// Ticket returns a ticket naming only the given members (all running ones
// when none are given).
func (c *Cluster) Ticket(members ...int) string {
	c.t.Helper()
	if len(members) == 0 {
		for i, m := range c.Members {
			if m.Node != nil {
				members = append(members, i+1)
			}
		}
	}
	var tk ticket.Ticket
	for _, i := range members {
		m := c.Members[i-1]
		if m.Node == nil {
			c.t.Fatalf("node %d is not running", m.ID)
		}
		t, err := ticket.Parse(m.Node.Ticket())
		if err != nil {
			c.t.Fatalf("node %d ticket: %v", m.ID, err)
		}
		tk.ClusterID, tk.Credential = t.ClusterID, t.Credential
		tk.Peers = append(tk.Peers, t.Peers[0])
	}
	return tk.String()
}

// Client returns a client that knows only the given members (all running
// ones when none are given); it is closed when the test ends.
func (c *Cluster) Client(members ...int) *client.Client {
	c.t.Helper()
	cl, err := client.New(client.Config{Ticket: c.Ticket(members...), Timeout: 20 * time.Second})
	if err != nil {
		c.t.Fatalf("client: %v", err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// Leader returns the running member that leads, or nil.
func (c *Cluster) Leader() *Member {
	for _, m := range c.Members {
		if m.Node != nil && m.Node.Raft().IsLeader() {
			return m
		}
	}
	return nil
}

// WaitLeader waits until a running member leads and every running member
// agrees on it, and returns it.
func (c *Cluster) WaitLeader() *Member {
	c.t.Helper()
	var l *Member
	c.Eventually(30*time.Second, func() error {
		l = c.Leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		for _, m := range c.Members {
			if m.Node == nil {
				continue
			}
			if _, id := m.Node.Raft().Leader(); id != l.ID {
				return fmt.Errorf("node %d sees leader %d, not %d", m.ID, id, l.ID)
			}
		}
		return nil
	})
	return l
}

// WaitApplied waits until every running member has applied index.
func (c *Cluster) WaitApplied(index uint64) {
	c.t.Helper()
	c.Eventually(30*time.Second, func() error {
		for _, m := range c.Members {
			if m.Node != nil && m.Node.Store().AppliedIndex() < index {
				return fmt.Errorf("node %d applied %d < %d", m.ID, m.Node.Store().AppliedIndex(), index)
			}
		}
		return nil
	})
}

// Eventually polls cond until it returns nil or the timeout passes, then
// fails the test with cond's last error.
func (c *Cluster) Eventually(timeout time.Duration, cond func() error) {
	c.t.Helper()
	Eventually(c.t, timeout, cond)
}

// Eventually polls cond every 20ms until it returns nil, failing t with its
// last error after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
