// Package chaos runs workloads against a cluster (in-process, package
// clustertest, or real aspen-node processes, package proctest) while
// nemeses inject faults, and judges the outcome: a porcupine
// linearizability check of a get/put/CAS/delete history (package
// linearize), a durability check of acknowledged atomic adds, and the
// time-safety rules of TTL keys, leases and a fenced lock (timed.go). The
// tests of this package run short campaigns in `go test`; cmd/aspen-chaos
// runs long ones.
//
// Threads: Run's caller goroutine owns the cluster (it injects and undoes
// faults, stops and starts nodes); workload goroutines only use their own
// clients, the shared, synchronised history and atomic counters; Run's
// progress goroutine only reads those counts. Run waits for all of them.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/linearize"
)

// Config describes one campaign. Zero values take the defaults noted.
type Config struct {
	Seed      uint64        // seeds nemesis and workload choices
	Duration  time.Duration // how long faults are injected (default 5s)
	Clients   int           // concurrent clients, spread over all nodes (default 2 per node)
	Keys      int           // keys of the register workload (default 8)
	OpTimeout time.Duration // per operation (default 1s)
	Hold      time.Duration // how long one fault lasts (default 700ms)
	Quiet     time.Duration // pause between faults (default 300ms)
	Nemeses   []Nemesis     // default: none (the workload runs on a healthy cluster)
	// Adders, when positive, is how many more clients Run starts that make
	// atomic adds to CounterKey beside the register workload (default 0);
	// Report.CounterErr then judges them.
	Adders int
	// Timed, when positive, is how many more clients Run starts that write
	// TTL keys and take a lock with fencing tokens (see TimedReport).
	Timed int
	// Progress, when positive, is how often Run logs operation counts.
	Progress time.Duration
	// Logf, when set, receives one line per fault and a summary.
	Logf func(format string, args ...any)
}

func (cfg *Config) defaults(nodes int) {
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 2 * nodes
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 8
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = time.Second
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 700 * time.Millisecond
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 300 * time.Millisecond
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
}

// NemesisOf injects one kind of fault into a cluster of type C (an
// in-process *clustertest.Cluster, or a *proctest.Cluster of real
// processes). Inject runs on the goroutine that owns c and returns a
// description and the function that undoes the fault (it must leave every
// member running, a voter, and the network healed of what Inject did); ok
// is false when the fault does not apply now (no leader).
type NemesisOf[C any] struct {
	Name   string
	Inject func(c C, rng *rand.Rand) (desc string, undo func(), ok bool)
	// During, when set, runs on the same goroutine after Inject until the
	// fault ends (for faults that keep changing, like flapping partitions).
	During func(c C, rng *rand.Rand, until time.Time)
}

// Nemesis is a nemesis of an in-process cluster.
type Nemesis = NemesisOf[*clustertest.Cluster]

// Report is the outcome of a campaign.
type Report struct {
	Faults []string // one line per fault injected
	// Register workload (Run).
	Lin     linearize.Result
	History []porcupine.Operation // the checked register history
	// Counter workload (RunCounter, or Run with Config.Adders).
	Acked, Unknown, Refused int64 // adds acknowledged, outcome unknown, certainly refused
	Final                   int64 // counter value read after the run
	// Timed workload (Config.Timed): TTL keys and a fenced lock.
	Timed TimedReport
}

// running lists the members that are up.
func running(c *clustertest.Cluster) []int {
	var out []int
	for i, m := range c.Members {
		if m.Node != nil {
			out = append(out, i+1)
		}
	}
	return out
}

// clients makes n clients, client i knowing every node but starting at
// node i mod len(nodes), so load is spread.
func clients(c *clustertest.Cluster, n int) []*client.Client {
	nodes := running(c)
	out := make([]*client.Client, n)
	for i := range out {
		k := i % len(nodes)
		order := append(slices.Clone(nodes[k:]), nodes[:k]...)
		out[i] = c.Client(order...)
	}
	return out
}

// inject runs nemeses until cfg.Duration passes, then calls restore, which
// must bring every member back up, heal the network and wait for a leader.
func inject[C any](c C, nemeses []NemesisOf[C], cfg *Config, rng *rand.Rand, rep *Report, restore func()) {
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	for time.Now().Before(deadline) && len(nemeses) > 0 {
		n := nemeses[rng.IntN(len(nemeses))]
		desc, undo, ok := n.Inject(c, rng)
		if !ok {
			time.Sleep(cfg.Quiet)
			continue
		}
		line := fmt.Sprintf("%6.2fs %s: %s", time.Since(start).Seconds(), n.Name, desc)
		rep.Faults = append(rep.Faults, line)
		cfg.Logf("fault %s", line)
		until := time.Now().Add(min(cfg.Hold, time.Until(deadline)+10*time.Millisecond))
		if n.During != nil {
			n.During(c, rng, until)
		}
		time.Sleep(time.Until(until))
		undo()
		time.Sleep(cfg.Quiet)
	}
	if len(nemeses) == 0 {
		time.Sleep(time.Until(deadline))
	}
	restore()
}

// restore heals an in-process cluster: no network faults, every clock on
// the real time, every member running, a leader.
func restore(c *clustertest.Cluster) {
	c.Net.Reset()
	c.Clock.Reset()
	for _, i := range stopped(c) {
		c.Start(i)
	}
	c.WaitLeader()
}

func stopped(c *clustertest.Cluster) []int {
	var out []int
	for i, m := range c.Members {
		if m.Node == nil {
			out = append(out, i+1)
		}
	}
	return out
}

// Run drives the register workload (get, put, CAS, delete on cfg.Keys keys)
// from cfg.Clients clients, atomic adds from cfg.Adders more and the timed
// workload from cfg.Timed more, while the nemeses run, then checks the
// history for linearizability (giving up after checkTimeout with verdict
// Unknown), reads the counter and judges the timed workload.
func Run(c *clustertest.Cluster, cfg Config, checkTimeout time.Duration) Report {
	cfg.defaults(len(c.Members))
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	cls := clients(c, cfg.Clients+cfg.Adders+cfg.Timed)
	return runWorkload(cls, cfg, checkTimeout, func(rep *Report) {
		inject(c, cfg.Nemeses, &cfg, rng, rep, func() { restore(c) })
	})
}

// runWorkload runs the workloads over cls (cfg.Clients register clients,
// then cfg.Adders adders, then cfg.Timed timed clients) while faults runs,
// lets them go on for cfg.Quiet on the healed cluster, and judges them.
// cfg must have its defaults.
func runWorkload(cls []*client.Client, cfg Config, checkTimeout time.Duration, faults func(rep *Report)) Report {
	h := linearize.NewHistory()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, cl := range cls[:cfg.Clients] {
		wrng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)+100))
		wg.Go(func() { registerWorker(ctx, h.Client(i, cl), i, wrng, &cfg) })
	}
	var adds adds
	for _, cl := range cls[cfg.Clients : cfg.Clients+cfg.Adders] {
		wg.Go(func() { adds.work(ctx, cl, &cfg) })
	}
	timed := newTimed()
	for i, cl := range cls[cfg.Clients+cfg.Adders:] {
		wrng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)+200))
		wg.Go(func() { timed.work(ctx, cl, i, wrng, &cfg) })
	}
	if cfg.Progress > 0 {
		wg.Go(func() {
			start := time.Now()
			tick := time.NewTicker(cfg.Progress)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				n := h.Counts()
				cfg.Logf("ops %6.1fs: register %d ok, %d unknown, %d failed; adds %d acked, %d unknown, %d refused; %s",
					time.Since(start).Seconds(), n.OK, n.Unknown, n.Failed, adds.acked.Load(), adds.unknown.Load(), adds.refused.Load(), timed.counts())
			}
		})
	}
	var rep Report
	faults(&rep)
	time.Sleep(cfg.Quiet) // let the workload run on the healed cluster too
	cancel()
	wg.Wait()
	if cfg.Clients > 0 {
		rep.Lin = h.Check(checkTimeout)
		rep.History = h.Operations()
		cfg.Logf("history: %d ops (%d ok, %d unknown, %d failed), verdict %s in %v",
			rep.Lin.Ops, rep.Lin.Counts.OK, rep.Lin.Counts.Unknown, rep.Lin.Counts.Failed, rep.Lin.Verdict, rep.Lin.Elapsed.Round(time.Millisecond))
	}
	if cfg.Adders > 0 {
		adds.finish(cls[cfg.Clients], &rep, &cfg)
	}
	if cfg.Timed > 0 {
		rep.Timed = timed.report()
		cfg.Logf("timed: %s", rep.Timed.Summary())
	}
	return rep
}

func registerWorker(ctx context.Context, cl *linearize.Client, id int, rng *rand.Rand, cfg *Config) {
	last := map[string]string{} // last value this worker saw per key, for CAS
	for seq := 0; ctx.Err() == nil; seq++ {
		key := fmt.Sprintf("k%d", rng.IntN(cfg.Keys))
		val := fmt.Sprintf("c%d-%d", id, seq)
		octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		var err error
		switch p := rng.IntN(100); {
		case p < 45:
			var out linearize.Output
			if out, err = cl.Get(octx, key); err == nil {
				last[key] = out.Value
				if !out.Found {
					delete(last, key)
				}
			}
		case p < 70:
			err = cl.Put(octx, key, val)
		case p < 92:
			old, ok := last[key]
			_, err = cl.CAS(octx, key, old, val, !ok)
		default:
			_, err = cl.Delete(octx, key)
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond) // do not spin while the cluster has no leader
		}
	}
}

// CounterKey is the key RunCounter adds to.
const CounterKey = "counter"

// RunCounter drives atomic adds of 1 to CounterKey from cfg.Clients clients
// while the nemeses run, then reads the counter. Durable, exactly-once
// application means Acked ≤ Final ≤ Acked+Unknown; CounterErr says whether
// it holds.
func RunCounter(c *clustertest.Cluster, cfg Config) Report {
	cfg.defaults(len(c.Members))
	cfg.Adders, cfg.Clients, cfg.Timed = cfg.Clients, 0, 0
	rng := rand.New(rand.NewPCG(cfg.Seed, 2))
	return runWorkload(clients(c, cfg.Adders), cfg, 0, func(rep *Report) {
		inject(c, cfg.Nemeses, &cfg, rng, rep, func() { restore(c) })
	})
}

// adds counts the outcomes of atomic adds of 1 to CounterKey.
type adds struct{ acked, unknown, refused atomic.Int64 }

// work adds until ctx ends.
func (a *adds) work(ctx context.Context, cl *client.Client, cfg *Config) {
	for ctx.Err() == nil {
		octx, ocancel := context.WithTimeout(ctx, cfg.OpTimeout)
		_, err := cl.Txn(octx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnAdd, Key: []byte(CounterKey), Delta: 1}}})
		ocancel()
		switch {
		case err == nil:
			a.acked.Add(1)
		case linearize.Indeterminate(err):
			a.unknown.Add(1)
			time.Sleep(10 * time.Millisecond)
		default:
			a.refused.Add(1)
		}
	}
}

// finish records the counts in rep and reads the final counter through cl
// (rep.Final is -1 when it cannot be read within 20s).
func (a *adds) finish(cl *client.Client, rep *Report, cfg *Config) {
	rep.Acked, rep.Unknown, rep.Refused = a.acked.Load(), a.unknown.Load(), a.refused.Load()
	rep.Final = -1
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		gctx, gcancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := cl.Get(gctx, &api.GetRequest{Key: []byte(CounterKey)})
		gcancel()
		if err == nil {
			rep.Final = 0
			if r.KV != nil {
				fmt.Sscan(string(r.KV.Value), &rep.Final)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg.Logf("counter: %d acked, %d unknown, %d refused, final %d", rep.Acked, rep.Unknown, rep.Refused, rep.Final)
}

// CounterErr reports a durability violation of a RunCounter report, or nil.
func (r Report) CounterErr() error {
	switch {
	case r.Final < 0:
		return errors.New("could not read the counter after the run")
	case r.Final < r.Acked:
		return fmt.Errorf("lost writes: counter is %d but %d adds were acknowledged", r.Final, r.Acked)
	case r.Final > r.Acked+r.Unknown:
		return fmt.Errorf("double application: counter is %d but only %d adds were acknowledged and %d unknown", r.Final, r.Acked, r.Unknown)
	}
	return nil
}

// Summary is a one-paragraph description of the report.
func (r Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d faults injected\n", len(r.Faults))
	if r.Lin.Ops > 0 {
		fmt.Fprintf(&b, "register history: %d ops (%d ok, %d unknown), %d failed reads/refused writes, linearizability %s (checked in %v)\n",
			r.Lin.Ops, r.Lin.Counts.OK, r.Lin.Counts.Unknown, r.Lin.Counts.Failed, r.Lin.Verdict, r.Lin.Elapsed.Round(time.Millisecond))
	}
	if r.Acked+r.Unknown > 0 {
		fmt.Fprintf(&b, "counter: %d adds acknowledged, %d unknown, %d refused, final value %d\n", r.Acked, r.Unknown, r.Refused, r.Final)
	}
	if r.Timed.TTLKeys > 0 || r.Timed.Holds > 0 {
		fmt.Fprintf(&b, "timed: %s\n", r.Timed.Summary())
	}
	return b.String()
}
