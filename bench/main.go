// Command bench runs the same workloads against an Aspen cluster and an
// etcd cluster on 127.0.0.1, both in this process, and prints one table
// comparing them (ratio > 1: Aspen is better). It is a separate module so
// that etcd's dependencies never enter Aspen's go.mod.
//
//	cd bench && go run . [--quick] [--json FILE] [--sizes 3,1] [--cpuprofile-dir DIR] [--trace-dir DIR]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/aspen-dev/aspen/internal/bench"
)

// options are the command-line flags.
type options struct {
	quick      bool
	jsonFile   string
	sizes      []int
	duration   time.Duration
	warmup     time.Duration
	profileDir string
	traceDir   string          // write an execution trace per workload here
	only       string          // run only this system ("aspen", "etcd"), for profiling
	workloads  map[string]bool // run only these workloads (nil = all)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rows, err := compare(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 3
	}
	writeTable(stdout, rows)
	if o.jsonFile != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 3
		}
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	sizes := fs.String("sizes", "3,1", "cluster sizes to compare, comma-separated")
	fs.BoolVar(&o.quick, "quick", false, "short runs (3s per workload): the whole comparison in under 5 minutes on 2 cores")
	fs.StringVar(&o.jsonFile, "json", "", "also write the table as JSON rows to this file")
	fs.DurationVar(&o.duration, "duration", 0, "measured time per workload (default 10s, 3s with --quick)")
	fs.DurationVar(&o.warmup, "warmup", 0, "unmeasured time before each workload (default 2s, 1s with --quick)")
	fs.StringVar(&o.profileDir, "cpuprofile-dir", "", "write a CPU profile of each system, size and workload (warmup included) to this directory, and allocation profiles taken before and after it (go tool pprof -sample_index=alloc_space -base NAME.allocs-before.pprof NAME.allocs.pprof)")
	fs.StringVar(&o.traceDir, "trace-dir", "", "write a runtime execution trace of each system, size and workload (warmup included; use a short --duration) to this directory, for go tool trace")
	fs.StringVar(&o.only, "only", "", "run only aspen or only etcd (the other column stays empty)")
	workloads := fs.String("workloads", "", "run only these workloads, comma-separated (put1,put16,put256,getlin64,getstale64,cas16,batch16); rows of others stay empty")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 7 {
			return nil, fmt.Errorf("--sizes: %q is not a cluster size between 1 and 7", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if *workloads != "" {
		o.workloads = map[string]bool{}
		known := map[string]bool{}
		for _, s := range specs() {
			known[s.name] = true
		}
		for _, w := range strings.Split(*workloads, ",") {
			w = strings.TrimSpace(w)
			if !known[w] {
				return nil, fmt.Errorf("--workloads: unknown workload %q", w)
			}
			o.workloads[w] = true
		}
	}
	switch o.only {
	case "", "aspen", "etcd":
	default:
		return nil, fmt.Errorf("--only: want aspen or etcd, not %q", o.only)
	}
	if o.duration == 0 {
		o.duration = map[bool]time.Duration{false: 10 * time.Second, true: 3 * time.Second}[o.quick]
	}
	if o.warmup == 0 {
		o.warmup = map[bool]time.Duration{false: 2 * time.Second, true: time.Second}[o.quick]
	}
	return o, nil
}

// cluster is a running system under test.
type cluster interface {
	dial(n int) ([]bench.Conn, func(), error)
	close()
}

// starters start each system: name → start(ctx, dir, size).
var starters = []struct {
	name  string
	start func(context.Context, string, int) (cluster, error)
}{
	{"aspen", func(ctx context.Context, dir string, n int) (cluster, error) { return startAspen(ctx, dir, n) }},
	{"etcd", func(ctx context.Context, dir string, n int) (cluster, error) { return startEtcd(ctx, dir, n) }},
}

// compare runs every spec on every system and size and builds the rows.
func compare(ctx context.Context, o *options, log io.Writer) ([]row, error) {
	fmt.Fprintf(log, "GOMAXPROCS %d, %s per workload after %s warmup, sizes %v\n", runtime.GOMAXPROCS(0), o.duration, o.warmup, o.sizes)
	var rows []row
	for _, size := range o.sizes {
		results := map[string]map[string]*bench.Result{} // system → spec → result
		for _, s := range starters {
			if o.only != "" && o.only != s.name {
				continue
			}
			res, err := runSystem(ctx, o, s.name, s.start, size, log)
			if err != nil {
				return nil, fmt.Errorf("%s, %d node(s): %w", s.name, size, err)
			}
			results[s.name] = res
		}
		prefix := fmt.Sprintf("%d-node ", size)
		for _, d := range rowDefs {
			rows = append(rows, makeRow(prefix, d, results["aspen"][d.spec], results["etcd"][d.spec]))
		}
	}
	return rows, nil
}

// runSystem starts one system of one size in a fresh directory, runs every
// spec against it, and stops it.
func runSystem(ctx context.Context, o *options, name string, start func(context.Context, string, int) (cluster, error), size int, log io.Writer) (map[string]*bench.Result, error) {
	dir, err := os.MkdirTemp("", "aspen-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	c, err := start(ctx, dir, size)
	if err != nil {
		return nil, err
	}
	defer c.close()
	fmt.Fprintf(log, "%s: %d-node cluster ready in %s (data in %s)\n", name, size, time.Since(t0).Round(time.Millisecond), dir)
	out := map[string]*bench.Result{}
	for _, s := range specs() {
		if o.workloads != nil && !o.workloads[s.name] {
			continue
		}
		cfg := s.cfg
		cfg.Duration, cfg.Warmup = o.duration, o.warmup
		conns, closeConns, err := c.dial(cfg.Connections)
		if err != nil {
			return nil, err
		}
		stopProfile, err := startProfile(o.profileDir, o.traceDir, fmt.Sprintf("%s-%d-%s", name, size, s.name))
		if err != nil {
			closeConns()
			return nil, err
		}
		res, err := bench.Run(ctx, cfg, conns)
		stopProfile()
		closeConns()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fmt.Fprintf(log, "  %-6s %d-node %-11s %9.0f ops/s  p50 %7.3f ms  p99 %7.3f ms  errors %d\n",
			name, size, s.name, res.Throughput, res.Latency.P50, res.Latency.P99, res.Errors)
		if res.Errors > 0 {
			fmt.Fprintf(log, "    first error: %s\n", res.FirstErr)
		}
		out[s.name] = res
	}
	return out, nil
}

// startProfile starts a CPU profile written to profileDir/NAME.pprof (with
// allocation profiles NAME.allocs-before.pprof and NAME.allocs.pprof) and
// an execution trace written to traceDir/NAME.trace; an empty directory
// skips either.
func startProfile(profileDir, traceDir, name string) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for _, p := range []struct {
		dir, ext    string
		start       func(io.Writer) error
		stopWriting func()
	}{
		{profileDir, ".pprof", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{traceDir, ".trace", trace.Start, trace.Stop},
	} {
		if p.dir == "" {
			continue
		}
		f, err := os.Create(filepath.Join(p.dir, name+p.ext))
		if err != nil {
			stop()
			return nil, err
		}
		if err := p.start(f); err != nil {
			f.Close()
			stop()
			return nil, err
		}
		stops = append(stops, func() {
			p.stopWriting()
			f.Close()
		})
	}
	if profileDir != "" {
		// the allocation profile counts from the start of the process:
		// the one taken before the workload is the base to subtract
		if err := writeAllocs(filepath.Join(profileDir, name+".allocs-before.pprof")); err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, func() {
			_ = writeAllocs(filepath.Join(profileDir, name+".allocs.pprof"))
		})
	}
	return stop, nil
}

// writeAllocs writes the allocation profile (cumulative since the process
// started) to path.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
}

// writeTable prints the rows aligned: names left, figures right.
func writeTable(w io.Writer, rows []row) {
	width := len("row")
	for _, r := range rows {
		width = max(width, len(r.Row))
	}
	fmt.Fprintf(w, "%-*s  %10s  %10s  %-6s  %6s\n", width, "row", "aspen", "etcd", "unit", "ratio")
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %10s  %10s  %-6s  %6.2f\n", width, r.Row, figure(r.Aspen, r.Unit), figure(r.Etcd, r.Unit), r.Unit, r.Ratio)
	}
}

// figure formats a value for the table.
func figure(v float64, unit string) string {
	if unit == "ms" {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
