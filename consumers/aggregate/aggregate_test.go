package aggregate

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func randUUID(t testing.TB) event.UUID {
	var u event.UUID
	if _, err := rand.Read(u[:]); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRedisTotalsMatchLedgerAndReplayChangesNothing feeds the same topic to
// the aggregator and the ledger writer and compares the Redis windows of
// every agent (its own spend plus its descendants') with the ledger sums;
// then rewinds the aggregator's group and checks nothing moves.
func TestRedisTotalsMatchLedgerAndReplayChangesNothing(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	cfg.Kafka.Consumer.MaxPollRecords = 50
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	store := budget.NewStore(rc)
	pool := testenv.PG(t)
	topic, dlq := testenv.Name("metering-"), testenv.Name("dlq-")
	cl := ctest.Topics(t, cfg, topic, dlq)

	root, child, grandchild := randUUID(t), randUUID(t), randUUID(t)
	chains := [][]event.UUID{{root}, {child, root}, {grandchild, child, root}}
	now := time.Now()
	ids := event.NewIDGen()
	var recs []*kgo.Record
	for i := 0; i < 150; i++ {
		chain := chains[i%3]
		e := event.Metering{ID: ids.New(now), TimeUnixUs: now.UnixMicro(), Kind: event.KindUsage, Agent: chain[0],
			Root: root, Route: []byte("openai"), Model: []byte("m"), Gateway: []byte("gw-test"),
			CostMicros: int64(100 + i*7), Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
		e.NumAncestors = copy(e.Ancestors[:], chain[1:])
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: e.AppendJSON(nil)})
	}
	ctest.Produce(t, cl, recs...)
	end := ctest.EndOffsets(t, cl, topic)

	aggGroup, ledGroup := testenv.Name("agg-"), testenv.Name("led-")
	aggOpts := runner.Options{Name: "metrics", Group: aggGroup, Topics: []string{topic}, DLQTopic: dlq, MaxPollRecords: 50}
	ctest.Consume(t, cfg, New(store, aggGroup), aggOpts, func() bool { return ctest.CommittedOffsets(t, cl, aggGroup) == end })
	ctest.Consume(t, cfg, ledger.NewWriter(pool, ledGroup),
		runner.Options{Name: "ledger", Group: ledGroup, Topics: []string{topic}, DLQTopic: dlq, MaxPollRecords: 50},
		func() bool { return ctest.CommittedOffsets(t, cl, ledGroup) == end })

	ctx := context.Background()
	// Ledger sums per agent including descendants (an agent's subtree is
	// every row whose agent is it or below it).
	subtree := map[event.UUID][]event.UUID{root: {root, child, grandchild}, child: {child, grandchild}, grandchild: {grandchild}}
	check := func(stage string) {
		t.Helper()
		for agent, members := range subtree {
			var want int64
			ms := make([][16]byte, len(members))
			for i, m := range members {
				ms[i] = m
			}
			if err := pool.QueryRow(ctx, `SELECT coalesce(sum(cost_micros), 0) FROM ledger WHERE agent_id = ANY($1)`, ms).Scan(&want); err != nil {
				t.Fatal(err)
			}
			if want == 0 {
				t.Fatalf("%s: ledger has no spend for %s", stage, agent)
			}
			for _, w := range []control.Window{control.Hourly, control.Daily, control.Weekly, control.Monthly} {
				for _, rolling := range []bool{false, true} {
					got, err := store.Spent(ctx, agent, root, w, rolling, now)
					if err != nil {
						t.Fatal(err)
					}
					if got != want {
						t.Fatalf("%s: Redis %s (rolling %v) of %s = %d, ledger says %d", stage, w, rolling, agent, got, want)
					}
				}
			}
		}
	}
	check("first pass")

	ctest.RewindGroup(t, cl, aggGroup, topic)
	ctest.Consume(t, cfg, New(store, aggGroup), aggOpts, func() bool { return ctest.CommittedOffsets(t, cl, aggGroup) == end })
	check("after replay")
}
