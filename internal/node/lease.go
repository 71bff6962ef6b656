package node

import (
	"context"
	"time"

	"github.com/aspen-dev/aspen/internal/coord"
)

// leaseInterval is how often the leader looks for expired leases.
const leaseInterval = 250 * time.Millisecond

// expireLeases runs on every node; while this node leads it revokes the
// leases whose deadline passed on its clock, deleting their keys. The
// deadline is absolute (unix ms stamped by the leader that granted or
// renewed the lease), so a new leader continues where the old one stopped:
// a lease neither ends early nor outlives its deadline by more than the
// failover time plus one interval.
func (n *Node) expireLeases(s *coord.Service) {
	t := time.NewTicker(leaseInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.raft.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		count, err := s.RevokeExpiredLeases(ctx)
		cancel()
		if err != nil {
			n.log.Debug("revoking expired leases", "err", err)
		} else if count > 0 {
			n.log.Debug("revoked expired leases", "count", count)
		}
	}
}
