package chaos_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/aspen-dev/aspen/internal/chaos"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/faults"
)

// seed is $ASPEN_CHAOS_SEED, or the clock; it is logged so a failing run
// can be repeated (the schedule repeats, the timing of a real cluster does
// not exactly).
func seed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("ASPEN_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ASPEN_CHAOS_SEED=%q: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// short is how long each nemesis test injects faults.
const short = 4 * time.Second

func newCluster(t *testing.T, s uint64) *clustertest.Cluster {
	t.Helper()
	t.Logf("seed %d (rerun with ASPEN_CHAOS_SEED=%d)", s, s)
	c := clustertest.New(t, 3, clustertest.Options{Net: faults.New(s)})
	c.WaitVoters()
	return c
}

// checkLinearizable runs the register workload under nemeses and fails the
// test on a violation, writing porcupine's visualization next to the logs.
func checkLinearizable(t *testing.T, nemeses ...chaos.Nemesis) {
	s := seed(t)
	c := newCluster(t, s)
	rep := chaos.Run(c, chaos.Config{Seed: s, Duration: short, Hold: 1200 * time.Millisecond, Quiet: 400 * time.Millisecond,
		Timed: 3, Nemeses: nemeses, Logf: t.Logf}, 20*time.Second)
	if len(nemeses) > 0 && len(rep.Faults) == 0 {
		t.Errorf("no fault was injected")
	}
	if err := rep.Timed.Err(); err != nil {
		t.Errorf("seed %d: %v\n%s", s, err, rep.Summary())
	}
	if rep.Timed.TTLKeys == 0 || rep.Timed.Holds == 0 {
		t.Errorf("the timed workload wrote no TTL key or took no lock: %s", rep.Timed.Summary())
	}
	if rep.Lin.Counts.OK == 0 {
		t.Fatalf("no operation succeeded: %s", rep.Summary())
	}
	switch rep.Lin.Verdict {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Logf("linearizability check timed out (inconclusive): %s", rep.Summary())
	default:
		// not t.TempDir: the file must outlive the failed test
		dir, err := os.MkdirTemp("", "aspen-chaos-")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("linearizability-%s-seed%d.html", t.Name(), s))
		if err := rep.Lin.WriteHTML(path); err != nil {
			t.Errorf("%v", err)
		}
		t.Errorf("history is not linearizable (seed %d); visualization: %s\n%s", s, path, rep.Summary())
	}
}

func TestLinearizableNoFaults(t *testing.T) { checkLinearizable(t) }

func TestLinearizableLeaderIsolation(t *testing.T) {
	checkLinearizable(t, chaos.LeaderIsolate, chaos.LeaderOneWay)
}

func TestLinearizableMemberRestart(t *testing.T) {
	checkLinearizable(t, chaos.MemberRestart)
}

func TestLinearizableSplit(t *testing.T) { checkLinearizable(t, chaos.Split) }

func TestLinearizableFlappingPartitions(t *testing.T) { checkLinearizable(t, chaos.Flap) }

func TestLinearizableLossAndDelay(t *testing.T) { checkLinearizable(t, chaos.Loss, chaos.Delay) }

// TestClockJumps jumps the leader's clock forward and back by seconds to
// minutes: the register history stays linearizable, TTL keys never come
// back, fencing tokens grow and lock time never goes backwards.
func TestClockJumps(t *testing.T) { checkLinearizable(t, chaos.ClockJump) }

// TestMembershipChange removes a voter (often the leader) and adds it back
// while clients write.
func TestMembershipChange(t *testing.T) { checkLinearizable(t, chaos.Membership) }

// TestDurableAdds checks that every acknowledged atomic add survives member
// restarts and partitions, and none is applied twice.
func TestDurableAdds(t *testing.T) {
	checkDurable(t, chaos.LeaderIsolate, chaos.Split, chaos.Loss)
}

// TestDurableAddsRestart is TestDurableAdds with members stopped and
// restarted on their data dirs.
func TestDurableAddsRestart(t *testing.T) {
	checkDurable(t, chaos.MemberRestart, chaos.LeaderIsolate)
}

// TestDurableAddsMembership is TestDurableAdds with voters removed and
// added back.
func TestDurableAddsMembership(t *testing.T) { checkDurable(t, chaos.Membership) }

func checkDurable(t *testing.T, nemeses ...chaos.Nemesis) {
	s := seed(t)
	c := newCluster(t, s)
	rep := chaos.RunCounter(c, chaos.Config{Seed: s, Duration: short, Hold: 1200 * time.Millisecond, Quiet: 400 * time.Millisecond,
		Nemeses: nemeses, Logf: t.Logf})
	if rep.Acked == 0 {
		t.Fatalf("no add was acknowledged: %s", rep.Summary())
	}
	if err := rep.CounterErr(); err != nil {
		t.Errorf("seed %d: %v\n%s", s, err, rep.Summary())
	}
}
