package meter

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/gateway/spool"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// fakeKafka is a kfake cluster on a fixed port with its data on disk, so it
// can be stopped and started again at the same address.
type fakeKafka struct {
	t    *testing.T
	port int
	dir  string
	c    *kfake.Cluster
}

func newFakeKafka(t *testing.T) *fakeKafka {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	f := &fakeKafka{t: t, port: port, dir: t.TempDir()}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeKafka) start() {
	var err error
	for range 50 { // the port may linger briefly after a stop
		f.c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(f.port), kfake.DataDir(f.dir), kfake.SyncWrites(),
			kfake.SeedTopics(2, "m", "d", "a"))
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("cannot start kfake on port %d: %v", f.port, err)
}

func (f *fakeKafka) stop() {
	if f.c != nil {
		f.c.Close()
		f.c = nil
	}
}

func (f *fakeKafka) addr() string { return net.JoinHostPort("127.0.0.1", itoa(f.port)) }

func itoa(v int) string { return strconv.Itoa(v) }

func spoolConfig(t *testing.T, addr string) *config.Config {
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = []string{addr}
	cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit = "m", "d", "a"
	return cfg
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	sp, err := spool.Open(spool.Options{Dir: dir, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func newSpooledProducer(t *testing.T, addr, dir string) (*Producer, *spool.Spool) {
	p, err := NewProducer(spoolConfig(t, addr), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	sp := openSpool(t, dir)
	if err := p.UseSpool(sp, SpoolOptions{StallAfter: 300 * time.Millisecond, DrainEvery: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	return p, sp
}

// admit takes a request's admission (spool room for its event) as the
// gateway does before Metering, Intent or Complete.
func admit(t testing.TB, p *Producer) {
	t.Helper()
	if !p.Admit() {
		t.Fatal("the producer admits no request")
	}
}

func meteringEvent(g *event.IDGen, i int) *event.Metering {
	e := &event.Metering{}
	e.ID = g.New(time.Now())
	e.TimeUnixUs = time.Now().UnixMicro()
	e.Kind, e.Pricing, e.Status = event.KindUsage, event.PricingPerRequest, 200
	e.Agent = event.UUID{1, byte(i % 5)}
	e.Root = e.Agent
	e.Route = append(e.Route, "r"...)
	e.CostMicros = int64(i + 1)
	e.Currency = [3]byte{'U', 'S', 'D'}
	return e
}

// consumeAll reads topic m from the start until want distinct ids arrived
// (bounded), returning how often each id was seen.
func consumeAll(t *testing.T, addr string, want int) map[event.ID]int {
	t.Helper()
	seen, _ := consumeAllFlagged(t, addr, want)
	return seen
}

// consumeAllFlagged is consumeAll that also counts, per id, the records
// carrying SpooledHeader.
func consumeAllFlagged(t *testing.T, addr string, want int) (seen, flagged map[event.ID]int) {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("m"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen, flagged = map[event.ID]int{}, map[event.ID]int{}
	for len(seen) < want && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := c.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			var e event.Metering
			if err := event.DecodeMetering(r.Value, &e); err != nil {
				t.Errorf("offset %d: %v", r.Offset, err)
				return
			}
			seen[e.ID]++
			for _, h := range r.Headers {
				if h.Key == SpooledHeader && string(h.Value) == SpooledValue {
					flagged[e.ID]++
				}
			}
		})
	}
	return seen, flagged
}

// TestSpoolWhileBrokersDown: events produced while the broker is stopped go
// to the spool; when it is back every event is delivered (at least once:
// duplicates are counted and allowed, consumers dedupe by event id).
func TestSpoolWhileBrokersDown(t *testing.T) {
	k := newFakeKafka(t)
	p, _ := newSpooledProducer(t, k.addr(), t.TempDir())
	g := event.NewIDGen()
	ids := map[event.ID]bool{}
	produce := func(i int) {
		e := meteringEvent(g, i)
		ids[e.ID] = true
		if !p.Admit() {
			t.Fatalf("no room at event %d", i)
		}
		p.Metering(e)
	}
	for i := range 50 {
		produce(i)
	}
	k.stop()
	deadline := time.Now().Add(15 * time.Second)
	i := 50
	for (!p.BrokersDown() || i < 250) && time.Now().Before(deadline) {
		produce(i)
		i++
		time.Sleep(2 * time.Millisecond)
	}
	if !p.BrokersDown() {
		t.Fatal("brokers never reported down")
	}
	appended, _ := p.Spooled()
	if appended == 0 {
		t.Fatal("nothing was spooled while the broker was down")
	}
	k.start()
	deadline = time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if a, d := p.Spooled(); d >= a && !p.BrokersDown() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	seen := consumeAll(t, k.addr(), len(ids))
	dups := 0
	for id := range ids {
		if seen[id] == 0 {
			t.Errorf("event %s was never delivered", id)
		}
		dups += max(seen[id]-1, 0)
	}
	a, d := p.Spooled()
	t.Logf("%d events, %d spooled, %d drained, %d duplicates", len(ids), a, d, dups)
	if p.Failed.Load() != 0 {
		t.Fatalf("%d records failed", p.Failed.Load())
	}
}

// TestSpoolSurvivesRestart: a producer closed while the broker is down
// leaves its events in the spool; the next one drains them.
func TestSpoolSurvivesRestart(t *testing.T) {
	k := newFakeKafka(t)
	dir := t.TempDir()
	k.stop()
	p, sp := newSpooledProducer(t, k.addr(), dir)
	g := event.NewIDGen()
	ids := map[event.ID]bool{}
	for i := range 40 {
		e := meteringEvent(g, i)
		ids[e.ID] = true
		if !p.Admit() {
			t.Fatalf("no room at event %d", i)
		}
		p.Metering(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.Close(ctx) //nolint:errcheck // the broker is down: what is left is spooled
	sp.Close()
	if n, _ := countRecords(t, dir); n != len(ids) {
		t.Fatalf("spool holds %d records after close, want %d", n, len(ids))
	}
	k.start()
	p2, _ := newSpooledProducer(t, k.addr(), dir)
	defer p2.Close(context.Background()) //nolint:errcheck
	seen, flagged := consumeAllFlagged(t, k.addr(), len(ids))
	for id := range ids {
		if seen[id] == 0 {
			t.Errorf("event %s lost across the restart", id)
		}
		// Every one of them came out of the spool: the aggregator must be
		// able to tell (SpooledHeader).
		if flagged[id] != seen[id] {
			t.Errorf("event %s: %d of its %d records carry %s", id, flagged[id], seen[id], SpooledHeader)
		}
	}
}

func countRecords(t *testing.T, dir string) (int, error) {
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	r, _, _ := sp.Stats()
	return int(r), nil
}

// TestStrictIntentRecovery: an intent without completion is produced at the
// next start as an incomplete event charged at its estimate, with the
// request's id; a completed one is not.
func TestStrictIntentRecovery(t *testing.T) {
	k := newFakeKafka(t)
	dir := t.TempDir()
	p, sp := newSpooledProducer(t, k.addr(), dir)
	g := event.NewIDGen()
	done := meteringEvent(g, 1)
	done.CostMicros = 700
	admit(t, p)
	in, err := p.Intent(done)
	if err != nil {
		t.Fatal(err)
	}
	done.Kind, done.CostMicros = event.KindUsage, 650
	p.Complete(in, done)
	lost := meteringEvent(g, 2)
	lost.CostMicros = 900
	admit(t, p)
	if _, err := p.Intent(lost); err != nil {
		t.Fatal(err)
	}
	// The process dies here: no completion, no usage event.
	p.Close(context.Background()) //nolint:errcheck
	sp.Close()
	p2, _ := newSpooledProducer(t, k.addr(), dir)
	defer p2.Close(context.Background()) //nolint:errcheck
	c, err := kgo.NewClient(kgo.SeedBrokers(k.addr()), kgo.ConsumeTopics("m"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[event.ID]event.Metering{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(got) < 2 && ctx.Err() == nil {
		c.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var e event.Metering
			if err := event.DecodeMetering(r.Value, &e); err == nil {
				got[e.ID] = e
			}
		})
	}
	if e := got[done.ID]; e.Kind != event.KindUsage || e.CostMicros != 650 {
		t.Fatalf("completed request: %+v", e)
	}
	if e := got[lost.ID]; e.Kind != event.KindIncomplete || e.CostMicros != 900 {
		t.Fatalf("orphan intent: kind %v cost %d", e.Kind, e.CostMicros)
	}
	// Nothing else: the completed intent was not charged again.
	pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
	defer pcancel()
	extra := 0
	c.PollFetches(pctx).EachRecord(func(*kgo.Record) { extra++ })
	if extra != 0 || len(got) != 2 {
		t.Fatalf("%d events, %d extra records", len(got), extra)
	}
}

func TestIntentWithoutSpoolFails(t *testing.T) {
	p, err := NewProducer(spoolConfig(t, "127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background()) //nolint:errcheck
	if _, err := p.Intent(meteringEvent(event.NewIDGen(), 1)); err != ErrNoSpool {
		t.Fatalf("err = %v", err)
	}
}

// TestStrictCompletionDurable: a completed strict request whose event had
// not reached Kafka when the process died is delivered as its usage event
// at the next start (never lost, never charged as incomplete).
func TestStrictCompletionDurable(t *testing.T) {
	k := newFakeKafka(t)
	dir := t.TempDir()
	k.stop()
	p, sp := newSpooledProducer(t, k.addr(), dir)
	e := meteringEvent(event.NewIDGen(), 3)
	e.CostMicros = 500
	admit(t, p)
	in, err := p.Intent(e)
	if err != nil {
		t.Fatal(err)
	}
	e.Kind, e.CostMicros = event.KindUsage, 420
	p.Complete(in, e)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.Close(ctx) //nolint:errcheck // the broker is down
	sp.Close()
	k.start()
	p2, _ := newSpooledProducer(t, k.addr(), dir)
	defer p2.Close(context.Background()) //nolint:errcheck
	seen := consumeAll(t, k.addr(), 1)
	if seen[e.ID] != 1 || len(seen) != 1 {
		t.Fatalf("delivered %v", seen)
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(k.addr()), kgo.ConsumeTopics("m"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	var got event.Metering
	c.PollFetches(pctx).EachRecord(func(r *kgo.Record) { event.DecodeMetering(r.Value, &got) }) //nolint:errcheck
	if got.Kind != event.KindUsage || got.CostMicros != 420 {
		t.Fatalf("delivered kind %v cost %d, want the usage event", got.Kind, got.CostMicros)
	}
}

// TestHasRoomFailsClosedWhenSpoolFull: with the brokers down, admission
// follows the spool; once it is full the gateway must refuse (503). Events
// admitted before the brokers counted as down wait in Kafka's buffer with
// their spool room set aside: at Close they go to the spool, and every
// admitted event is there, within the cap.
func TestHasRoomFailsClosedWhenSpoolFull(t *testing.T) {
	k := newFakeKafka(t)
	k.stop()
	p, err := NewProducer(spoolConfig(t, k.addr()))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(spool.Options{Dir: t.TempDir(), MaxBytes: 64 << 10, SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if err := p.UseSpool(sp, SpoolOptions{StallAfter: 200 * time.Millisecond, DrainEvery: time.Hour}); err != nil {
		t.Fatal(err)
	}
	closed := false
	closeProducer := func() {
		if closed {
			return
		}
		closed = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.Close(ctx) //nolint:errcheck // the broker is down: what is left is spooled
	}
	defer closeProducer()
	g := event.NewIDGen()
	admitted := 0
	for i := 0; i < 2000 && !p.BrokersDown(); i++ {
		if p.Admit() {
			p.Metering(meteringEvent(g, i))
			admitted++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !p.BrokersDown() {
		t.Fatal("brokers never reported down")
	}
	for i := 0; i < 5000 && p.Admit(); i++ {
		p.Metering(meteringEvent(g, i))
		admitted++
	}
	if p.HasRoom() || p.Admit() {
		t.Fatalf("still admitting after %d events into a 64 KiB spool", admitted)
	}
	if _, bytes, _ := sp.Stats(); bytes > 64<<10 {
		t.Fatalf("spool holds %d bytes over its cap", bytes)
	}
	closeProducer()
	records, bytes, _ := sp.Stats()
	t.Logf("%d events admitted; the spool holds %d records, %d bytes", admitted, records, bytes)
	if records != int64(admitted) || bytes > 64<<10 || p.Reserved() != 0 {
		t.Fatalf("%d events admitted; the spool holds %d records, %d bytes (cap %d), %d bytes still reserved",
			admitted, records, bytes, 64<<10, p.Reserved())
	}
	if p.Failed.Load() != 0 {
		t.Fatalf("%d events failed", p.Failed.Load())
	}
}
