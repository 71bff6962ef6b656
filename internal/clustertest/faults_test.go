package clustertest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/internal/clustertest"
)

// TestIsolateLeader checks that an isolated leader really is cut off: the
// others elect a new leader, and after Heal the cluster agrees on one.
func TestIsolateLeader(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	c.WaitVoters()
	old := c.WaitLeader()
	c.Isolate(int(old.ID))
	c.Eventually(20*time.Second, func() error {
		for _, m := range c.Members {
			if m != old && m.Node.Raft().IsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no new leader among the majority")
	})
	if c.Net.Refused() == 0 {
		t.Errorf("the network refused nothing")
	}
	c.Heal()
	c.WaitLeader()
}
