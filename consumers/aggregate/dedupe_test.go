package aggregate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// tree is a root and a child under it; events are the child's, so every
// spend lands on both.
type tree struct{ root, child event.UUID }

func newTree(t testing.TB) tree { return tree{randUUID(t), randUUID(t)} }

func (tr tree) event(ids *event.IDGen, now time.Time, cost int64) event.Metering {
	e := event.Metering{ID: ids.New(now), TimeUnixUs: now.UnixMicro(), Kind: event.KindUsage, Agent: tr.child,
		Root: tr.root, Route: []byte("openai"), Model: []byte("m"), Gateway: []byte("gw-test"),
		CostMicros: cost, Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
	e.NumAncestors = copy(e.Ancestors[:], []event.UUID{tr.root})
	return e
}

// record is e as the gateway produces it: directly (no header) or from its
// spool (SpooledHeader).
func record(topic string, partition int32, e *event.Metering, spooledCopy bool) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: partition, Value: e.AppendJSON(nil)}
	if spooledCopy {
		r.Headers = []kgo.RecordHeader{{Key: SpooledHeader, Value: []byte(SpooledValue)}}
	}
	return r
}

type dedupeEnv struct {
	cfg              *config.Config
	store            *budget.Store
	pool             *pgxpool.Pool
	cl               *kgo.Client
	topic, dlq       string
	aggGroup, ledGrp string
	now              time.Time
}

func newDedupeEnv(t *testing.T) *dedupeEnv {
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	cfg.Kafka.Consumer.MaxPollRecords = 50
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	e := &dedupeEnv{cfg: cfg, store: budget.NewStore(rc), pool: testenv.PG(t),
		topic: testenv.Name("metering-"), dlq: testenv.Name("dlq-"),
		aggGroup: testenv.Name("agg-"), ledGrp: testenv.Name("led-"), now: time.Now()}
	e.cl = ctest.Topics(t, cfg, e.topic, e.dlq)
	return e
}

func (e *dedupeEnv) aggregator() *Aggregator {
	a := New(e.store, e.aggGroup)
	a.LedgerPool, a.LedgerGroup = e.pool, e.ledGrp
	a.pollMin, a.pollMax = 10*time.Millisecond, 100*time.Millisecond
	return a
}

func (e *dedupeEnv) aggOpts() runner.Options {
	return runner.Options{Name: "metrics", Group: e.aggGroup, Topics: []string{e.topic}, DLQTopic: e.dlq, MaxPollRecords: 50}
}

func (e *dedupeEnv) runLedger(t *testing.T, end int64) {
	t.Helper()
	ctest.Consume(t, e.cfg, ledger.NewWriter(e.pool, e.ledGrp),
		runner.Options{Name: "ledger", Group: e.ledGrp, Topics: []string{e.topic}, DLQTopic: e.dlq, MaxPollRecords: 50},
		func() bool { return ctest.CommittedOffsets(t, e.cl, e.ledGrp) == end })
}

// ledgerSum is the ledger's spend of agent (own and descendants': every
// event here is a child's, so a root's and its child's sums are equal).
func (e *dedupeEnv) ledgerSum(t *testing.T, tr tree) int64 {
	t.Helper()
	var sum int64
	if err := e.pool.QueryRow(context.Background(), `SELECT coalesce(sum(cost_micros), 0) FROM ledger WHERE root_id = $1`,
		[16]byte(tr.root)).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// spent returns the Redis total of agent in every window (failing if the
// windows disagree).
func (e *dedupeEnv) spent(t *testing.T, agent, root event.UUID) int64 {
	t.Helper()
	var first int64
	for i, w := range []control.Window{control.Hourly, control.Daily, control.Weekly, control.Monthly} {
		for _, rolling := range []bool{false, true} {
			got, err := e.store.Spent(context.Background(), agent, root, w, rolling, e.now)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 && !rolling {
				first = got
			} else if got != first {
				t.Fatalf("Redis %s (rolling %v) of %s = %d, hourly says %d", w, rolling, agent, got, first)
			}
		}
	}
	return first
}

// checkExact fails unless the Redis totals of tr's root and child equal the
// ledger's sum and want.
func (e *dedupeEnv) checkExact(t *testing.T, stage, name string, tr tree, want int64) {
	t.Helper()
	led := e.ledgerSum(t, tr)
	if led != want {
		t.Fatalf("%s, %s: ledger sum %d, want %d", stage, name, led, want)
	}
	for _, a := range []event.UUID{tr.root, tr.child} {
		if got := e.spent(t, a, tr.root); got != led {
			t.Fatalf("%s, %s: Redis total of %s = %d, ledger says %d", stage, name, a, got, led)
		}
	}
}

func (e *dedupeEnv) ledgerCopy(t *testing.T, id event.ID) (n int, partition int32, offset int64) {
	t.Helper()
	ctx := context.Background()
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM ledger WHERE event_id = $1`, [16]byte(id)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 1 {
		if err := e.pool.QueryRow(ctx, `SELECT src_partition, src_offset FROM ledger WHERE event_id = $1`, [16]byte(id)).Scan(&partition, &offset); err != nil {
			t.Fatal(err)
		}
	}
	return n, partition, offset
}

// TestSpooledDuplicatesAppliedOnce: (1) an event produced directly and
// again from the spool, (2) one produced twice from the spool, (3) one
// produced only from the spool (the direct produce had failed), among
// ordinary traffic. The ledger keeps one row each; the Redis totals equal
// the ledger's sums exactly; the duplicates move the fence; a replay of the
// topic changes nothing.
func TestSpooledDuplicatesAppliedOnce(t *testing.T) {
	e := newDedupeEnv(t)
	ids := event.NewIDGen()
	plain, direct, twice, once := newTree(t), newTree(t), newTree(t), newTree(t)
	e1 := direct.event(ids, e.now, 1_000_003)
	e2 := twice.event(ids, e.now, 2_000_011)
	e3 := once.event(ids, e.now, 3_000_017)
	var recs []*kgo.Record
	var plainSum int64
	add := func(n int) {
		for i := 0; i < n; i++ {
			pe := plain.event(ids, e.now, int64(100+len(recs)*7))
			plainSum += pe.CostMicros
			recs = append(recs, record(e.topic, int32(len(recs)%3), &pe, false))
		}
	}
	add(20)
	r1direct := record(e.topic, 0, &e1, false)
	r2first := record(e.topic, 1, &e2, true)
	r3 := record(e.topic, 2, &e3, true)
	recs = append(recs, r1direct, r2first, r3)
	add(20)
	r1spooled := record(e.topic, 0, &e1, true)
	r2second := record(e.topic, 1, &e2, true)
	recs = append(recs, r1spooled, r2second)
	add(20)
	ctest.Produce(t, e.cl, recs...)
	end := ctest.EndOffsets(t, e.cl, e.topic)

	e.runLedger(t, end)
	for _, c := range []struct {
		name string
		id   event.ID
		kept *kgo.Record
	}{{"direct then spooled", e1.ID, r1direct}, {"spooled twice", e2.ID, r2first}, {"spooled only", e3.ID, r3}} {
		n, p, o := e.ledgerCopy(t, c.id)
		if n != 1 || p != c.kept.Partition || o != c.kept.Offset {
			t.Fatalf("%s: ledger has %d rows, copy %d/%d, want 1 row, copy %d/%d", c.name, n, p, o, c.kept.Partition, c.kept.Offset)
		}
	}

	a := e.aggregator()
	ctest.Consume(t, e.cfg, a, e.aggOpts(), func() bool { return ctest.CommittedOffsets(t, e.cl, e.aggGroup) == end })
	check := func(stage string) {
		t.Helper()
		e.checkExact(t, stage, "direct then spooled", direct, e1.CostMicros)
		e.checkExact(t, stage, "spooled twice", twice, e2.CostMicros)
		e.checkExact(t, stage, "spooled only", once, e3.CostMicros)
		e.checkExact(t, stage, "plain", plain, plainSum)
	}
	check("first pass")
	if got := a.stats.skipped.Load(); got != 2 {
		t.Fatalf("skipped %d duplicates, want 2 (one of each duplicated event)", got)
	}
	if got := a.stats.checked.Load(); got != 4 {
		t.Fatalf("checked %d spooled records, want 4", got)
	}
	// The skipped copies still moved their tree's fence.
	for _, c := range []struct {
		tr  tree
		rec *kgo.Record
	}{{direct, r1spooled}, {twice, r2second}} {
		f, err := e.store.Fence(context.Background(), c.tr.root, e.aggGroup, e.topic, c.rec.Partition)
		if err != nil {
			t.Fatal(err)
		}
		if f != c.rec.Offset {
			t.Fatalf("fence of %s[%d] for the tree = %d, want the skipped copy's offset %d", e.topic, c.rec.Partition, f, c.rec.Offset)
		}
	}

	ctest.RewindGroup(t, e.cl, e.aggGroup, e.topic)
	ctest.Consume(t, e.cfg, e.aggregator(), e.aggOpts(), func() bool { return ctest.CommittedOffsets(t, e.cl, e.aggGroup) == end })
	check("after replay")
}

// TestWaitsForLedgerWriter (4): the aggregator meets spooled records while
// the ledger writer is not running: it waits and applies nothing of them;
// once the writer has run, the totals are exact.
func TestWaitsForLedgerWriter(t *testing.T) {
	e := newDedupeEnv(t)
	ids := event.NewIDGen()
	dup, only := newTree(t), newTree(t)
	e1 := dup.event(ids, e.now, 5_000_003)
	e2 := only.event(ids, e.now, 7_000_001)
	ctest.Produce(t, e.cl, record(e.topic, 0, &e1, false), record(e.topic, 0, &e1, true), record(e.topic, 1, &e2, true))
	end := ctest.EndOffsets(t, e.cl, e.topic)

	a := e.aggregator()
	r, err := runner.New(e.cfg, a, func() runner.Options {
		o := e.aggOpts()
		o.RetryMin, o.RetryMax = 10*time.Millisecond, 50*time.Millisecond
		return o
	}())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("runner: %v", err)
		}
		r.Close()
	}
	defer stop()

	// Waiting, and it has polled the ledger's offsets a few times since.
	for deadline := time.Now().Add(60 * time.Second); !a.stats.waiting.Load() || a.stats.polls.Load() < 5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator never waited for the ledger writer (waiting %v, %d polls)", a.stats.waiting.Load(), a.stats.polls.Load())
		}
	}
	if got := e.spent(t, only.root, only.root); got != 0 {
		t.Fatalf("while waiting: the spooled-only event is in Redis (%d)", got)
	}
	if got := e.spent(t, dup.root, dup.root); got != 0 && got != e1.CostMicros {
		t.Fatalf("while waiting: Redis total %d of the duplicated event, want 0 or one copy (%d)", got, e1.CostMicros)
	}
	if got := ctest.CommittedOffsets(t, e.cl, e.aggGroup); got == end {
		t.Fatal("while waiting: the aggregator committed every offset")
	}

	e.runLedger(t, end)
	for deadline := time.Now().Add(60 * time.Second); ctest.CommittedOffsets(t, e.cl, e.aggGroup) != end; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the aggregator did not finish after the ledger writer ran")
		}
	}
	stop()
	if a.stats.waiting.Load() {
		t.Fatal("the aggregator still reports waiting")
	}
	e.checkExact(t, "after the ledger writer ran", "direct then spooled", dup, e1.CostMicros)
	e.checkExact(t, "after the ledger writer ran", "spooled only", only, e2.CostMicros)
	if got := a.stats.skipped.Load(); got != 1 {
		t.Fatalf("skipped %d duplicates, want 1", got)
	}
}

// TestWithoutLedgerPool (5): records without the header are applied by an
// aggregator that has no database at all; a spooled record makes the batch
// fail (retried, never applied unchecked). With a database whose ledger
// writer never ran, the wait ends with the context, nothing applied.
func TestWithoutLedgerPool(t *testing.T) {
	cfg := testenv.Config(t)
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	store := budget.NewStore(rc)
	ctx := context.Background()
	now := time.Now()
	ids := event.NewIDGen()
	tr := newTree(t)
	topic, group := testenv.Name("metering-"), testenv.Name("agg-")
	a := New(store, group)
	spent := func() int64 {
		t.Helper()
		got, err := store.Spent(ctx, tr.child, tr.root, control.Daily, false, now)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	var want int64
	a.Begin()
	for i := int64(0); i < 10; i++ {
		ev := tr.event(ids, now, 1000+i)
		want += ev.CostMicros
		r := record(topic, 0, &ev, false)
		r.Offset = i
		if i == 3 { // other headers are not the flag
			r.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("x")}, {Key: SpooledHeader, Value: []byte("0")}}
		}
		if err := a.Decode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.HandleBatch(ctx, &runner.Batch{}); err != nil {
		t.Fatalf("unflagged batch without a database: %v", err)
	}
	if got := spent(); got != want {
		t.Fatalf("Redis total %d, want %d", got, want)
	}

	flaggedBatch := func(a *Aggregator, offset int64) {
		t.Helper()
		a.Begin()
		ev := tr.event(ids, now, 999_999)
		r := record(topic, 0, &ev, true)
		r.Offset = offset
		if err := a.Decode(r); err != nil {
			t.Fatal(err)
		}
	}
	flaggedBatch(a, 10)
	for range 2 { // and again, as the runner retries it
		if err := a.HandleBatch(ctx, &runner.Batch{}); !errors.Is(err, errNoLedger) {
			t.Fatalf("spooled record without a database: err %v, want errNoLedger", err)
		}
	}
	if got := spent(); got != want {
		t.Fatalf("after the refused batch: Redis total %d, want %d", got, want)
	}
	if f, err := store.Fence(ctx, tr.root, group, topic, 0); err != nil || f != 9 {
		t.Fatalf("fence %d (err %v), want 9", f, err)
	}

	// A database whose ledger writer has stored nothing: the batch waits
	// until its context ends.
	b := New(store, group)
	b.LedgerPool, b.LedgerGroup = testenv.PG(t), testenv.Name("led-")
	b.pollMin, b.pollMax = 10*time.Millisecond, 50*time.Millisecond
	flaggedBatch(b, 10)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- b.HandleBatch(wctx, &runner.Batch{}) }()
	for deadline := time.Now().Add(30 * time.Second); !b.stats.waiting.Load() || b.stats.polls.Load() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the aggregator did not wait for the ledger writer")
		}
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("wait ended with %v, want context.Canceled", err)
	}
	if b.stats.waiting.Load() || waitingNow.Load() != 0 {
		t.Fatal("still reported waiting after the wait ended")
	}
	if got := spent(); got != want {
		t.Fatalf("after the abandoned wait: Redis total %d, want %d", got, want)
	}
}

// TestLedgerRowsDecide drives HandleBatch on rows written by hand: a
// spooled record the ledger kept is applied, one whose copy the ledger took
// from another offset is not (also when the ledger row's ts is not the
// record's, found by seq), and one the ledger never stored is applied.
func TestLedgerRowsDecide(t *testing.T) {
	cfg := testenv.Config(t)
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	store := budget.NewStore(rc)
	pool := testenv.PG(t)
	ctx := context.Background()
	now := time.Now()
	ids := event.NewIDGen()
	topic, group, ledGroup := testenv.Name("metering-"), testenv.Name("agg-"), testenv.Name("led-")
	if _, err := pool.Exec(ctx, `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, 0, 100)`,
		ledGroup, topic); err != nil {
		t.Fatal(err)
	}
	kept, other, otherTs, absent := newTree(t), newTree(t), newTree(t), newTree(t)
	type rec struct {
		tr         tree
		cost       int64
		offset     int64
		ledgerOff  int64 // -1: no ledger row
		ledgerTime time.Time
		want       int64
	}
	recs := []rec{
		{kept, 11, 10, 10, now, 11},
		{other, 13, 11, 3, now, 0},
		{otherTs, 17, 12, 4, now.AddDate(0, -1, 0), 0},
		{absent, 19, 13, -1, now, 19},
	}
	if _, err := pool.Exec(ctx, `SELECT ledger_ensure_partitions(now() - interval '2 months', now(), 1)`); err != nil {
		t.Fatal(err)
	}
	a := New(store, group)
	a.LedgerPool, a.LedgerGroup = pool, ledGroup
	a.Begin()
	for i, r := range recs {
		ev := r.tr.event(ids, now, r.cost)
		kr := record(topic, 0, &ev, true)
		kr.Offset = r.offset
		if err := a.Decode(kr); err != nil {
			t.Fatal(err)
		}
		if r.ledgerOff < 0 {
			continue
		}
		if _, err := pool.Exec(ctx, `INSERT INTO ledger_ids VALUES ($1, $2)`, [16]byte(ev.ID), i); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO ledger (seq, event_id, ts, kind, agent_id, root_id, route, model,
			request_id, gateway, input_tokens, output_tokens, cost_micros, reserved_micros, currency, status,
			latency_us, pricing, src_partition, src_offset)
			VALUES ($1, $2, $3, 1, $4, $5, '', '', '', '', 0, 0, $6, 0, 'USD', 200, 0, 1, 0, $7)`,
			i, [16]byte(ev.ID), r.ledgerTime, [16]byte(ev.Agent), [16]byte(ev.Root), r.cost, r.ledgerOff); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.HandleBatch(ctx, &runner.Batch{}); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		got, err := store.Spent(ctx, r.tr.child, r.tr.root, control.Daily, false, now)
		if err != nil {
			t.Fatal(err)
		}
		if got != r.want {
			t.Fatalf("record %d: Redis total %d, want %d", i, got, r.want)
		}
		f, err := store.Fence(ctx, r.tr.root, group, topic, 0)
		if err != nil || f != r.offset {
			t.Fatalf("record %d: fence %d (err %v), want %d", i, f, err, r.offset)
		}
	}
	if s := a.stats.skipped.Load(); s != 2 {
		t.Fatalf("skipped %d, want 2", s)
	}
}
