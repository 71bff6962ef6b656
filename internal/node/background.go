package node

import (
	"context"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/kv"
)

// sweepInterval is how often the leader looks for expired keys.
const sweepInterval = 500 * time.Millisecond

// sweepExpired runs on every node; while this node leads it proposes the
// deletion of expired keys, stamped with its clock, so every replica deletes
// the same keys at the same log index.
func (n *Node) sweepExpired() {
	n.whileLeader(sweepInterval, func() {
		now := n.stampMs()
		keys, err := n.store.Expired(now, api.MaxBatchOps*10)
		if err != nil || len(keys) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		if res, err := n.apply(ctx, &kv.Command{NowMs: now, Expire: keys}, nil); err != nil {
			n.log.Debug("expiring keys", "count", len(keys), "err", err)
		} else if res.Expired > 0 {
			n.publishExpired(keys, res.Expired)
		}
		cancel()
	})
}

// whileLeader calls f every interval while this node leads, until the node
// stops. It runs in the caller's goroutine (one started by goFunc).
func (n *Node) whileLeader(interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.raft.IsLeader() {
			f()
		}
	}
}

// join adds this node to the cluster of cfg.Join as a learner, waits until
// it has caught up, then promotes it to voter. It retries until it succeeds
// or the node stops; a node that already is a voter does nothing.
func (n *Node) join() {
	c, err := client.New(client.Config{Ticket: n.cfg.Join, Logger: n.log})
	if err != nil {
		n.log.Error("--join: bad ticket", "err", err)
		return
	}
	defer c.Close()
	retry := func(what string, f func(ctx context.Context) error) bool {
		for {
			ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
			err := f(ctx)
			cancel()
			if err == nil {
				return true
			}
			n.log.Warn("joining cluster: "+what+" failed; retrying", "err", err)
			select {
			case <-n.ctx.Done():
				return false
			case <-time.After(time.Second):
			}
		}
	}
	if m := n.raft.Metrics(); m.IsVoter {
		return
	}
	if !n.raft.Initialized() {
		ok := retry("add-learner", func(ctx context.Context) error {
			_, err := c.AddLearner(ctx, &api.AddLearnerRequest{NodeID: n.cfg.NodeID, Addr: n.self.String()})
			if err != nil && api.CodeOf(err) == api.CodeConflict && n.raft.Initialized() {
				return nil
			}
			return err
		})
		if !ok {
			return
		}
	}
	// caught up: applied within a few entries of the commit index the leader
	// has told us about
	for {
		m := n.raft.Metrics()
		if m.CommitIndex > 0 && m.AppliedIndex+100 >= m.CommitIndex && m.Leader != 0 {
			break
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if retry("promote", func(ctx context.Context) error {
		if n.raft.Metrics().IsVoter {
			return nil
		}
		_, err := c.Promote(ctx, &api.PromoteRequest{LearnerID: n.cfg.NodeID})
		return err
	}) {
		n.log.Info("joined the cluster as a voter")
		if err := n.writeTicket(); err != nil {
			n.log.Warn("rewriting ticket", "err", err)
		}
	}
}
