package loadtest

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power-of-two range is split
// into 2^subBits linear buckets, so a recorded value is known to within
// 1/2^subBits (0.8 %) of itself — the HDR histogram's log-linear layout.
const subBits = 7

const (
	subCount = 1 << subBits
	// maxExp bounds the values: 2^40 ns is about 18 minutes.
	maxExp     = 40
	numBuckets = (maxExp - subBits + 1) * subCount
)

// Histogram records durations in nanoseconds. It is not safe for concurrent
// use: each worker keeps its own and Merge combines them.
type Histogram struct {
	counts [numBuckets]int64
	n      int64
	sum    int64
	min    int64
	max    int64
}

// bucketOf maps v >= 0 to its bucket index.
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	msb := bits.Len64(uint64(v)) - 1
	if msb >= maxExp {
		return numBuckets - 1
	}
	shift := msb - subBits
	return (shift+1)<<subBits + int(v>>shift) - subCount
}

// bucketHigh is the largest value that falls into bucket i.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := i>>subBits - 1
	low := int64(i&(subCount-1)+subCount) << shift
	return low + 1<<shift - 1
}

// Record adds one value.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of values recorded.
func (h *Histogram) Count() int64 { return h.n }

// Max returns the largest value recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the average value.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the q-quantile (0 < q <= 1): the value of rank ceil(q·n)
// in sorted order, overestimated by at most 1/2^subBits of itself and never
// above the maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	rank = max(rank, 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketHigh(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
