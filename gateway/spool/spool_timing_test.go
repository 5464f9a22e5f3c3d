package spool

import (
	"testing"
)

// BenchmarkAppend measures a durable append with group commit: parallel
// appenders share one fsync per batch. The per-op time is the fsync cost
// divided by the batch size the parallelism produces.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		name   string
		nosync bool
		par    int
	}{{"fsync/par1", false, 1}, {"fsync/par64", false, 64}, {"nosync/par64", true, 64}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(Options{Dir: b.TempDir(), NoSync: c.nosync, MaxBytes: 1 << 40, SegmentBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			p := make([]byte, 400)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			b.SetParallelism(c.par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Append(1, p, false); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
