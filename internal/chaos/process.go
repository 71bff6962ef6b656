package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/proctest"
)

// ProcessNemesis is a nemesis of a cluster of real aspen-node processes.
type ProcessNemesis = NemesisOf[*proctest.Cluster]

// ProcessElectionTimeoutMs is the election timeout of process campaigns'
// nodes; leader-pause holds the leader stopped for longer than that.
const ProcessElectionTimeoutMs = 500

// LeaderKill kills the leader with SIGKILL; undone, it restarts on its data
// dir.
var LeaderKill = ProcessNemesis{Name: "leader-kill", Inject: func(p *proctest.Cluster, _ *rand.Rand) (string, func(), bool) {
	l := p.Leader()
	if l == 0 {
		return "", nil, false
	}
	return killOne(p, l, "leader")
}}

// MemberKill kills a random member with SIGKILL; undone, it restarts.
var MemberKill = ProcessNemesis{Name: "member-kill", Inject: func(p *proctest.Cluster, rng *rand.Rand) (string, func(), bool) {
	return killOne(p, 1+rng.IntN(len(p.Members)), "member")
}}

func killOne(p *proctest.Cluster, i int, what string) (string, func(), bool) {
	if err := p.Kill(i); err != nil {
		return "", nil, false
	}
	return fmt.Sprintf("kill -9 %s %d", what, i), func() { mustRestart(p, i) }, true
}

// ClusterKill kills every member with SIGKILL at once; undone, all restart
// on their data dirs.
var ClusterKill = ProcessNemesis{Name: "cluster-kill", Inject: func(p *proctest.Cluster, _ *rand.Rand) (string, func(), bool) {
	for i := range p.Members {
		if err := p.Kill(i + 1); err != nil {
			return "", nil, false
		}
	}
	return "kill -9 every member", func() {
		for i := range p.Members {
			mustRestart(p, i+1)
		}
	}, true
}}

// LeaderPause stops the leader with SIGSTOP for the whole fault (longer
// than the election timeout); undone, SIGCONT. The paused leader wakes up
// deposed, with requests and raft messages it accepted before the pause.
var LeaderPause = ProcessNemesis{Name: "leader-pause", Inject: func(p *proctest.Cluster, _ *rand.Rand) (string, func(), bool) {
	l := p.Leader()
	if l == 0 || p.Pause(l) != nil {
		return "", nil, false
	}
	return fmt.Sprintf("SIGSTOP leader %d", l), func() {
		if err := p.Resume(l); err != nil {
			panic(harnessFailure(err.Error()))
		}
	}, true
}}

// ProcessAll is every process nemesis.
var ProcessAll = []ProcessNemesis{LeaderKill, MemberKill, ClusterKill, LeaderPause}

// ProcessByName finds process nemeses by name; "all" is ProcessAll.
func ProcessByName(names ...string) ([]ProcessNemesis, error) {
	return byName(ProcessAll, names)
}

// mustRestart restarts member i; the campaign cannot go on without it.
func mustRestart(p *proctest.Cluster, i int) {
	if err := p.Restart(i); err != nil {
		panic(harnessFailure(err.Error()))
	}
}

// restoreProcesses resumes paused members, restarts killed ones and waits
// for a leader.
func restoreProcesses(p *proctest.Cluster) {
	for i, m := range p.Members {
		switch {
		case m.Paused():
			if err := p.Resume(i + 1); err != nil {
				panic(harnessFailure(err.Error()))
			}
		case !m.Running():
			mustRestart(p, i+1)
		}
	}
	if err := p.WaitLeader(time.Minute); err != nil {
		panic(harnessFailure(err.Error()))
	}
}

// runProcessCampaign builds aspen-node, starts cp.Nodes processes under a
// new temporary directory, runs the workload under cp.ProcessNemeses and
// kills the processes. The directory (data dirs, node logs) is removed
// unless the run failed. A harness failure panics with harnessFailure
// (RunCampaign recovers it).
func runProcessCampaign(cp Campaign, cfg Config) Report {
	dir, err := os.MkdirTemp("", "aspen-chaos-proc-")
	if err != nil {
		panic(harnessFailure(fmt.Sprintf("temp dir: %v", err)))
	}
	keep := true // the nodes' logs and data dirs, unless the run passes
	defer func() {
		if keep {
			cfg.Logf("kept the nodes' data dirs and logs in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	bin, err := proctest.Build(dir)
	if err != nil {
		panic(harnessFailure(err.Error()))
	}
	p, err := proctest.Start(proctest.Options{Nodes: cp.Nodes, Bin: bin, Dir: dir, ElectionTimeoutMs: ProcessElectionTimeoutMs})
	if err != nil {
		panic(harnessFailure(err.Error()))
	}
	defer p.Close()
	cfg.Logf("cluster of %d aspen-node processes up, leader %d (logs in %s until the end)", cp.Nodes, p.Leader(), dir)
	cls := make([]*client.Client, cfg.Clients+cfg.Adders+cfg.Timed)
	all := make([]int, len(p.Members))
	for i := range all {
		all[i] = i + 1
	}
	for i := range cls {
		k := i % len(all)
		if cls[i], err = p.Client(append(slices.Clone(all[k:]), all[:k]...)...); err != nil {
			panic(harnessFailure(err.Error()))
		}
		defer cls[i].Close()
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 3))
	rep := runWorkload(cls, cfg, cp.CheckTimeout, func(rep *Report) {
		inject(p, cp.ProcessNemeses, &cfg, rng, rep, func() { restoreProcesses(p) })
	})
	keep = rep.Lin.Verdict != porcupine.Ok || rep.CounterErr() != nil || rep.Timed.Err() != nil
	return rep
}
