package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func TestHistogramQuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	dists := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 0-10ms", func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) }},
		{"lognormal around 1ms", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(time.Millisecond))
		}},
		{"small integers", func() time.Duration { return time.Duration(rng.IntN(300)) }},
		{"seconds", func() time.Duration { return time.Duration(1+rng.IntN(100)) * time.Second }},
	}
	qs := []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 200000)
			for i := range vals {
				vals[i] = d.gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range qs {
				got, want := h.Quantile(q), exactQuantile(vals, q)
				if diff := math.Abs(float64(got - want)); diff > 0.01*float64(want)+1 {
					t.Errorf("Quantile(%v) = %v, want %v within 1%%", q, got, want)
				}
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			if h.Count() != uint64(len(vals)) {
				t.Errorf("Count = %d, want %d", h.Count(), len(vals))
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
	h.Record(-5)
	h.Record(3 * time.Millisecond)
	h.Record(time.Duration(math.MaxInt64))
	if got := h.Min(); got != 0 {
		t.Errorf("Min = %v, want 0 (negative clamps)", got)
	}
	if got := h.Quantile(1); got != time.Duration(math.MaxInt64) {
		t.Errorf("Quantile(1) = %v, want max int64", got)
	}
	if got := h.Quantile(0.5); math.Abs(float64(got-3*time.Millisecond)) > 0.01*float64(3*time.Millisecond) {
		t.Errorf("Quantile(0.5) = %v, want about 3ms", got)
	}
	for i := range numBuckets {
		lo, w := bucketRange(i)
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d: range [%d, %d) does not map back", i, lo, lo+w)
		}
		if i >= subCount && float64(w)/float64(lo) > 1.0/64 {
			t.Fatalf("bucket %d: width %d is more than 1/64 of %d", i, w, lo)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Errorf("merged histogram differs from one fed all values")
	}
}

func TestRecorderCoarsensLongRuns(t *testing.T) {
	start := time.Unix(0, 0)
	r := NewRecorder(start, 10*time.Millisecond)
	for i := range 1000 { // 10s at 10ms intervals: 1000 intervals > maxIntervals
		r.Record(start.Add(time.Duration(i)*10*time.Millisecond+time.Millisecond), time.Millisecond)
	}
	h, points, _, _ := r.snapshot()
	if len(points) > maxIntervals {
		t.Errorf("%d points, want at most %d", len(points), maxIntervals)
	}
	var n uint64
	for _, p := range points {
		n += p.Ops
	}
	if n != 1000 || h.Count() != 1000 {
		t.Errorf("timeline holds %d ops and total %d, want 1000", n, h.Count())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xfffff) * 100)
	}
}

func BenchmarkRecorderRecordParallel(b *testing.B) {
	r := NewRecorder(time.Now(), time.Second)
	b.RunParallel(func(pb *testing.PB) {
		now := time.Now()
		for pb.Next() {
			r.Record(now, time.Millisecond)
		}
	})
}
