package faults

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/gateway/usage"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
)

// Prices of the fault suite's route (micro-units per token) and the cost of
// one request of chatBody: the mock upstream answers OutputTokens (16)
// tokens to an input it counts as the gateway estimates it.
const (
	inputPrice, outputPrice = 1, 2
	rate                    = 50 // requests per second of the load
)

func requestCost() int64 {
	return usage.EstimateInputTokens(len(chatBody))*inputPrice + 16*outputPrice
}

// budgetLimit is one policy the run's load approaches.
type budgetLimit struct {
	name    string // agent name
	agent   event.UUID
	window  string
	rolling bool
	limit   int64
}

// setBudgets gives the org a rolling hourly limit of 80% of what a load of
// d costs and the bot a rolling daily limit of 90%: the org's limit (an
// ancestor's, bounding its subtree) stops the load before its end unless a
// fault kept requests out. Both windows cover the whole run, so the ledger's
// spend of the run is the spend of each window.
func (s *stack) setBudgets(d time.Duration) {
	full := int64(rate*d.Seconds()) * requestCost()
	s.limits = []budgetLimit{
		{name: "org", agent: s.org, window: "hourly", rolling: true, limit: full * 8 / 10},
		{name: "bot", agent: s.bot, window: "daily", rolling: true, limit: full * 9 / 10},
	}
	for _, l := range s.limits {
		if _, err := store.SetPolicy(context.Background(), s.pool, store.PolicySpec{Agent: l.name, LimitMicros: l.limit,
			Window: l.window, Rolling: l.rolling, Active: true, Reason: "fault suite"}); err != nil {
			s.t.Fatal(err)
		}
	}
	// The gateways apply control-data changes from LISTEN/NOTIFY within
	// milliseconds; the load starts after that.
	time.Sleep(time.Second)
}

// checkBudgets: no budget exceeded. For every policy of the run, the
// ledger's spend of the agent's subtree (the whole run is inside each
// rolling window) is at most the limit plus the documented overshoot
// (docs/budget.md): here every request costs less than its estimate, so
// only the failure's own bound (s.overshoot) remains.
func (s *stack) checkBudgets() {
	ctx := context.Background()
	for _, l := range s.limits {
		var spent int64
		err := s.pool.QueryRow(ctx, `
			WITH RECURSIVE sub(id) AS (SELECT $1::uuid UNION ALL SELECT a.id FROM agents a JOIN sub ON a.parent_id = sub.id)
			SELECT coalesce(sum(cost_micros), 0) FROM ledger WHERE agent_id IN (SELECT id FROM sub)`, [16]byte(l.agent)).Scan(&spent)
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Logf("budget of %s (%s, rolling %v): limit %d, ledger spend %d (%.0f%%), allowed overshoot %d",
			l.name, l.window, l.rolling, l.limit, spent, 100*float64(spent)/float64(l.limit), s.overshoot)
		if spent > l.limit+s.overshoot {
			s.t.Errorf("budget exceeded: %s spent %d, limit %d + bound %d", l.name, spent, l.limit, s.overshoot)
		}
	}
}

// duplicates reads the whole metering topic and returns how many records
// repeat an event id already read and what they cost: at-least-once spool
// delivery after a gateway crash (docs/runbook.md). The ledger keeps one
// entry per id, and so does the aggregator (spooled records are checked
// against the ledger's winning copy); the copies are only reported.
func (s *stack) duplicates() (copies, micros int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := s.cfg.Kafka.Topics.Metering
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.k.addr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		s.t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	ids := map[string]struct{}{}
	var m event.Metering
	done := func() bool {
		for _, o := range want {
			if o > 0 {
				return false
			}
		}
		return true
	}
	for i := 0; i < 100_000 && !done(); i++ {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			s.t.Fatalf("cannot read the metering topic to its end: %v (left %v)", ctx.Err(), want)
		}
		f.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= want[r.Partition] {
				want[r.Partition] = 0
			}
			if err := event.DecodeMetering(r.Value, &m); err != nil {
				return // the DLQ's business
			}
			id := string(m.ID[:])
			if _, dup := ids[id]; dup {
				copies++
				micros += m.CostMicros
				return
			}
			ids[id] = struct{}{}
		})
	}
	return copies, micros
}

// caracal runs the caracal command against the stack's services, as an
// operator following docs/runbook.md would, and returns its output.
func (s *stack) caracal(args ...string) string {
	s.t.Helper()
	tp := s.cfg.Kafka.Topics
	argv := append(args, "--set", "database.url="+s.cfg.Database.URL, "--set", "kafka.brokers="+s.k.addr(),
		"--set", "redis.addrs="+s.r.addr(), "--set", "kafka.consumer.groupPrefix=faults",
		"--set", "kafka.topics.metering="+tp.Metering, "--set", "kafka.topics.dlq="+tp.DLQ,
		"--set", "kafka.topics.audit="+tp.Audit, "--set", "kafka.topics.decisions="+tp.Decisions)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, caracalBinary(s.t), argv...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("caracal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitAggregatorCommitted waits until the aggregator group committed the
// end of the metering topic (a reconcile resumes from its committed
// offsets).
func (s *stack) waitAggregatorCommitted() {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.k.addr()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := s.cfg.Kafka.Topics.Metering
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ends, err1 := adm.ListEndOffsets(ctx, topic)
		com, err2 := adm.FetchOffsets(ctx, "faults-metrics")
		if err1 != nil || err2 != nil {
			continue
		}
		behind := false
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := com.Lookup(topic, o.Partition)
			if o.Offset > 0 && (!ok || c.At < o.Offset) {
				behind = true
			}
		})
		if !behind {
			return
		}
	}
	s.t.Fatal("the aggregator did not commit the end of the metering topic within 2 minutes")
}

// waitReadyz polls the gateway's /readyz (the runbook's first check) until
// it answers ready (200) or not (503 naming the budget store), at most
// within; it reports whether it did.
func (s *stack) waitReadyz(ready bool, within time.Duration) bool {
	url := "http://" + s.gw.AdminAddr + "/readyz"
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if ready && resp.StatusCode == http.StatusOK {
			return true
		}
		if !ready && resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "budget store") {
			return true
		}
	}
	return false
}

// metric reads one series of the in-process gateway's /metrics (the
// runbook's `curl .../metrics | grep`): name with its labels, exactly.
func (s *stack) metric(series string) (float64, bool) {
	resp, err := http.Get("http://" + s.gw.AdminAddr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// waitMetric polls series until ok(value) holds, at most within.
func (s *stack) waitMetric(series string, within time.Duration, ok func(float64) bool) (float64, bool) {
	var v float64
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var found bool
		if v, found = s.metric(series); found && ok(v) {
			return v, true
		}
	}
	return v, false
}

// caracalFails runs the caracal command expecting it to fail; it returns
// the output.
func (s *stack) caracalFails(args ...string) string {
	s.t.Helper()
	argv := append(args, "--set", "database.url="+s.cfg.Database.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, caracalBinary(s.t), argv...).CombinedOutput()
	if err == nil {
		s.t.Fatalf("caracal %s succeeded, want a failure:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}
