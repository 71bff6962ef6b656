package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: values below 2^subBits nanoseconds each have their own
// bucket; above, every power of two is split into 2^(subBits-1) equal
// buckets. A bucket's width is at most 1/64 of its lower bound, and a
// quantile is reported as the middle of its bucket, so it is within 1/128
// (0.8%) of the recorded value.
const (
	subBits    = 7
	subCount   = 1 << subBits // 128
	halfCount  = subCount / 2 // 64 buckets per power of two
	maxShift   = 63 - subBits // largest shift of a positive int64
	numBuckets = (maxShift+1)*halfCount + halfCount
)

// Histogram records durations in fixed memory (about 29 KiB) with log-linear
// buckets accurate to 1%. It is not safe for concurrent use; Recorder wraps
// it for that. The zero value is empty and ready.
type Histogram struct {
	counts   [numBuckets]uint64
	total    uint64
	sum      float64 // nanoseconds, for the mean
	min, max int64   // nanoseconds, exact
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits
	return shift*halfCount + int(v>>shift)
}

// bucketRange returns the lowest value of bucket i and the bucket's width.
func bucketRange(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := i/halfCount - 1
	sub := int64(i - shift*halfCount)
	return sub << shift, 1 << shift
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

// Reset empties the histogram.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Quantile returns the value below or at which a fraction q (0..1) of the
// recorded values lie, within 1%; the result is clamped to [Min, Max], so
// Quantile(0) is Min and Quantile(1) is Max. It is 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q <= 0 || math.IsNaN(q) {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	// rank is the 1-based position of the value wanted, as in a sorted list.
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + w/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// bins calls f for every non-empty bucket, in ascending order, with its
// bounds and count.
func (h *Histogram) bins(f func(lo, hi int64, count uint64)) {
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo, w := bucketRange(i)
		f(lo, lo+w, c)
	}
}
