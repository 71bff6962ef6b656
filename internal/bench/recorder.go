package bench

import (
	"sync"
	"time"
)

// maxIntervals bounds the number of timeline intervals a Recorder keeps; when
// a run outlasts them, neighbouring intervals are merged and the interval
// doubles, so memory stays fixed (about 7 MiB) however long the run.
const maxIntervals = 240

// Recorder collects the latencies of one run from many goroutines: the
// whole-run histogram and one histogram per interval of the timeline. It is
// safe for concurrent use.
type Recorder struct {
	start time.Time

	mu        sync.Mutex // guards the fields below
	total     Histogram
	interval  time.Duration
	intervals []*Histogram // intervals[i] covers [start+i*interval, start+(i+1)*interval)
	errors    uint64
	firstErr  error
}

// NewRecorder returns a Recorder whose timeline starts at start and is cut
// in intervals of the given length (at least 1ms).
func NewRecorder(start time.Time, interval time.Duration) *Recorder {
	return &Recorder{start: start, interval: max(interval, time.Millisecond)}
}

// Record adds one successful operation that completed at done after taking
// latency.
func (r *Recorder) Record(done time.Time, latency time.Duration) {
	i := int(done.Sub(r.start) / r.interval)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total.Record(latency)
	for i >= maxIntervals {
		r.coarsen()
		i = int(done.Sub(r.start) / r.interval)
	}
	i = max(i, 0)
	for len(r.intervals) <= i {
		r.intervals = append(r.intervals, nil)
	}
	if r.intervals[i] == nil {
		r.intervals[i] = new(Histogram)
	}
	r.intervals[i].Record(latency)
}

// RecordError counts one failed operation and keeps the first error.
func (r *Recorder) RecordError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
	if r.firstErr == nil {
		r.firstErr = err
	}
}

// coarsen doubles the interval, merging neighbours. r.mu is held.
func (r *Recorder) coarsen() {
	merged := make([]*Histogram, (len(r.intervals)+1)/2)
	for i, h := range r.intervals {
		if h == nil {
			continue
		}
		if merged[i/2] == nil {
			merged[i/2] = h
		} else {
			merged[i/2].Merge(h)
		}
	}
	r.intervals = merged
	r.interval *= 2
}

// Point summarizes one interval of the timeline.
type Point struct {
	// At is the end of the interval, in seconds since the start of the run.
	At    float64 `json:"at_s"`
	Ops   uint64  `json:"ops"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// snapshot returns a copy of the whole-run histogram, the timeline, the
// error count and the first error.
func (r *Recorder) snapshot() (Histogram, []Point, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	points := make([]Point, len(r.intervals))
	for i, h := range r.intervals {
		p := Point{At: (time.Duration(i+1) * r.interval).Seconds()}
		if h != nil {
			p.Ops = h.Count()
			p.P50Ms = ms(h.Quantile(0.50))
			p.P99Ms = ms(h.Quantile(0.99))
			p.MaxMs = ms(h.Max())
		}
		points[i] = p
	}
	return r.total, points, r.errors, r.firstErr
}

// ms converts a duration to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
