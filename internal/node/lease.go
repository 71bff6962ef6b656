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
	n.whileLeader(leaseInterval, func() {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		count, err := s.RevokeExpiredLeases(ctx)
		if err != nil {
			n.log.Debug("revoking expired leases", "err", err)
		} else if count > 0 {
			n.log.Debug("revoked expired leases", "count", count)
		}
	})
}
