package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aspen-dev/aspen/internal/chaos"
)

// options are the command's flags.
type options struct {
	nodes        int
	duration     time.Duration
	nemesis      string
	seed         uint64
	clients      int
	adders       int
	keys         int
	hold         time.Duration
	quiet        time.Duration
	opTimeout    time.Duration
	checkTimeout time.Duration
	progress     time.Duration
	printOps     bool
	out          string
	timed        int
	process      bool
}

// Exit codes.
const (
	exitOK           = 0
	exitViolation    = 1
	exitUsage        = 2
	exitInconclusive = 3
)

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("aspen-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.nodes, "nodes", 5, "cluster size")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long faults are injected")
	fs.StringVar(&o.nemesis, "nemesis", "all", "comma-separated nemeses, or all; in process: "+names(chaos.All)+"; with --process: "+names(chaos.ProcessAll))
	fs.BoolVar(&o.process, "process", false, "run real aspen-node processes (built with go build) and kill -9 / SIGSTOP them, instead of an in-process cluster")
	fs.IntVar(&o.timed, "timed", 2, "clients writing TTL keys and taking a fenced lock (time-safety checks)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the fault schedule and workload choices (default: the clock)")
	fs.IntVar(&o.clients, "clients", 8, "register-workload clients, spread over all nodes")
	fs.IntVar(&o.adders, "adders", 2, "clients making atomic adds to one counter")
	fs.IntVar(&o.keys, "keys", 8, "keys of the register workload")
	fs.DurationVar(&o.hold, "hold", 2*time.Second, "how long one fault lasts")
	fs.DurationVar(&o.quiet, "quiet", 500*time.Millisecond, "pause between faults")
	fs.DurationVar(&o.opTimeout, "op-timeout", time.Second, "timeout of one client operation")
	fs.DurationVar(&o.checkTimeout, "check-timeout", 5*time.Minute, "bound on the porcupine check")
	fs.DurationVar(&o.progress, "progress", 10*time.Second, "how often operation counts are printed (0: never)")
	fs.BoolVar(&o.printOps, "print-ops", false, "print every recorded register operation after the run")
	fs.StringVar(&o.out, "out", "", "directory for the visualization and seed on a violation (default: a new temp dir)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "aspen-chaos: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "aspen-chaos: %v\n", err)
		return exitUsage
	}
	var nemeses []chaos.Nemesis
	var procNemeses []chaos.ProcessNemesis
	var err error
	known := names(chaos.All)
	if o.process {
		known = names(chaos.ProcessAll)
		procNemeses, err = chaos.ProcessByName(strings.Split(o.nemesis, ",")...)
	} else {
		nemeses, err = chaos.ByName(strings.Split(o.nemesis, ",")...)
	}
	if err != nil {
		fmt.Fprintf(stderr, "aspen-chaos: --nemesis: %v (known: %s)\n", err, known)
		return exitUsage
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}

	var mu sync.Mutex // serialises lines from the workload's progress goroutine
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, format+"\n", args...)
	}
	mode := "in-process"
	if o.process {
		mode = "process"
	}
	logf("aspen-chaos: %d nodes (%s), %v of faults, nemeses %s, %d register clients, %d adders, %d timed, seed %d",
		o.nodes, mode, o.duration, o.nemesis, o.clients, o.adders, o.timed, o.seed)
	start := time.Now()
	rep, err := chaos.RunCampaign(chaos.Campaign{
		Nodes: o.nodes,
		Config: chaos.Config{
			Seed: o.seed, Duration: o.duration, Clients: o.clients, Adders: o.adders, Timed: o.timed, Keys: o.keys,
			OpTimeout: o.opTimeout, Hold: o.hold, Quiet: o.quiet, Nemeses: nemeses,
			Progress: o.progress, Logf: logf,
		},
		CheckTimeout:   o.checkTimeout,
		OutDir:         o.out,
		Process:        o.process,
		ProcessNemeses: procNemeses,
	})
	if o.printOps {
		for _, op := range rep.History {
			logf("op %s", chaos.DescribeOp(op))
		}
	}
	logf("--- summary (seed %d, %v) ---", o.seed, time.Since(start).Round(time.Second))
	fmt.Fprint(stdout, rep.Summary())
	switch {
	case err == nil:
		fmt.Fprintln(stdout, "verdict: PASS (0 violations, 0 lost or duplicated writes)")
		return exitOK
	case errors.Is(err, chaos.ErrViolation):
		fmt.Fprintf(stdout, "verdict: FAIL: %v\n", err)
		return exitViolation
	case errors.Is(err, chaos.ErrInconclusive):
		fmt.Fprintf(stdout, "verdict: INCONCLUSIVE: %v\n", err)
		return exitInconclusive
	default:
		fmt.Fprintf(stderr, "aspen-chaos: %v\n", err)
		return exitUsage
	}
}

func (o *options) validate() error {
	switch {
	case o.nodes < 1:
		return fmt.Errorf("--nodes %d: want at least 1", o.nodes)
	case o.duration <= 0:
		return fmt.Errorf("--duration %v: want a positive duration", o.duration)
	case o.clients < 1:
		return fmt.Errorf("--clients %d: want at least 1", o.clients)
	case o.adders < 0:
		return fmt.Errorf("--adders %d: want 0 or more", o.adders)
	case o.timed < 0:
		return fmt.Errorf("--timed %d: want 0 or more", o.timed)
	case o.keys < 1:
		return fmt.Errorf("--keys %d: want at least 1", o.keys)
	case o.hold <= 0 || o.quiet <= 0 || o.opTimeout <= 0:
		return errors.New("--hold, --quiet and --op-timeout must be positive")
	}
	return nil
}

func names[C any](all []chaos.NemesisOf[C]) string {
	var out []string
	for _, n := range all {
		out = append(out, n.Name)
	}
	return strings.Join(out, ",")
}
