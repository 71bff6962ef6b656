package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/bench"
	"github.com/aspen-dev/aspen/internal/node"
	"github.com/aspen-dev/aspen/internal/ticket"
)

// aspenCluster is n Aspen nodes in this process, built by node.Start (the
// composition root aspen-node uses), on 127.0.0.1 with storage under dir.
type aspenCluster struct {
	nodes  []*node.Node
	ticket string // names every node
}

// startAspen starts and forms an n-node cluster: node 1 is initialized, the
// others are added as learners and made voters.
func startAspen(ctx context.Context, dir string, n int) (_ *aspenCluster, err error) {
	secret := make([]byte, 16)
	rand.Read(secret)
	cookie := "bench-" + hex.EncodeToString(secret)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	c := &aspenCluster{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	for i := 1; i <= n; i++ {
		cfg := node.DefaultConfig()
		cfg.NodeID = uint64(i)
		cfg.Cookie = cookie
		cfg.DataDir = filepath.Join(dir, fmt.Sprintf("aspen%d", i))
		cfg.Bind = "127.0.0.1:0"
		nd, err := node.Start(cfg, logger)
		if err != nil {
			return nil, fmt.Errorf("starting aspen node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, nd)
	}
	var tk ticket.Ticket
	for i, nd := range c.nodes {
		t, err := ticket.Parse(nd.Ticket())
		if err != nil {
			return nil, fmt.Errorf("aspen node %d ticket: %w", i+1, err)
		}
		tk.ClusterID, tk.Credential = t.ClusterID, t.Credential
		tk.Peers = append(tk.Peers, t.Peers[0])
	}
	c.ticket = tk.String()

	first := tk
	first.Peers = tk.Peers[:1]
	cl, err := client.New(client.Config{Ticket: first.String(), Timeout: 20 * time.Second})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if _, err := cl.Init(ctx); err != nil {
		return nil, fmt.Errorf("aspen init: %w", err)
	}
	voters := []uint64{1}
	for i, nd := range c.nodes[1:] {
		id := uint64(i + 2)
		if _, err := cl.AddLearner(ctx, &api.AddLearnerRequest{NodeID: id, Addr: nd.Addr().String()}); err != nil {
			return nil, fmt.Errorf("aspen add-learner %d: %w", id, err)
		}
		voters = append(voters, id)
	}
	if n > 1 {
		if _, err := cl.ChangeMembership(ctx, &api.ChangeMembershipRequest{Voters: voters}); err != nil {
			return nil, fmt.Errorf("aspen change-membership: %w", err)
		}
	}
	return c, c.waitReady(ctx)
}

// waitReady waits until every node agrees on one leader and a write
// through the full ticket succeeds.
func (c *aspenCluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		leaders := 0
		for _, nd := range c.nodes {
			if nd.Raft().IsLeader() {
				leaders++
			}
		}
		if leaders == 1 {
			conns, closeFn, err := c.dial(1)
			if err == nil {
				err = conns[0].Put(ctx, []byte("bench/ready"), []byte("1"))
				closeFn()
				if err == nil {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("aspen cluster not ready: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dial opens n client connections, each a client.Client over the full
// ticket.
func (c *aspenCluster) dial(n int) ([]bench.Conn, func(), error) {
	var clients []*client.Client
	closeAll := func() {
		for _, cl := range clients {
			cl.Close()
		}
	}
	conns := make([]bench.Conn, 0, n)
	for range n {
		cl, err := client.New(client.Config{Ticket: c.ticket, Timeout: 20 * time.Second})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, cl)
		conns = append(conns, bench.AspenConn(cl))
	}
	return conns, closeAll, nil
}

func (c *aspenCluster) close() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		if err := c.nodes[i].Close(); err != nil {
			fmt.Fprintf(os.Stderr, "closing aspen node %d: %v\n", i+1, err)
		}
	}
}
