package bench

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/gateway/meter"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// BenchmarkProduceEnqueue is the gateway's metering call: take a pooled
// record, encode the event into it and TryProduce it. When the buffer is
// full the loop waits for room as the gateway's admission would, so over a
// long run ns/op approaches the producer's sustained events/s to the broker
// (the real one when CARACAL_TEST_KAFKA_BROKERS is set).
func BenchmarkProduceEnqueue(b *testing.B) {
	cfg := testenv.Config(b)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(b)
	cfg.Kafka.Topics.Metering = testenv.Name("b.produce.")
	createTopics(b, cfg.Kafka.Brokers, cfg.Kafka.Topics.Metering)
	p, err := meter.NewProducer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var firstErr error
	p.OnFailure = func(_ string, _ []byte, err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	e := sampleEvent()
	// HasRoom alone is not enough in a tight loop: franz-go also caps the
	// buffered records (10,000 by default) and a record past that cap fails
	// once the backlog is full. The loop keeps at most 4,000 in flight, below
	// the producer's record free list (8,192), as a gateway does at 100k
	// events/s with a 10 ms linger; past that the free list misses and each
	// record is a fresh 1 KiB allocation.
	send := func() {
		for recs, _ := p.Buffered(); !p.HasRoom() || recs >= 4_000; recs, _ = p.Buffered() {
			runtime.Gosched()
		}
		p.Metering(e)
	}
	for range 20_000 {
		send()
	}
	b.ReportAllocs()
	for b.Loop() {
		send()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if n := p.Failed.Load(); n != 0 {
		b.Fatalf("%d records failed, the first with: %v", n, firstErr)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
