package loadtest

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantilesMatchSortedSlice(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  func(r *rand.Rand) int64
	}{
		{"small exact", func(r *rand.Rand) int64 { return r.Int64N(128) }},
		{"uniform to 10ms", func(r *rand.Rand) int64 { return r.Int64N(int64(10 * time.Millisecond)) }},
		{"long tail", func(r *rand.Rand) int64 { return int64(r.ExpFloat64() * float64(200*time.Microsecond)) }},
		{"constant", func(*rand.Rand) int64 { return 123_456 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var h Histogram
			vals := make([]int64, 20_000)
			for i := range vals {
				vals[i] = tc.gen(r)
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				rank := int(q * float64(len(vals)))
				if float64(rank) < q*float64(len(vals)) {
					rank++
				}
				want := vals[rank-1]
				got := int64(h.Quantile(q))
				if got < want || float64(got-want) > float64(want)/subCount+1 {
					t.Errorf("q%.3f = %d, sorted slice says %d (tolerance 1/%d)", q, got, want, subCount)
				}
			}
			if int64(h.Max()) != vals[len(vals)-1] || h.Count() != int64(len(vals)) {
				t.Errorf("max %d count %d, want %d %d", h.Max(), h.Count(), vals[len(vals)-1], len(vals))
			}
		})
	}
}

func TestHistogramMergeEqualsOne(t *testing.T) {
	var a, b, all Histogram
	for i := int64(0); i < 5000; i++ {
		v := time.Duration(i * 997)
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatal("merging two halves differs from recording everything in one")
	}
}

func TestBucketBoundsAreContiguous(t *testing.T) {
	for v := int64(0); v < 1<<20; v++ {
		i := bucketOf(v)
		if bucketHigh(i) < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Fatalf("value %d in bucket %d [.., %d], previous ends at %d", v, i, bucketHigh(i), bucketHigh(i-1))
		}
	}
	if bucketOf(1<<62) != numBuckets-1 {
		t.Fatal("huge values must land in the last bucket")
	}
}
