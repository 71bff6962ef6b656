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
	json         bool
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
	fs.Usage = func() {
		fmt.Fprint(stderr, `aspen-chaos: a fault-injection campaign against an Aspen cluster.

Register clients (get/put/CAS/delete), adders (atomic adds to one counter)
and timed clients (TTL keys, a fenced lock) run on every node while the
chosen nemeses inject faults; then the history is checked with porcupine,
the counter for lost or doubly applied adds, and the timed rules.

Usage:
  aspen-chaos [flags]
  aspen-chaos --nodes 5 --duration 10m --nemesis all --seed 3141
  aspen-chaos --process --nodes 5 --duration 3m --nemesis all
  aspen-chaos --nemesis clock-jump,membership --duration 1m --json

Exit status: 0 pass, 1 violation (evidence in --out), 2 usage or harness
failure, 3 linearizability check inconclusive.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.nodes, "nodes", 5, "cluster size")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long faults are injected")
	fs.StringVar(&o.nemesis, "nemesis", "all", "comma-separated nemeses, or all; in process: "+names(chaos.All)+"; with --process: "+names(chaos.ProcessAll))
	fs.BoolVar(&o.process, "process", false, "run real aspen-node processes (built with go build) and kill -9 / SIGSTOP them, instead of an in-process cluster")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object on stdout (progress lines go to stderr)")
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

	logOut := stdout
	if o.json {
		logOut = stderr
	}
	var mu sync.Mutex // serialises lines from the workload's progress goroutine
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(logOut, format+"\n", args...)
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
	code, verdict := exitOK, "PASS"
	switch {
	case err == nil:
	case errors.Is(err, chaos.ErrViolation):
		code, verdict = exitViolation, "FAIL"
	case errors.Is(err, chaos.ErrInconclusive):
		code, verdict = exitInconclusive, "INCONCLUSIVE"
	default:
		fmt.Fprintf(stderr, "aspen-chaos: %v\n", err)
		return exitUsage
	}
	elapsed := time.Since(start).Round(time.Second)
	if o.json {
		if jerr := writeJSON(stdout, &o, mode, elapsed, rep, verdict, err); jerr != nil {
			fmt.Fprintf(stderr, "aspen-chaos: %v\n", jerr)
			return exitUsage
		}
		return code
	}
	logf("--- summary (seed %d, %v) ---", o.seed, elapsed)
	fmt.Fprint(stdout, rep.Summary())
	if err == nil {
		fmt.Fprintln(stdout, "verdict: PASS (0 violations, 0 lost or duplicated writes)")
	} else {
		fmt.Fprintf(stdout, "verdict: %s: %v\n", verdict, err)
	}
	return code
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
