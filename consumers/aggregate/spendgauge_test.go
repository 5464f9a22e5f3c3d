package aggregate

import (
	"bufio"
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// spendLines returns the caracal_agent_spend_micros lines of an exposition,
// sorted.
func spendLines(text string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), SpendMetric+"{") {
			out = append(out, sc.Text())
		}
	}
	sort.Strings(out)
	return out
}

func setLines(s *metrics.Set) []string {
	var b bytes.Buffer
	s.WritePrometheus(&b)
	return spendLines(b.String())
}

// TestSpendGaugesFromAggregatedEvents runs metering events through the
// aggregator (real broker and Redis), then exports the per-agent gauges:
// each agent's calendar day and month spend (its own plus its
// descendants'), exact integers, the agents with the most spend this month
// first, at most MaxAgents of them; on /metrics while Run runs.
func TestSpendGaugesFromAggregatedEvents(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	st := budget.NewStore(rc)
	pool := testenv.PG(t)
	ctx := context.Background()
	ids := map[string]event.UUID{}
	for _, a := range []store.NewAgent{{Name: "acme"}, {Name: "acme.bot", Parent: "acme"}, {Name: "zeta"}, {Name: "idle"}} {
		row, err := store.CreateAgent(ctx, pool, a)
		if err != nil {
			t.Fatal(err)
		}
		if ids[a.Name], err = event.ParseUUID([]byte(row.ID)); err != nil {
			t.Fatal(err)
		}
	}
	acme, bot, zeta := ids["acme"], ids["acme.bot"], ids["zeta"]

	// Thursday 2026-03-05 12:00 UTC is "now"; yesterday evening is in a
	// rolling day but not in the calendar day, the 2nd is earlier the same
	// month, February 27th the month before.
	now := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
	yesterday := time.Date(2026, 3, 4, 20, 0, 0, 0, time.UTC)
	today, earlier, lastMonth := now.Add(-time.Hour), time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), time.Date(2026, 2, 27, 8, 0, 0, 0, time.UTC)
	type spend struct {
		agent event.UUID
		at    time.Time
		cost  int64
	}
	spends := []spend{
		{bot, today, 1_500_000_001}, {bot, today, 7}, {bot, earlier, 40_000_000}, {bot, lastMonth, 999},
		{acme, today, 3_000_000_000}, {acme, earlier, 5}, {acme, yesterday, 300},
		{zeta, today, 2_000_000_000}, {zeta, lastMonth, 11},
	}
	topic, dlq := testenv.Name("metering-"), testenv.Name("dlq-")
	cl := ctest.Topics(t, cfg, topic, dlq)
	gen := event.NewIDGen()
	var recs []*kgo.Record
	for i, s := range spends {
		e := event.Metering{ID: gen.New(s.at), TimeUnixUs: s.at.UnixMicro(), Kind: event.KindUsage, Agent: s.agent,
			Root: s.agent, Route: []byte("openai"), Model: []byte("m"), Gateway: []byte("gw-test"),
			CostMicros: s.cost, Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
		if s.agent == bot {
			e.Root, e.NumAncestors, e.Ancestors[0] = acme, 1, acme
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: e.AppendJSON(nil)})
	}
	ctest.Produce(t, cl, recs...)
	end := ctest.EndOffsets(t, cl, topic)
	group := testenv.Name("agg-")
	ctest.Consume(t, cfg, New(st, group), runner.Options{Name: "metrics", Group: group, Topics: []string{topic}, DLQTopic: dlq, MaxPollRecords: 50},
		func() bool { return ctest.CommittedOffsets(t, cl, group) == end })

	line := func(agent, window string, v string) string {
		return SpendMetric + `{agent="` + agent + `",window="` + window + `"} ` + v
	}
	// acme.bot: today 1500000008, this month +40000000; acme adds its own
	// 3000000000 today, 300 yesterday and 5 on the 2nd; zeta 2000000000 (February's 11
	// and 999 are in no window). idle has no spend and is not exported.
	all := []string{
		line("acme", "day", "4500000008"), line("acme", "month", "4540000313"),
		line("acme.bot", "day", "1500000008"), line("acme.bot", "month", "1540000008"),
		line("zeta", "day", "2000000000"), line("zeta", "month", "2000000000"),
	}
	sort.Strings(all)
	g := &SpendGauges{Store: st, Agents: ListAgents(pool), Now: func() time.Time { return now }}
	for _, c := range []struct {
		max  int
		want []string
	}{
		{10, all},
		{1, []string{line("acme", "day", "4500000008"), line("acme", "month", "4540000313")}},
		// zeta's month (2000000000) is above acme.bot's (1540000008).
		{2, []string{line("acme", "day", "4500000008"), line("acme", "month", "4540000313"), line("zeta", "day", "2000000000"), line("zeta", "month", "2000000000")}},
		{0, nil},
	} {
		g.MaxAgents = c.max
		if err := g.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		sort.Strings(c.want)
		if got := setLines(g.Set()); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Fatalf("MaxAgents %d: exported\n%s\nwant\n%s", c.max, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}

	// Run publishes them on the process's /metrics (metrics.WritePrometheus,
	// what serveMetrics writes) and withdraws them when it ends.
	g.MaxAgents = 1
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(rctx) }()
	want := strings.Join([]string{line("acme", "day", "4500000008"), line("acme", "month", "4540000313")}, "\n")
	var got string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var b bytes.Buffer
		metrics.WritePrometheus(&b, false)
		if got = strings.Join(spendLines(b.String()), "\n"); got == want {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("/metrics shows\n%s\nwant\n%s", got, want)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	metrics.WritePrometheus(&b, false)
	if l := spendLines(b.String()); len(l) != 0 {
		t.Fatalf("gauges still exported after Run ended: %v", l)
	}
}
