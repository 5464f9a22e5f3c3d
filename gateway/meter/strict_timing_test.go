package meter

import (
	"context"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/gateway/spool"
	"github.com/caracal-gw/caracal/internal/event"
)

// BenchmarkStrictIntent is the cost strict mode adds per request in the
// producer: one fsynced intent before forwarding and one fsynced completion
// (the metering event) after, both group-committed with the appends of
// concurrent requests. The brokers are unreachable here, so the events stay
// in the spool.
func BenchmarkStrictIntent(b *testing.B) {
	for _, c := range []struct {
		name string
		par  int
	}{{"serial", 1}, {"par64", 64}} {
		b.Run(c.name, func(b *testing.B) {
			p, err := NewProducer(spoolConfig(&testing.T{}, "127.0.0.1:1"))
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				p.Close(ctx) //nolint:errcheck // no broker
			}()
			sp, err := spool.Open(spool.Options{Dir: b.TempDir(), MaxBytes: 1 << 40, SegmentBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer sp.Close()
			if err := p.UseSpool(sp, SpoolOptions{DrainEvery: time.Hour}); err != nil {
				b.Fatal(err)
			}
			g := event.NewIDGen()
			b.ReportAllocs()
			b.ResetTimer()
			b.SetParallelism(c.par)
			b.RunParallel(func(pb *testing.PB) {
				e := meteringEvent(g, 1)
				for pb.Next() {
					if !p.Admit() {
						b.Error("no room in the spool")
						return
					}
					in, err := p.Intent(e)
					if err != nil {
						b.Error(err)
						return
					}
					p.Complete(in, e)
				}
			})
		})
	}
}
