package meter

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/gateway/spool"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// Tests against a broker that refuses records for good: a topic's
// max.message.bytes below the records (MESSAGE_TOO_LARGE, not retriable).

// logCapture is a slog handler that keeps every message.
type logCapture struct {
	mu   sync.Mutex
	msgs []string
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	m := r.Message
	r.Attrs(func(a slog.Attr) bool { m += " " + a.String(); return true })
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	return nil
}

// count returns how many messages contain s.
func (c *logCapture) count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// refusingKafka creates the three topics (one partition each) on the real
// broker and returns a config pointing at them.
func refusingKafka(t *testing.T) (*config.Config, []string) {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Topics.Metering = testenv.Name("t.meter.refused.")
	cfg.Kafka.Topics.Decisions = testenv.Name("t.meter.decisions.")
	cfg.Kafka.Topics.Audit = testenv.Name("t.meter.audit.")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit); err != nil {
		t.Fatal(err)
	}
	return cfg, brokers
}

// setMaxMessageBytes: testenv.SetMaxMessageBytes.
func setMaxMessageBytes(t *testing.T, brokers []string, topic string, value int, accept, refuse []int) {
	t.Helper()
	testenv.SetMaxMessageBytes(t, brokers, topic, value, accept, refuse)
}

// topicIDs reads topic to its end (bounded), returning how often each
// metering event id was seen (records that are not metering events, such as
// the probes, are skipped).
func topicIDs(t *testing.T, brokers []string, topic string) map[event.ID]int {
	t.Helper()
	seen := map[event.ID]int{}
	for _, r := range testenv.ReadTopic(t, brokers, topic) {
		var e event.Metering
		if event.DecodeMetering(r.Value, &e) == nil {
			seen[e.ID]++
		}
	}
	return seen
}

// waitFor polls cond (bounded) and fails with what() when it never holds.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
	}
}

func closeProducer(p *Producer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Close(ctx) //nolint:errcheck
}

// TestRefusedRecordsRetriedOnlyUntilAcked: events Kafka refuses go to the
// spool (refusing mode: every event then goes there first), counted under
// result="refused" and never as failed. The drain backs off and logs its
// pause once. With a limit only the small events pass, the spooled segments
// mix accepted and refused records: the accepted ones are delivered once
// and not sent again by later retries. Once the limit is raised every event
// is on the topic exactly once.
func TestRefusedRecordsRetriedOnlyUntilAcked(t *testing.T) {
	cfg, brokers := refusingKafka(t)
	g := event.NewIDGen()
	small, big := meteringEvent(g, 0), meteringEvent(g, 1)
	small.Route = append(small.Route[:0], strings.Repeat("s", 120)...)
	big.Route = append(big.Route[:0], strings.Repeat("b", 420)...)
	vs, vb := len(small.AppendJSON(nil)), len(big.AppendJSON(nil))
	// A record batch holds one event (two small ones pass the batch cap);
	// the medium limit passes a small event's batch, not a big one's.
	medium := vs + 250
	cfg.Kafka.Producer.BatchSize = vs + 480
	cfg.Kafka.Producer.LingerMs = 1
	cfg.Kafka.Producer.CompressionType = "none"
	if 2*vs+150 <= cfg.Kafka.Producer.BatchSize || vb+130 > cfg.Kafka.Producer.BatchSize || vb+50 <= medium {
		t.Fatalf("event sizes %d and %d do not fit the test's limits", vs, vb)
	}
	setMaxMessageBytes(t, brokers, cfg.Kafka.Topics.Metering, 64, nil, []int{vs})

	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeProducer(p)
	sp, err := spool.Open(spool.Options{Dir: t.TempDir(), SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	logs := &logCapture{}
	if err := p.UseSpool(sp, SpoolOptions{StallAfter: 5 * time.Second, DrainEvery: 20 * time.Millisecond,
		DrainBackoffMax: 100 * time.Millisecond, LogEvery: time.Hour, Logger: slog.New(logs)}); err != nil {
		t.Fatal(err)
	}

	failedBefore, refusedBefore := producerFailed.Get(), producerRefusedRecords.Get()
	const n = 30
	ids := map[event.ID]bool{}
	for i := range n {
		e := meteringEvent(g, i)
		e.Route = e.Route[:0]
		if i%2 == 0 {
			e.Route = append(e.Route, strings.Repeat("s", 120)...)
		} else {
			e.Route = append(e.Route, strings.Repeat("b", 420)...)
		}
		ids[e.ID] = true
		admit(t, p)
		p.Metering(e)
	}
	waitFor(t, 30*time.Second, func() bool { a, _ := p.Spooled(); return a >= n },
		func() string {
			a, _ := p.Spooled()
			return itoa(int(a)) + " of " + itoa(n) + " refused events reached the spool"
		})
	// Several drain attempts are refused: one log line, the rest counted.
	waitFor(t, 60*time.Second, func() bool { return producerRefusedRecords.Get()-refusedBefore >= 4*n },
		func() string { return "the drain did not retry the refused records" })
	if !p.Refusing() || p.BrokersDown() {
		t.Fatalf("refusing %v, brokers down %v: want refusing, brokers up", p.Refusing(), p.BrokersDown())
	}
	if got := logs.count("spool drain paused"); got != 1 {
		t.Fatalf("%d 'spool drain paused' lines over several refused attempts, want 1 (rate-limited)", got)
	}
	if f := producerFailed.Get() - failedBefore; f != 0 || p.Failed.Load() != 0 {
		t.Fatalf("%d records counted as failed (lost) while the spool took them", f)
	}
	if _, d := p.Spooled(); d != 0 {
		t.Fatalf("%d records drained while the topic refuses them all", d)
	}

	// Only the small events pass: the drain delivers them and keeps the
	// big ones, and goes on retrying those alone.
	setMaxMessageBytes(t, brokers, cfg.Kafka.Topics.Metering, medium, []int{vs}, []int{vb})
	waitFor(t, 60*time.Second, func() bool { _, d := p.Spooled(); return d >= n/2 },
		func() string {
			_, d := p.Spooled()
			r, _ := p.Buffered()
			return itoa(int(d)) + " of the small events drained; buffered " + itoa(int(r)) + "; refused " + itoa(int(producerRefusedRecords.Get())) + "; log: " + strings.Join(logs.msgs, "\n")
		})
	refused := producerRefusedRecords.Get()
	waitFor(t, 60*time.Second, func() bool { return producerRefusedRecords.Get()-refused >= 3*n/2 },
		func() string { return "the drain did not retry the big events" })
	if _, d := p.Spooled(); d != n/2 {
		t.Fatalf("%d records drained, want the %d small ones", d, n/2)
	}

	setMaxMessageBytes(t, brokers, cfg.Kafka.Topics.Metering, 1048588, []int{vb}, nil)
	waitFor(t, 60*time.Second, func() bool { r, _, _ := sp.Stats(); return r == 0 && !p.Refusing() },
		func() string {
			r, _, _ := sp.Stats()
			return itoa(int(r)) + " records left in the spool after the limit was raised"
		})
	if got := logs.count("spool drain resumed"); got != 1 {
		t.Fatalf("%d 'spool drain resumed' lines, want 1", got)
	}
	seen := topicIDs(t, brokers, cfg.Kafka.Topics.Metering)
	if len(seen) != n {
		t.Fatalf("%d distinct events on the topic, want %d", len(seen), n)
	}
	for id, c := range seen {
		if !ids[id] {
			t.Fatalf("unknown event %s on the topic", id)
		}
		if c != 1 {
			t.Errorf("event %s is on the topic %d times", id, c)
		}
	}
	if p.Reserved() != 0 || p.Failed.Load() != 0 {
		t.Fatalf("%d bytes still reserved, %d records failed", p.Reserved(), p.Failed.Load())
	}
}

// TestRefusedBurstNeverOverfillsTheSpool: Kafka refuses every record and the
// spool is tiny; a burst of concurrent admissions is admitted only while the
// spool can hold their events. Every admitted event is in the spool, none is
// lost (the last-resort path is not reached), the rest were refused
// admission.
func TestRefusedBurstNeverOverfillsTheSpool(t *testing.T) {
	cfg, brokers := refusingKafka(t)
	setMaxMessageBytes(t, brokers, cfg.Kafka.Topics.Metering, 64, nil, []int{512})
	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const capBytes = 16 << 10
	sp, err := spool.Open(spool.Options{Dir: t.TempDir(), MaxBytes: capBytes, SegmentBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if err := p.UseSpool(sp, SpoolOptions{DrainEvery: 20 * time.Millisecond, DrainBackoffMax: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	failedBefore := producerFailed.Get()
	g := event.NewIDGen()
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Until the spool is full (bounded).
			deadline := time.Now().Add(30 * time.Second)
			for i := 0; i < 100_000 && time.Now().Before(deadline); i++ {
				if _, b, _ := sp.Stats(); b+MeteringReserve > capBytes-capBytes/16 {
					return
				}
				if !p.Admit() {
					refused.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				admitted.Add(1)
				p.Metering(meteringEvent(g, i))
			}
		}()
	}
	wg.Wait()
	waitFor(t, 30*time.Second, func() bool { a, _ := p.Spooled(); return a+p.Failed.Load() >= admitted.Load() && p.Reserved() == 0 },
		func() string {
			a, _ := p.Spooled()
			return itoa(int(a)) + " of " + itoa(int(admitted.Load())) + " admitted events spooled; " + itoa(int(p.Reserved())) + " bytes reserved"
		})
	records, bytes, _ := sp.Stats()
	t.Logf("%d admitted, %d refused admission; the spool holds %d records, %d bytes", admitted.Load(), refused.Load(), records, bytes)
	if admitted.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("%d admitted, %d refused: the burst should fill the spool", admitted.Load(), refused.Load())
	}
	if records != admitted.Load() || bytes > capBytes {
		t.Fatalf("%d events admitted, the spool holds %d records, %d bytes (cap %d)", admitted.Load(), records, bytes, capBytes)
	}
	if f := producerFailed.Get() - failedBefore; f != 0 || p.Failed.Load() != 0 {
		t.Fatalf("%d admitted events lost", p.Failed.Load())
	}
	if p.HasRoom() {
		t.Fatal("HasRoom with a full spool while Kafka refuses records")
	}
	closeProducer(p)
	if r, _, _ := sp.Stats(); r != admitted.Load() {
		t.Fatalf("spool holds %d records after Close, want %d", r, admitted.Load())
	}
}

// TestLostRecordCountedAndLogged: the last resort. An event neither Kafka
// nor the spool takes (the spool has failed: closed here; admission had set
// its room aside) is counted as failed and logged as lost, and its
// reservation is given back.
func TestLostRecordCountedAndLogged(t *testing.T) {
	cfg, brokers := refusingKafka(t)
	setMaxMessageBytes(t, brokers, cfg.Kafka.Topics.Metering, 64, nil, []int{512})
	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeProducer(p)
	sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logCapture{}
	if err := p.UseSpool(sp, SpoolOptions{DrainEvery: time.Hour, Logger: slog.New(logs)}); err != nil {
		t.Fatal(err)
	}
	failedBefore := producerFailed.Get()
	admit(t, p)
	sp.Close()
	p.Metering(meteringEvent(event.NewIDGen(), 1))
	waitFor(t, 30*time.Second, func() bool { return p.Failed.Load() == 1 },
		func() string { return "the lost event was not counted" })
	if f := producerFailed.Get() - failedBefore; f != 1 {
		t.Fatalf(`caracal_producer_records_total{result="failed"} rose by %d, want 1`, f)
	}
	if logs.count("record LOST") != 1 || p.Reserved() != 0 {
		t.Fatalf("%d 'record LOST' log lines, %d bytes reserved", logs.count("record LOST"), p.Reserved())
	}
}
