package chaos_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/internal/chaos"
)

// TestProcessFaults runs the register, counter and timed workloads against
// three real aspen-node processes while the leader is killed with SIGKILL
// or paused with SIGSTOP past the election timeout, and the whole cluster
// is killed and restarted: the history stays linearizable, every
// acknowledged add survives and none is applied twice.
func TestProcessFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs aspen-node processes")
	}
	s := seed(t)
	t.Logf("seed %d (rerun with ASPEN_CHAOS_SEED=%d)", s, s)
	rep, err := chaos.RunCampaign(chaos.Campaign{
		Nodes: 3, Process: true,
		ProcessNemeses: []chaos.ProcessNemesis{chaos.LeaderKill, chaos.LeaderPause, chaos.ClusterKill},
		Config: chaos.Config{Seed: s, Duration: 4 * time.Second, Hold: 1200 * time.Millisecond, Quiet: 400 * time.Millisecond,
			Clients: 4, Adders: 2, Timed: 1, Logf: t.Logf},
		CheckTimeout: 20 * time.Second,
		OutDir:       t.TempDir(),
	})
	switch {
	case errors.Is(err, chaos.ErrInconclusive):
		t.Logf("inconclusive: %v", err)
	case err != nil:
		t.Fatalf("seed %d: %v\n%s", s, err, rep.Summary())
	}
	if len(rep.Faults) == 0 || rep.Lin.Counts.OK == 0 || rep.Acked == 0 {
		t.Fatalf("no fault injected or nothing acknowledged:\n%s", rep.Summary())
	}
}
