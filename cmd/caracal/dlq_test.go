package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/dlq"
	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// dlqHeaders are the headers consumers/runner puts on a rejected record.
func dlqHeaders(topic string, partition, offset int, consumer, err string) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-kept-01")},
		{Key: runner.HeaderTopic, Value: []byte(topic)},
		{Key: runner.HeaderPartition, Value: []byte(strconv.Itoa(partition))},
		{Key: runner.HeaderOffset, Value: []byte(strconv.Itoa(offset))},
		{Key: runner.HeaderError, Value: []byte(err)},
		{Key: runner.HeaderConsumer, Value: []byte(consumer)},
	}
}

// TestDLQReplay follows the runbook's "DLQ growth" procedure: a valid
// metering event an older consumer rejected (two DLQ copies: the ledger's
// and the aggregator's), a garbage record and a record from a foreign topic
// sit in the DLQ. --dry-run lists them and changes nothing; replay puts the
// event back on the metering topic once, where the real ledger writer
// stores exactly one row for it; the garbage goes back to the DLQ; a second
// replay replays nothing.
func TestDLQReplay(t *testing.T) {
	t.Parallel()
	pool := testenv.PG(t)
	brokers := testenv.KafkaBrokers(t)
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	cfg.Kafka.Topics.Metering = testenv.Name("t.metering.")
	cfg.Kafka.Topics.Decisions = testenv.Name("t.decisions.")
	cfg.Kafka.Topics.Audit = testenv.Name("t.audit.")
	cfg.Kafka.Topics.DLQ = testenv.Name("t.dlq.")
	prefix := testenv.Name("grp")
	topics := []string{cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit, cfg.Kafka.Topics.DLQ}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, topics...) //nolint:errcheck
		cl.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := adm.CreateTopics(ctx, 3, 1, nil, topics...); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		offs, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil && offs.Error() == nil && len(offs[cfg.Kafka.Topics.DLQ]) == 3 && len(offs[cfg.Kafka.Topics.Metering]) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics never served their partitions: %v", err)
		}
	}
	endSum := func(topic string) int64 {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}

	agent := event.UUID{9, 8, 7}
	e := event.Metering{ID: event.NewIDGen().New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Kind: event.KindUsage,
		Agent: agent, Root: agent, Route: []byte("openai"), Model: []byte("gpt-test"), RequestID: []byte("req-dlq"),
		Gateway: []byte("gw1"), InputTokens: 10, OutputTokens: 2, CostMicros: 1234, ReservedMicros: 5000,
		Currency: [3]byte{'U', 'S', 'D'}, Status: 200, LatencyUs: 10, Pricing: event.PricingTokens}
	valid := e.AppendJSON(nil)
	key := agent.AppendText(nil)
	metering := cfg.Kafka.Topics.Metering
	rejected := "invalid metering event: unsupported version 2"
	recs := []*kgo.Record{
		{Partition: 0, Key: key, Value: valid, Headers: dlqHeaders(metering, 1, 7, "ledger", rejected)},
		{Partition: 0, Key: key, Value: valid, Headers: dlqHeaders(metering, 1, 7, "metrics", rejected)},
		{Partition: 0, Key: key, Value: valid, Headers: dlqHeaders(metering, 1, 7, "ledger", rejected)},
		{Partition: 1, Value: []byte(`{"v":1,"id":"nope"}`), Headers: dlqHeaders(metering, 2, 9, "ledger", "invalid metering event: bad id")},
		{Partition: 2, Value: []byte(`{}`), Headers: dlqHeaders("someone.elses.topic", 0, 3, "ledger", "x")},
	}
	for _, r := range recs {
		r.Topic = cfg.Kafka.Topics.DLQ
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	set := []string{"--set", "kafka.brokers=" + strings.Join(brokers, ","), "--set", "kafka.topics.metering=" + metering,
		"--set", "kafka.topics.decisions=" + cfg.Kafka.Topics.Decisions, "--set", "kafka.topics.audit=" + cfg.Kafka.Topics.Audit,
		"--set", "kafka.topics.dlq=" + cfg.Kafka.Topics.DLQ, "--set", "kafka.consumer.groupPrefix=" + prefix}
	replay := func(args ...string) (string, string) {
		t.Helper()
		var o, e bytes.Buffer
		if err := run(ctx, append(append([]string{"dlq", "replay", "--idle", "5s"}, args...), set...), &o, &e); err != nil {
			t.Fatalf("caracal dlq replay %v: %v\n%s%s", args, err, o.String(), e.String())
		}
		t.Logf("caracal dlq replay %v:\n%s%s", args, o.String(), e.String())
		return o.String(), e.String()
	}
	lineOf := func(out, prefix string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line %q in:\n%s", prefix, out)
		return ""
	}

	// --dry-run lists every record and changes nothing.
	out, _ := replay("--dry-run")
	if l := lineOf(out, "0@0 "); !strings.Contains(l, " replay ") || !strings.Contains(l, "event="+e.ID.String()) ||
		!strings.Contains(l, "source="+metering+"/1@7") || !strings.Contains(l, rejected) {
		t.Fatalf("dry run, valid event: %q", l)
	}
	// Each consumer's copy is replayed for it; a second copy from the same
	// consumer is a duplicate.
	if l := lineOf(out, "0@1 "); !strings.Contains(l, " replay ") || !strings.Contains(l, "consumer=metrics") {
		t.Fatalf("dry run, the metrics consumer's copy: %q", l)
	}
	if l := lineOf(out, "0@2 "); !strings.Contains(l, " duplicate ") {
		t.Fatalf("dry run, the ledger's second copy: %q", l)
	}
	if l := lineOf(out, "1@0 "); !strings.Contains(l, " replay ") || !strings.Contains(l, "undecodable") {
		t.Fatalf("dry run, garbage: %q", l)
	}
	if l := lineOf(out, "2@0 "); !strings.Contains(l, " refused ") {
		t.Fatalf("dry run, foreign topic: %q", l)
	}
	if n := endSum(metering); n != 0 {
		t.Fatalf("the dry run produced %d records to the metering topic", n)
	}
	for _, g := range dlq.Groups(cfg, prefix) {
		offs, err := adm.FetchOffsets(ctx, g)
		if err != nil || len(offs) != 0 {
			t.Fatalf("the dry run committed for %s: %v %v", g, offs, err)
		}
	}

	// The real ledger writer consumes the metering topic.
	group := prefix + "-ledger"
	r, err := runner.New(cfg, ledger.NewWriter(pool, group), runner.Options{Name: "ledger", Group: group,
		Topics: []string{metering}, DLQTopic: cfg.Kafka.Topics.DLQ, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	rerr := make(chan error, 1)
	go func() { rerr <- r.Run(rctx) }()
	defer func() {
		rcancel()
		if err := <-rerr; err != nil {
			t.Errorf("ledger runner: %v", err)
		}
		r.Close()
	}()

	out, _ = replay()
	if l := lineOf(out, "0@0 "); !strings.Contains(l, " replay ") {
		t.Fatalf("replay, valid event: %q", l)
	}
	if l := lineOf(out, "1@0 "); !strings.Contains(l, " replay ") {
		t.Fatalf("replay, garbage: %q", l)
	}
	if n := endSum(metering); n != 3 {
		t.Fatalf("metering topic holds %d records after the replay, want 3 (the event for the ledger and for the metrics consumer, the garbage)", n)
	}
	dlqBefore := int64(len(recs))
	// The ledger stores the event once; the garbage comes back to the DLQ.
	var rows int64
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger WHERE event_id = $1`, [16]byte(e.ID)).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows == 1 && endSum(cfg.Kafka.Topics.DLQ) == dlqBefore+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger rows for the event: %d (want 1); DLQ records %d (want %d)", rows, endSum(cfg.Kafka.Topics.DLQ), dlqBefore+1)
		}
	}
	var all int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger`).Scan(&all); err != nil || all != 1 {
		t.Fatalf("ledger holds %d rows (%v), want 1", all, err)
	}
	// The copy replayed for the metrics consumer was not the ledger's.
	if n := metrics.GetOrCreateCounter(`caracal_consumer_replays_skipped_total{consumer="ledger"}`).Get(); n != 1 {
		t.Fatalf("the ledger runner skipped %d replays addressed to another consumer, want 1", n)
	}
	// The returned garbage keeps the original headers and the replay mark.
	back := testenv.ReadTopic(t, brokers, cfg.Kafka.Topics.DLQ)
	var returned *kgo.Record
	for _, x := range back {
		if string(x.Value) == `{"v":1,"id":"nope"}` && hdr(x, dlq.HeaderReplayed) == "1" {
			returned = x
		}
	}
	if returned == nil || hdr(returned, "traceparent") != "00-kept-01" || hdr(returned, runner.HeaderTopic) != metering {
		t.Fatalf("the garbage did not come back to the DLQ with its headers: %v", returned)
	}

	// A second run replays nothing: the metering topic does not move.
	out, errOut := replay()
	if n := endSum(metering); n != 3 {
		t.Fatalf("the second replay produced: metering topic holds %d records, want 3\n%s", n, out)
	}
	if strings.Count(out, " replay ") != 0 || !strings.Contains(out, " returned ") || !strings.Contains(errOut, "replayed 0;") {
		t.Fatalf("second replay:\n%s%s", out, errOut)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger`).Scan(&all); err != nil || all != 1 {
		t.Fatalf("ledger holds %d rows after the second replay (%v), want 1", all, err)
	}
}

func hdr(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
