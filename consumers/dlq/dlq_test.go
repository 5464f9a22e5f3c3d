package dlq

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

type fixture struct {
	t   *testing.T
	cfg *config.Config
	cl  *kgo.Client
	ids *event.IDGen
}

func newFixture(t *testing.T) *fixture {
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Kafka.Topics.Metering = testenv.Name("t.metering.")
	cfg.Kafka.Topics.Decisions = testenv.Name("t.decisions.")
	cfg.Kafka.Topics.Audit = testenv.Name("t.audit.")
	cfg.Kafka.Topics.DLQ = testenv.Name("t.dlq.")
	cfg.Kafka.Consumer.GroupPrefix = testenv.Name("grp")
	cl := ctest.Topics(t, cfg, cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit, cfg.Kafka.Topics.DLQ)
	return &fixture{t: t, cfg: cfg, cl: cl, ids: event.NewIDGen()}
}

// rejected returns a DLQ record as the runner writes it for a record of
// topic at partition/offset.
func (f *fixture) rejected(dlqPartition int32, topic string, offset int, value []byte) *kgo.Record {
	return &kgo.Record{Topic: f.cfg.Kafka.Topics.DLQ, Partition: dlqPartition, Value: value, Headers: []kgo.RecordHeader{
		{Key: runner.HeaderTopic, Value: []byte(topic)},
		{Key: runner.HeaderPartition, Value: []byte("0")},
		{Key: runner.HeaderOffset, Value: []byte(strconv.Itoa(offset))},
		{Key: runner.HeaderError, Value: []byte("invalid: test")},
		{Key: runner.HeaderConsumer, Value: []byte("ledger")},
	}}
}

func (f *fixture) metering() []byte {
	e := event.Metering{ID: f.ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Kind: event.KindUsage,
		Route: []byte("r"), Model: []byte("m"), Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
	return e.AppendJSON(nil)
}

func (f *fixture) audit() []byte {
	a := event.Audit{ID: f.ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Type: []byte("decision"), Reason: []byte("x"), Status: 403}
	return a.AppendJSON(nil)
}

func (f *fixture) ends(topic string) int64 {
	f.t.Helper()
	ends, err := kadm.NewClient(f.cl).ListEndOffsets(context.Background(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		f.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func (f *fixture) replay(opt Options) (*Report, []Record) {
	f.t.Helper()
	var got []Record
	opt.OnRecord = func(r Record) { got = append(got, r) }
	opt.Idle = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Replay(ctx, f.cfg, opt)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep, got
}

// TestReplayTopicAndMax: --topic replays one source topic and leaves the
// others for a later run; --max stops after N and the next run goes on
// from there; nothing is replayed twice across runs.
func TestReplayTopicAndMax(t *testing.T) {
	f := newFixture(t)
	m, d := f.cfg.Kafka.Topics.Metering, f.cfg.Kafka.Topics.Decisions
	var recs []*kgo.Record
	for i := range 6 {
		recs = append(recs, f.rejected(int32(i%3), m, i, f.metering()), f.rejected(int32(i%3), d, i, f.audit()))
	}
	ctest.Produce(t, f.cl, recs...)

	rep, _ := f.replay(Options{Topic: "metering", Max: 4})
	if rep.Replayed != 4 || f.ends(m) != 4 || f.ends(d) != 0 {
		t.Fatalf("--topic metering --max 4: replayed %d; metering %d, decisions %d", rep.Replayed, f.ends(m), f.ends(d))
	}
	rep, _ = f.replay(Options{Topic: m})
	if rep.Replayed != 2 || f.ends(m) != 6 || f.ends(d) != 0 {
		t.Fatalf("--topic <metering topic>: replayed %d; metering %d, decisions %d", rep.Replayed, f.ends(m), f.ends(d))
	}
	rep, got := f.replay(Options{})
	if rep.Replayed != 6 || f.ends(m) != 6 || f.ends(d) != 6 {
		t.Fatalf("everything: replayed %d; metering %d, decisions %d", rep.Replayed, f.ends(m), f.ends(d))
	}
	for _, r := range got {
		if r.Action != Replayed || r.SourceTopic != d || r.EventID == "" {
			t.Fatalf("the full run handled %+v (want only the decisions records)", r)
		}
	}
	if rep, _ := f.replay(Options{}); rep.Replayed != 0 || f.ends(m) != 6 || f.ends(d) != 6 {
		t.Fatalf("a run after everything replayed %d", rep.Replayed)
	}
	if _, err := Replay(context.Background(), f.cfg, Options{Topic: "nope"}); err == nil {
		t.Fatal("--topic nope accepted")
	}
}

// TestReplayRefusesAndReturns: records without the DLQ headers or from a
// foreign topic are refused; a record that came back after a replay is
// replayed again only with Force; SkipUndecodable passes garbage over.
func TestReplayRefusesAndReturns(t *testing.T) {
	f := newFixture(t)
	m := f.cfg.Kafka.Topics.Metering
	back := f.rejected(0, m, 1, f.metering())
	back.Headers = append(back.Headers, kgo.RecordHeader{Key: HeaderReplayed, Value: []byte("1")})
	ctest.Produce(t, f.cl,
		&kgo.Record{Topic: f.cfg.Kafka.Topics.DLQ, Partition: 0, Value: f.metering()},
		f.rejected(0, "foreign.topic", 0, f.metering()),
		back,
		f.rejected(0, m, 2, []byte("garbage")),
	)
	rep, got := f.replay(Options{DryRun: true, SkipUndecodable: true})
	want := []Action{Refused, Refused, Returned, Undecodable}
	if len(got) != len(want) {
		t.Fatalf("dry run listed %+v", got)
	}
	for i, r := range got {
		if r.Action != want[i] {
			t.Fatalf("record %d: %s, want %s (%+v)", i, r.Action, want[i], r)
		}
	}
	if rep.Replayed != 0 || f.ends(m) != 0 {
		t.Fatalf("dry run: replayed %d, metering %d", rep.Replayed, f.ends(m))
	}
	rep, _ = f.replay(Options{Force: true})
	if rep.Replayed != 2 || rep.Refused != 2 || f.ends(m) != 2 {
		t.Fatalf("--force: %+v, metering %d", rep, f.ends(m))
	}
	// The returned record carries the replay count.
	out := testenv.ReadTopic(t, f.cfg.Kafka.Brokers, m)
	counts := map[string]bool{}
	for _, r := range out {
		for _, h := range r.Headers {
			if h.Key == runner.HeaderTopic || h.Key == runner.HeaderError {
				t.Fatalf("replayed record keeps the DLQ header %s", h.Key)
			}
			if h.Key == HeaderReplayed {
				counts[string(h.Value)] = true
			}
		}
	}
	if len(out) != 2 || !counts["1"] || !counts["2"] {
		t.Fatalf("replayed records %d, replay counts %v", len(out), counts)
	}
}

// TestReplayIsForTheRejectingConsumer: each consumer's DLQ copy of a record
// is replayed once, addressed to that consumer (runner.HeaderReplayFor),
// without the DLQ headers; a second copy from the same consumer is a
// duplicate.
func TestReplayIsForTheRejectingConsumer(t *testing.T) {
	f := newFixture(t)
	m := f.cfg.Kafka.Topics.Metering
	v := f.metering()
	by := func(consumer string) *kgo.Record {
		r := f.rejected(0, m, 7, v)
		for i := range r.Headers {
			if r.Headers[i].Key == runner.HeaderConsumer {
				r.Headers[i].Value = []byte(consumer)
			}
		}
		return r
	}
	ctest.Produce(t, f.cl, by("ledger"), by("metrics"), by("ledger"))
	rep, _ := f.replay(Options{})
	if rep.Replayed != 2 || rep.Duplicates != 1 {
		t.Fatalf("replayed %d, duplicates %d; want 2 and 1", rep.Replayed, rep.Duplicates)
	}
	var fors []string
	for _, r := range testenv.ReadTopic(t, f.cfg.Kafka.Brokers, m) {
		for _, h := range r.Headers {
			switch h.Key {
			case runner.HeaderReplayFor:
				fors = append(fors, string(h.Value))
			case runner.HeaderConsumer, runner.HeaderTopic, runner.HeaderError:
				t.Errorf("replayed record carries the DLQ header %s", h.Key)
			}
		}
	}
	slices.Sort(fors)
	if strings.Join(fors, ",") != "ledger,metrics" {
		t.Fatalf("replays addressed to %v, want ledger and metrics", fors)
	}
}
