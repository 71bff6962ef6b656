package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aspen-dev/aspen/internal/clustertest"
)

// leaderIndex is the 1-based index of the leader, or 0.
func leaderIndex(c *clustertest.Cluster) int {
	l := c.Leader()
	if l == nil {
		return 0
	}
	for i, m := range c.Members {
		if m == l {
			return i + 1
		}
	}
	return 0
}

// LeaderIsolate cuts the leader from every other member, both ways.
var LeaderIsolate = Nemesis{Name: "leader-isolate", Inject: func(c *clustertest.Cluster, _ *rand.Rand) (string, func(), bool) {
	l := leaderIndex(c)
	if l == 0 {
		return "", nil, false
	}
	c.Isolate(l)
	return fmt.Sprintf("isolated leader %d", l), c.Heal, true
}}

// LeaderOneWay cuts the leader's outgoing traffic only: it still hears the
// others, they no longer hear it.
var LeaderOneWay = Nemesis{Name: "leader-oneway", Inject: func(c *clustertest.Cluster, _ *rand.Rand) (string, func(), bool) {
	l := leaderIndex(c)
	if l == 0 {
		return "", nil, false
	}
	for i := range c.Members {
		if i+1 != l {
			c.Block(l, i+1)
		}
	}
	return fmt.Sprintf("leader %d cannot send", l), c.Heal, true
}}

// MemberRestart stops a random member (the leader half of the time) and
// starts it again on its data dir when undone.
var MemberRestart = Nemesis{Name: "member-restart", Inject: func(c *clustertest.Cluster, rng *rand.Rand) (string, func(), bool) {
	i := 1 + rng.IntN(len(c.Members))
	if l := leaderIndex(c); l != 0 && rng.IntN(2) == 0 {
		i = l
	}
	if c.Members[i-1].Node == nil {
		return "", nil, false
	}
	c.Stop(i)
	return fmt.Sprintf("stopped member %d", i), func() { c.Start(i) }, true
}}

// Split cuts the members into a random minority and majority; the leader
// lands in the minority half of the time.
var Split = Nemesis{Name: "split", Inject: func(c *clustertest.Cluster, rng *rand.Rand) (string, func(), bool) {
	perm := rng.Perm(len(c.Members))
	if l := leaderIndex(c); l != 0 && rng.IntN(2) == 0 {
		for k, p := range perm { // move the leader to the front: the minority
			if p == l-1 {
				perm[0], perm[k] = perm[k], perm[0]
			}
		}
	}
	minority := (len(c.Members) - 1) / 2
	var a, b []int
	for k, p := range perm {
		if k < minority {
			a = append(a, p+1)
		} else {
			b = append(b, p+1)
		}
	}
	c.Partition(a, b)
	return fmt.Sprintf("minority %v | majority %v", a, b), c.Heal, true
}}

// Flap changes the partition every 50-200ms for the duration of one fault:
// random splits, isolations and healed moments.
var Flap = Nemesis{Name: "flap", Inject: func(c *clustertest.Cluster, rng *rand.Rand) (string, func(), bool) {
	return "flapping partitions", c.Heal, true
}, During: func(c *clustertest.Cluster, rng *rand.Rand, until time.Time) {
	for time.Now().Before(until) {
		flapOnce(c, rng)
		time.Sleep(min(time.Duration(50+rng.IntN(150))*time.Millisecond, time.Until(until)))
	}
}}

func flapOnce(c *clustertest.Cluster, rng *rand.Rand) string {
	n := len(c.Members)
	switch rng.IntN(3) {
	case 0:
		c.Heal()
		return "heal"
	case 1:
		i := 1 + rng.IntN(n)
		c.Isolate(i)
		return fmt.Sprintf("isolate %d", i)
	default:
		perm := rng.Perm(n)
		var a, b []int
		for k, p := range perm {
			if k < n/2 {
				a = append(a, p+1)
			} else {
				b = append(b, p+1)
			}
		}
		c.Partition(a, b)
		return fmt.Sprintf("split %v|%v", a, b)
	}
}

// Loss drops 20% of streams and raft messages between nodes.
var Loss = Nemesis{Name: "loss", Inject: func(c *clustertest.Cluster, _ *rand.Rand) (string, func(), bool) {
	c.Net.SetLoss(0.2)
	return "20% loss", func() { c.Net.SetLoss(0) }, true
}}

// Delay adds 5-25ms to every stream and raft message between nodes.
var Delay = Nemesis{Name: "delay", Inject: func(c *clustertest.Cluster, _ *rand.Rand) (string, func(), bool) {
	c.Net.SetDelay(5*time.Millisecond, 20*time.Millisecond)
	return "delay 5ms+20ms jitter", func() { c.Net.SetDelay(0, 0) }, true
}}

// ClockJump moves the leader's clock forward and back by 5 s to 2 min,
// a new jump every 200-500 ms while the fault lasts; undone, every clock
// is back on the real time. A forward jump expires TTL keys, locks and
// leases early (state-machine time then stays ahead until the real time
// catches up); a backward jump changes nothing the state machine sees
// (see kv.Store.MaxNowMs).
var ClockJump = Nemesis{Name: "clock-jump", Inject: func(c *clustertest.Cluster, rng *rand.Rand) (string, func(), bool) {
	l := leaderIndex(c)
	if l == 0 {
		return "", nil, false
	}
	off := jump(rng)
	c.Clock.Set(c.Members[l-1].ID, off)
	return fmt.Sprintf("leader %d clock %+v, then jumping", l, off), c.Clock.Reset, true
}, During: func(c *clustertest.Cluster, rng *rand.Rand, until time.Time) {
	for time.Now().Before(until) {
		time.Sleep(min(time.Duration(200+rng.IntN(300))*time.Millisecond, time.Until(until)))
		if l := leaderIndex(c); l != 0 {
			c.Clock.Set(c.Members[l-1].ID, jump(rng))
		}
	}
}}

// jump is a random clock offset of 5 s to 2 min, forward or back.
func jump(rng *rand.Rand) time.Duration {
	d := 5*time.Second + time.Duration(rng.Int64N(int64(115*time.Second)))
	if rng.IntN(2) == 0 {
		d = -d
	}
	return d.Round(time.Millisecond)
}

// Membership removes a voter (the leader half of the time) from the
// configuration while clients write; undone, it is added back as a
// learner and made a voter again.
var Membership = Nemesis{Name: "membership", Inject: func(c *clustertest.Cluster, rng *rand.Rand) (string, func(), bool) {
	if len(c.Members) < 3 {
		return "", nil, false
	}
	i := 1 + rng.IntN(len(c.Members))
	if l := leaderIndex(c); l != 0 && rng.IntN(2) == 0 {
		i = l
	}
	if err := c.RemoveVoter(i); err != nil {
		// Perhaps applied after all (a timeout): make sure member i is a
		// voter again (adding a voter back is idempotent), then try
		// another fault.
		addBack(c, i)
		return "", nil, false
	}
	return fmt.Sprintf("removed voter %d", i), func() { addBack(c, i) }, true
}}

// addBack adds member i back as a voter, retrying while the cluster
// elects a leader; the campaign cannot go on with a member short.
func addBack(c *clustertest.Cluster, i int) {
	c.Eventually(time.Minute, func() error { return c.AddVoter(i) })
	c.WaitVoters()
}

// All is every in-process nemesis. The leader paused longer than the
// election timeout is leader-isolate in process (a node's raft ticks
// cannot be stopped); process campaigns pause it with SIGSTOP.
var All = []Nemesis{LeaderIsolate, LeaderOneWay, MemberRestart, Split, Flap, Loss, Delay, ClockJump, Membership}

// ByName finds nemeses by name; "all" is All.
func ByName(names ...string) ([]Nemesis, error) { return byName(All, names) }

// byName picks nemeses of all by name; "all" is all of them.
func byName[C any](all []NemesisOf[C], names []string) ([]NemesisOf[C], error) {
	var out []NemesisOf[C]
	for _, name := range names {
		if name == "all" {
			out = append(out, all...)
			continue
		}
		found := false
		for _, n := range all {
			if n.Name == name {
				out = append(out, n)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown nemesis %q", name)
		}
	}
	return out, nil
}
