package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one run. Its JSON form is the contract of
// `aspen-cli bench --json`.
type Result struct {
	Workload    Workload `json:"workload"`
	Stale       bool     `json:"stale,omitempty"`
	Clients     int      `json:"clients"`
	Connections int      `json:"connections"`
	ValueSize   int      `json:"value_size"`
	Keys        int      `json:"keys"`
	ReadRatio   float64  `json:"read_ratio,omitempty"` // mixed only
	TargetRate  float64  `json:"target_rate,omitempty"`

	Ops       uint64  `json:"ops"`    // successful operations
	Errors    uint64  `json:"errors"` // failed operations
	FirstErr  string  `json:"first_error,omitempty"`
	Conflicts uint64  `json:"conflicts,omitempty"` // cas: failed comparisons (included in ops)
	ElapsedS  float64 `json:"elapsed_s"`
	// Throughput is successful operations per second; for batch, KeysPerSec
	// counts the keys written.
	Throughput float64 `json:"ops_per_sec"`
	KeysPerSec float64 `json:"keys_per_sec,omitempty"`

	Latency  Latency `json:"latency_ms"`
	Timeline []Point `json:"timeline"`

	hist Histogram // whole run, for the distribution plot
}

// Latency holds latency figures in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func newResult(cfg Config, rec *Recorder, elapsed time.Duration, conflicts uint64) *Result {
	h, points, errs, firstErr := rec.snapshot()
	r := &Result{
		Workload:    cfg.Workload,
		Clients:     cfg.Clients,
		Connections: cfg.Connections,
		ValueSize:   cfg.ValueSize,
		Keys:        cfg.Keys,
		TargetRate:  cfg.Rate,
		Ops:         h.Count(),
		Errors:      errs,
		Conflicts:   conflicts,
		ElapsedS:    elapsed.Seconds(),
		Timeline:    points,
		hist:        h,
	}
	switch cfg.Workload {
	case Get, Scan:
		r.Stale = cfg.Stale
	case Mixed:
		r.Stale = cfg.Stale
		r.ReadRatio = cfg.ReadRatio
	}
	if firstErr != nil {
		r.FirstErr = firstErr.Error()
	}
	if elapsed > 0 {
		r.Throughput = float64(r.Ops) / elapsed.Seconds()
		if cfg.Workload == Batch {
			r.KeysPerSec = r.Throughput * float64(min(BatchSize, cfg.Keys))
		}
	}
	r.Latency = Latency{
		Min:  ms(h.Min()),
		Mean: ms(h.Mean()),
		P50:  ms(h.Quantile(0.50)),
		P90:  ms(h.Quantile(0.90)),
		P99:  ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)),
		Max:  ms(h.Max()),
	}
	return r
}

// Name describes the run in a few words, e.g. "get (stale), 64 clients".
func (r *Result) Name() string {
	s := string(r.Workload)
	if r.Stale {
		s += " (stale)"
	}
	if r.Workload == Mixed {
		s += fmt.Sprintf(" (%.0f%% reads)", r.ReadRatio*100)
	}
	return fmt.Sprintf("%s, %d clients, %d connections", s, r.Clients, r.Connections)
}

// WriteTable writes the result as a small human-readable table.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\t%s\n", r.Name())
	fmt.Fprintf(tw, "operations\t%d in %.2fs (%d errors)\n", r.Ops, r.ElapsedS, r.Errors)
	fmt.Fprintf(tw, "throughput\t%.0f ops/s\n", r.Throughput)
	if r.KeysPerSec > 0 {
		fmt.Fprintf(tw, "keys written\t%.0f keys/s\n", r.KeysPerSec)
	}
	if r.Workload == CAS && r.Ops > 0 {
		fmt.Fprintf(tw, "cas conflicts\t%d (%.1f%%)\n", r.Conflicts, 100*float64(r.Conflicts)/float64(r.Ops))
	}
	l := r.Latency
	fmt.Fprintf(tw, "latency ms\tp50 %s\tp90 %s\tp99 %s\tp99.9 %s\tmax %s\n",
		fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
	if r.FirstErr != "" {
		fmt.Fprintf(tw, "first error\t%s\n", r.FirstErr)
	}
	return tw.Flush()
}

// fmtMs formats milliseconds with three significant digits or so.
func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
