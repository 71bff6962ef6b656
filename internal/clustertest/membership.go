package clustertest

import (
	"context"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
)

// membershipTimeout bounds one membership change.
const membershipTimeout = 20 * time.Second

// RemoveVoter removes member i from the cluster's configuration, asking
// the other running members; member i keeps running.
func (c *Cluster) RemoveVoter(i int) error {
	var voters, others []int
	for j, m := range c.Members {
		if j+1 == i {
			continue
		}
		voters = append(voters, j+1)
		if m.Node != nil {
			others = append(others, j+1)
		}
	}
	return c.changeVoters(others, voters)
}

// AddVoter adds member i (removed earlier by RemoveVoter) back as a
// learner at its address and then makes every member a voter again. A
// node removed from the configuration shuts its Raft down, so AddVoter
// first restarts member i on its data dir.
func (c *Cluster) AddVoter(i int) error {
	m := c.Members[i-1]
	c.Restart(i)
	var all, others []int
	for j := range c.Members {
		all = append(all, j+1)
		if j+1 != i {
			others = append(others, j+1)
		}
	}
	err := c.withClient(others, func(ctx context.Context, cl *client.Client) error {
		_, err := cl.AddLearner(ctx, &api.AddLearnerRequest{NodeID: m.ID, Addr: m.Node.Addr().String()})
		return err
	})
	if err != nil {
		return fmt.Errorf("add member %d as learner: %w", m.ID, err)
	}
	return c.changeVoters(others, all)
}

// changeVoters makes the given members the voter set, through a client of
// the members via.
func (c *Cluster) changeVoters(via, voters []int) error {
	ids := make([]uint64, len(voters))
	for k, v := range voters {
		ids[k] = c.Members[v-1].ID
	}
	err := c.withClient(via, func(ctx context.Context, cl *client.Client) error {
		_, err := cl.ChangeMembership(ctx, &api.ChangeMembershipRequest{Voters: ids})
		return err
	})
	if err != nil {
		return fmt.Errorf("change voters to %v: %w", ids, err)
	}
	return nil
}

// withClient runs f with a client of the running members among via, bounded
// by membershipTimeout, and closes the client.
func (c *Cluster) withClient(via []int, f func(context.Context, *client.Client) error) error {
	var up []int
	for _, i := range via {
		if c.Members[i-1].Node != nil {
			up = append(up, i)
		}
	}
	cl, err := client.New(client.Config{Ticket: c.Ticket(up...), Timeout: membershipTimeout})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), membershipTimeout)
	defer cancel()
	return f(ctx, cl)
}
