package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/bench"
)

// benchOptions are the flags of aspen-cli bench.
type benchOptions struct {
	clients     int
	connections int
	valueSize   int
	keys        int
	duration    time.Duration
	ops         int64
	rate        float64
	readRatio   float64
	warmup      time.Duration
	svg         string
	consistency consistencyValue
}

// benchResult is the result of aspen-cli bench; its JSON form is
// bench.Result's.
type benchResult struct{ *bench.Result }

func (r benchResult) printHuman(out, _ io.Writer) error { return r.WriteTable(out) }

const benchLong = `Run a load against the cluster and report throughput and latency
percentiles (p50, p90, p99, p99.9, max).

Workloads:
  put    write random keys of the key space
  get    read random keys (the key space is written first); --consistency
         stale reads the answering node's replica
  mixed  get with probability --read-ratio, else put
  cas    compare-and-swap one hot key from many clients, each from the last
         value it saw (conflicts are counted, not errors)
  scan   read up to 100 keys sharing a random prefix
  batch  write 100 keys in one atomic batch (throughput also in keys/s)

--clients goroutines share --connections client connections round-robin.
Without --rate each client sends its next operation when the last one
answers; with --rate the whole load is paced at that many operations per
second and latency counts from when each operation was due. The run stops
after --duration or --ops, whichever comes first, or on Ctrl-C (the figures
so far are still printed).

Keys are "bench/00000000" ... within --keys: the command writes into the
cluster it measures; do not point it at data you care about under bench/.

--svg FILE draws latency over time and the latency distribution. With
--json the result, with a latency timeline, is one JSON document.`

func (a *app) newBenchCmd() *cobra.Command {
	var o benchOptions
	names := make([]string, len(bench.Workloads))
	for i, w := range bench.Workloads {
		names[i] = string(w)
	}
	d := bench.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "bench WORKLOAD",
		Short: "Measure throughput and latency (" + strings.Join(names, ", ") + ")",
		Long:  benchLong,
		Example: `  aspen-cli bench put --clients 64 --duration 30s
  aspen-cli bench get --consistency stale --clients 64 --connections 4
  aspen-cli bench mixed --read-ratio 0.95 --rate 2000 --svg mixed.svg
  aspen-cli bench cas --clients 16 --ops 10000 --json`,
		Args:      exactArgs(1, "one WORKLOAD ("+strings.Join(names, ", ")+")"),
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.bench(cmd, bench.Workload(args[0]), &o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.clients, "clients", d.Clients, "concurrent clients (goroutines)")
	f.IntVar(&o.connections, "connections", d.Connections, "client connections, shared round-robin by the clients")
	f.IntVar(&o.valueSize, "value-size", d.ValueSize, "bytes per written value")
	f.IntVar(&o.keys, "keys", d.Keys, "size of the key space")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (with --ops alone: no time limit)")
	f.Int64Var(&o.ops, "ops", 0, "stop after this many operations (0: no limit)")
	f.Float64Var(&o.rate, "rate", 0, "target operations per second over all clients (0: as fast as possible)")
	f.Float64Var(&o.readRatio, "read-ratio", d.ReadRatio, "mixed: fraction of operations that are gets, 0..1")
	f.DurationVar(&o.warmup, "warmup", 0, "run this long first without measuring")
	f.StringVar(&o.svg, "svg", "", "write an SVG plot of the latencies to this file")
	addConsistencyFlag(cmd, &o.consistency)
	return cmd
}

func (a *app) bench(cmd *cobra.Command, w bench.Workload, o *benchOptions) error {
	cfg := bench.DefaultConfig()
	cfg.Workload = w
	cfg.Clients = o.clients
	cfg.Connections = o.connections
	cfg.ValueSize = o.valueSize
	cfg.Keys = o.keys
	cfg.Duration = o.duration
	if cmd.Flags().Changed("ops") && !cmd.Flags().Changed("duration") {
		cfg.Duration = 0
	}
	cfg.Ops = o.ops
	cfg.Rate = o.rate
	cfg.ReadRatio = o.readRatio
	cfg.Warmup = o.warmup
	cfg.Stale = api.Consistency(o.consistency) == api.Stale
	if err := cfg.Validate(); err != nil {
		return &usageError{msg: err.Error(), cmd: cmd}
	}
	if cfg.Connections > cfg.Clients {
		return &usageError{msg: "--connections cannot exceed --clients", cmd: cmd}
	}

	conns := make([]bench.Conn, 0, cfg.Connections)
	for range cfg.Connections {
		c, closeFn, err := a.connect()
		if err != nil {
			return err
		}
		defer closeFn()
		conns = append(conns, bench.AspenConn(c))
	}
	limit := cfg.Duration.String()
	if cfg.Ops > 0 {
		limit = fmt.Sprintf("%d operations", cfg.Ops)
	}
	fmt.Fprintf(a.notes(), "running %s for %s with %d clients on %d connections...\n", w, limit, cfg.Clients, cfg.Connections)

	res, err := bench.Run(cmd.Context(), cfg, conns)
	if err != nil {
		return err
	}
	if o.svg != "" {
		if err := writeSVGFile(o.svg, res); err != nil {
			return &localError{err: err}
		}
		fmt.Fprintf(a.notes(), "wrote %s\n", o.svg)
	}
	return a.printer().print(benchResult{res})
}

// writeSVGFile writes the plot of res to path.
func writeSVGFile(path string, res *bench.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot write --svg: %w", err)
	}
	if err := bench.WriteSVG(f, res); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
