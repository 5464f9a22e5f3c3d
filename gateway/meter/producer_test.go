package meter

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func TestProducerDeliversEveryEvent(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Topics.Metering = testenv.Name("t.metering.")
	cfg.Kafka.Topics.Decisions = testenv.Name("t.decisions.")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopics(ctx, 3, 1, nil, cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	g := event.NewIDGen()
	want := map[event.ID]int64{}
	var e event.Metering
	for i := 0; i < n; i++ {
		e.Reset()
		e.ID = g.New(time.Now())
		e.TimeUnixUs = time.Now().UnixMicro()
		e.Kind, e.Pricing, e.Status = event.KindUsage, event.PricingTokens, 200
		e.Agent = event.UUID{byte(i % 7)}
		e.Root = e.Agent
		e.Route = append(e.Route, "r"...)
		e.CostMicros = int64(i)
		e.Currency = [3]byte{'U', 'S', 'D'}
		want[e.ID] = e.CostMicros
		if !p.HasRoom() {
			t.Fatal("producer reports no room with an empty buffer")
		}
		p.Metering(&e)
	}
	p.Decision(&event.Audit{ID: g.New(time.Now()), TimeUnixUs: 1, Type: []byte("decision"), Reason: []byte("budget_exceeded"), Status: 402})
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Failed.Load() != 0 {
		t.Fatalf("%d records failed", p.Failed.Load())
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(cfg.Kafka.Topics.Metering),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := 0
	for got < n && ctx.Err() == nil {
		fs := c.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			var d event.Metering
			if err := event.DecodeMetering(r.Value, &d); err != nil {
				t.Errorf("record %d: %v", r.Offset, err)
				return
			}
			if string(r.Key) != d.Agent.String() {
				t.Errorf("key %s is not the agent %s", r.Key, d.Agent)
			}
			if cost, ok := want[d.ID]; !ok || cost != d.CostMicros {
				t.Errorf("unexpected or changed event %s", d.ID)
			}
			delete(want, d.ID)
			got++
		})
	}
	if len(want) != 0 || got != n {
		t.Fatalf("consumed %d of %d events, %d missing", got, n, len(want))
	}
}
