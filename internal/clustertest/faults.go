package clustertest

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/internal/transport"
)

// Partition splits the members (1-based indexes) into groups that cannot
// reach each other in either direction, replacing any earlier partition or
// block, and closes the connections between nodes now separated. Members
// named in no group are cut from every member that is.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	keys := make([][]transport.PublicKey, len(groups))
	for i, g := range groups {
		for _, m := range g {
			keys[i] = append(keys[i], c.key(m))
		}
	}
	c.Net.Partition(keys...)
	c.cutConns()
}

// Isolate cuts member i from every other member, both ways.
func (c *Cluster) Isolate(i int) {
	c.t.Helper()
	var rest []int
	for j := range c.Members {
		if j+1 != i {
			rest = append(rest, j+1)
		}
	}
	c.Partition([]int{i}, rest)
}

// Block cuts traffic from member from to member to only (one-way), in
// addition to the rules already in place.
func (c *Cluster) Block(from, to int) {
	c.t.Helper()
	c.Net.Block(c.key(from), c.key(to))
	c.cutConns()
}

// Heal removes every partition and block (loss and delay set on Net stay).
func (c *Cluster) Heal() {
	c.Net.Heal()
}

// key is member i's node key; it is known once the member has started.
func (c *Cluster) key(i int) transport.PublicKey {
	c.t.Helper()
	if i < 1 || i > len(c.Members) {
		c.t.Fatalf("no member %d", i)
	}
	k := c.Members[i-1].Key
	if k.IsZero() {
		c.t.Fatalf("member %d never started: its key is unknown", i)
	}
	return k
}

// cutConns closes, on every running member, the connections to members it
// may no longer reach or be reached by, so long-lived raft connections do
// not outlive a partition.
func (c *Cluster) cutConns() {
	for _, a := range c.Members {
		if a.Node == nil {
			continue
		}
		for _, b := range c.Members {
			if a == b || b.Key.IsZero() {
				continue
			}
			if c.Net.Blocked(a.Key, b.Key) || c.Net.Blocked(b.Key, a.Key) {
				a.Node.Endpoint().CloseConns(b.Key)
			}
		}
	}
}

// WaitVoters waits until every running member's configuration lists all
// members as voters, so a fault that needs a quorum of them (isolating the
// leader, splitting the cluster) starts from a settled membership.
func (c *Cluster) WaitVoters() {
	c.t.Helper()
	c.Eventually(30*time.Second, func() error {
		for _, m := range c.Members {
			if m.Node == nil {
				continue
			}
			servers, err := m.Node.Raft().Servers()
			if err != nil {
				return err
			}
			voters := 0
			for _, s := range servers {
				if s.Suffrage == raft.Voter {
					voters++
				}
			}
			if voters != len(c.Members) {
				return fmt.Errorf("node %d sees %d voters, want %d", m.ID, voters, len(c.Members))
			}
		}
		return nil
	})
}
