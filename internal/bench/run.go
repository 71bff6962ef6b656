package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Run runs one workload over conns (at least one; client i uses
// conns[i%len(conns)]) and returns its result. It preloads the key space
// first when the workload reads it. It stops early, returning what it
// measured, when ctx ends; it fails only when nothing could be measured.
func Run(ctx context.Context, cfg Config, conns []Conn) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(conns) == 0 {
		return nil, errors.New("bench: no connection")
	}
	if err := Preload(ctx, cfg, conns); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, conns: conns}
	if cfg.Warmup > 0 {
		r.phase(ctx, cfg.Warmup, 0, NewRecorder(time.Now(), time.Second))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	start := time.Now()
	rec := NewRecorder(start, timelineInterval(cfg))
	r.phase(ctx, cfg.Duration, cfg.Ops, rec)
	elapsed := time.Since(start)
	res := newResult(cfg, rec, elapsed, r.conflicts.Load())
	if res.Ops == 0 && res.Errors > 0 {
		return res, fmt.Errorf("bench: every operation failed (%d errors); first: %w", res.Errors, rec.firstErr)
	}
	return res, nil
}

// timelineInterval aims at about 100 points over the run.
func timelineInterval(cfg Config) time.Duration {
	if cfg.Duration > 0 {
		return max(cfg.Duration/100, 10*time.Millisecond)
	}
	return 100 * time.Millisecond
}

// Preload writes the keys a workload reads: the whole key space for get,
// mixed and scan, the hot key for cas. Put and batch need nothing.
func Preload(ctx context.Context, cfg Config, conns []Conn) error {
	cfg = cfg.withDefaults()
	switch cfg.Workload {
	case CAS:
		if err := conns[0].Put(ctx, cfg.hotKey(), casInitial); err != nil {
			return fmt.Errorf("bench: preloading the hot key: %w", err)
		}
		return nil
	case Get, Mixed, Scan:
	default:
		return nil
	}
	value := makeValue(cfg.ValueSize, rand.New(rand.NewPCG(1, 2)))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 4*len(conns))
	for w := range errs {
		wg.Go(func() {
			conn := conns[w%len(conns)]
			for {
				first := int(next.Add(BatchSize)) - BatchSize
				if first >= cfg.Keys || ctx.Err() != nil {
					return
				}
				n := min(BatchSize, cfg.Keys-first)
				keys, values := make([][]byte, n), make([][]byte, n)
				for j := range n {
					keys[j], values[j] = cfg.Key(first+j), value
				}
				if err := conn.BatchPut(ctx, keys, values); err != nil {
					errs[w] = fmt.Errorf("bench: preloading keys %d..%d: %w", first, first+n-1, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// casInitial is the value the hot key starts with.
var casInitial = []byte("0")

// runner runs the phases of one Run.
type runner struct {
	cfg       Config
	conns     []Conn
	conflicts atomic.Uint64 // failed CAS comparisons of the measured phase
}

// phase runs the clients until d has passed (when d > 0) or ops operations
// were issued (when ops > 0), whichever is first, or ctx ends.
func (r *runner) phase(ctx context.Context, d time.Duration, ops int64, rec *Recorder) {
	r.conflicts.Store(0)
	start := time.Now()
	var stop atomic.Bool
	if d > 0 {
		t := time.AfterFunc(d, func() { stop.Store(true) })
		defer t.Stop()
	}
	var issued atomic.Int64
	var wg sync.WaitGroup
	for i := range r.cfg.Clients {
		w := &worker{
			r:    r,
			id:   i,
			conn: r.conns[i%len(r.conns)],
			rng:  rand.New(rand.NewPCG(uint64(i)+1, uint64(start.UnixNano()))),
		}
		w.value = makeValue(r.cfg.ValueSize, w.rng)
		w.last = casInitial
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				n := issued.Add(1)
				if ops > 0 && n > ops {
					return
				}
				due := time.Now()
				if r.cfg.Rate > 0 {
					due = start.Add(time.Duration(float64(n-1) / r.cfg.Rate * float64(time.Second)))
					if !sleepUntil(ctx, due) || stop.Load() {
						return
					}
				}
				err := w.op(ctx)
				done := time.Now()
				switch {
				case err == nil:
					rec.Record(done, done.Sub(due))
				case ctx.Err() == nil:
					rec.RecordError(err)
				}
			}
		})
	}
	wg.Wait()
}

// sleepUntil waits for t; it reports false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// makeValue returns n random printable bytes.
func makeValue(n int, rng *rand.Rand) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return b
}

// worker is the state of one client goroutine.
type worker struct {
	r     *runner
	id    int
	conn  Conn
	rng   *rand.Rand
	value []byte
	last  []byte // cas: the hot key's value as last seen
	seq   int
}

// op runs one operation of the workload.
func (w *worker) op(ctx context.Context) error {
	cfg := &w.r.cfg
	switch cfg.Workload {
	case Put:
		return w.conn.Put(ctx, cfg.Key(w.rng.IntN(cfg.Keys)), w.value)
	case Get:
		return w.conn.Get(ctx, cfg.Key(w.rng.IntN(cfg.Keys)), cfg.Stale)
	case Mixed:
		if w.rng.Float64() < cfg.ReadRatio {
			return w.conn.Get(ctx, cfg.Key(w.rng.IntN(cfg.Keys)), cfg.Stale)
		}
		return w.conn.Put(ctx, cfg.Key(w.rng.IntN(cfg.Keys)), w.value)
	case CAS:
		w.seq++
		next := fmt.Appendf(nil, "%d-%d", w.id, w.seq)
		ok, actual, err := w.conn.CAS(ctx, cfg.hotKey(), w.last, next)
		switch {
		case err != nil:
			return err
		case ok:
			w.last = next
		default:
			w.last = actual
			w.r.conflicts.Add(1)
		}
		return nil
	case Scan:
		k := cfg.Key(w.rng.IntN(cfg.Keys))
		_, err := w.conn.Scan(ctx, k[:len(k)-2], BatchSize, cfg.Stale)
		return err
	case Batch:
		n := min(BatchSize, cfg.Keys)
		first := w.rng.IntN(cfg.Keys)
		keys, values := make([][]byte, n), make([][]byte, n)
		for j := range n {
			keys[j], values[j] = cfg.Key((first+j)%cfg.Keys), w.value
		}
		return w.conn.BatchPut(ctx, keys, values)
	}
	return fmt.Errorf("bench: unknown workload %q", cfg.Workload)
}
