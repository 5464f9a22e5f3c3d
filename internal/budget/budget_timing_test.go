package budget

import (
	"context"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

var sinkInt int64

func benchTree() *tree {
	return newTree(nil, []control.Policy{pol(MaxLimitMicros, control.Monthly, false), pol(MaxLimitMicros, control.Daily, true)},
		[]control.Policy{pol(MaxLimitMicros, control.Hourly, true)}, nil)
}

// BenchmarkTakeSettle is the gateway's hot path: the local lease answers,
// Redis is asked once per lease (leaseSize / estimate requests).
func BenchmarkTakeSettle(b *testing.B) {
	s := newStore(b)
	tr := benchTree()
	l := newLeaser(b, s, tr, LeaserOptions{LeaseSize: 1_000_000})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var sum int64
		for pb.Next() {
			tk, st := l.Take(tr.child, 100)
			if st.Code != OK {
				b.Errorf("take: %+v", st)
				return
			}
			sum += l.Settle(tk, 90)
		}
		sinkInt += sum
	})
	b.StopTimer()
	b.ReportMetric(float64(l.RoundTrips.Load())/float64(max(l.Takes.Load(), 1)), "redis-rtt/op")
}

// BenchmarkTakeSettleNaive is the twin that reserves and releases in Redis
// for every request: the baseline the lease is measured against.
func BenchmarkTakeSettleNaive(b *testing.B) {
	s := newStore(b)
	tr := benchTree()
	ctx := context.Background()
	chain := tr.chain(tr.child)
	var trips int64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		g, err := s.Reserve(ctx, &ReserveRequest{Root: tr.root.ID, Chain: chain, Owner: "naive", Requested: 100,
			MinGrant: 100, LeaseTTL: time.Minute, Now: time.Now()})
		if err != nil || g.Granted != 100 {
			b.Fatalf("reserve: %+v %v", g, err)
		}
		if _, err := s.Release(ctx, tr.root.ID, tr.child.ID, "naive", 10, time.Minute); err != nil {
			b.Fatal(err)
		}
		trips += 2
	}
	b.StopTimer()
	b.ReportMetric(float64(trips)/float64(b.N), "redis-rtt/op")
}

// BenchmarkApplyBatch is the MetricsAggregator's cost per spend, in
// batches of 256 spends of one tree (agent + 2 ancestors, 5 granularities).
func BenchmarkApplyBatch(b *testing.B) {
	s := newStore(b)
	tr := benchTree()
	ctx := context.Background()
	batch := make([]Spend, 256)
	var off int64
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range batch {
			off++
			batch[i] = tr.spend(tr.child, 90, 0, "", now, off)
		}
		if err := s.ApplyBatch(ctx, "bench", "t", 0, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/spend")
}
