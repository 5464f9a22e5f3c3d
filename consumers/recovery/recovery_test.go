package recovery

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/aggregate"
	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// env is a metering topic with a ledger writer and an aggregator against
// the real services, and a three-level tree of agents.
type env struct {
	t                       *testing.T
	cfg                     *config.Config
	pool                    *pgxpool.Pool
	store                   *budget.Store
	cl                      *kgo.Client
	adm                     *kadm.Client
	topic, dlq              string
	aggGroup, ledGroup      string
	readyKey                string
	root, child, grandchild event.UUID
	ids                     *event.IDGen
	produced                int
}

func newEnv(t *testing.T) *env {
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Redis.Addrs = []string{testenv.RedisAddr(t)}
	cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	cfg.Kafka.Consumer.MaxPollRecords = 40
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	e := &env{t: t, cfg: cfg, pool: testenv.PG(t), store: budget.NewStore(rc), topic: testenv.Name("metering-"), dlq: testenv.Name("dlq-"),
		aggGroup: testenv.Name("agg-"), ledGroup: testenv.Name("led-"), readyKey: testenv.Name("cr:test:ready:"), ids: event.NewIDGen()}
	e.cl = ctest.Topics(t, cfg, e.topic, e.dlq)
	e.adm = kadm.NewClient(e.cl)
	e.root = e.agent(testenv.Name("org-"), nil)
	e.child = e.agent(testenv.Name("team-"), &e.root)
	e.grandchild = e.agent(testenv.Name("bot-"), &e.child)
	return e
}

func (e *env) agent(name string, parent *event.UUID) event.UUID {
	var id [16]byte
	var p any
	if parent != nil {
		p = [16]byte(*parent)
	}
	if err := e.pool.QueryRow(context.Background(), `INSERT INTO agents (name, parent_id) VALUES ($1, $2) RETURNING id`, name, p).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return event.UUID(id)
}

// produce writes n events spread over the tree, at times over the last 3 hours
// (minute, hour and day buckets all matter).
func (e *env) produce(n int) {
	chains := [][]event.UUID{{e.root}, {e.child, e.root}, {e.grandchild, e.child, e.root}}
	now := time.Now()
	var recs []*kgo.Record
	for i := range n {
		chain := chains[i%3]
		at := now.Add(-time.Duration((i*7)%180) * time.Minute)
		m := event.Metering{ID: e.ids.New(at), TimeUnixUs: at.UnixMicro(), Kind: event.KindUsage, Agent: chain[0],
			Root: e.root, Route: []byte("openai"), Model: []byte("m"), Gateway: []byte("gw-test"),
			CostMicros: int64(100 + (e.produced+i)*7), Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
		m.NumAncestors = copy(m.Ancestors[:], chain[1:])
		recs = append(recs, &kgo.Record{Topic: e.topic, Partition: int32(i % 3), Value: m.AppendJSON(nil)})
	}
	e.produced += n
	ctest.Produce(e.t, e.cl, recs...)
}

func (e *env) runLedger() {
	end := ctest.EndOffsets(e.t, e.cl, e.topic)
	ctest.Consume(e.t, e.cfg, ledger.NewWriter(e.pool, e.ledGroup),
		runner.Options{Name: "ledger", Group: e.ledGroup, Topics: []string{e.topic}, DLQTopic: e.dlq, MaxPollRecords: 40},
		func() bool { return ctest.CommittedOffsets(e.t, e.cl, e.ledGroup) == end })
}

func (e *env) runAggregator(auto bool) {
	end := ctest.EndOffsets(e.t, e.cl, e.topic)
	a := aggregate.New(e.store, e.aggGroup)
	if auto {
		ar := &AutoReconciler{Pool: e.pool, Store: e.store, Admin: e.adm, Opt: e.reconcileOptions(), CheckEvery: time.Nanosecond}
		a.Guard = ar.Guard
	}
	ctest.Consume(e.t, e.cfg, a, runner.Options{Name: "metrics", Group: e.aggGroup, Topics: []string{e.topic}, DLQTopic: e.dlq, MaxPollRecords: 40},
		func() bool { return ctest.CommittedOffsets(e.t, e.cl, e.aggGroup) == end })
}

func (e *env) reconcileOptions() ReconcileOptions {
	return ReconcileOptions{Topic: e.topic, Group: e.aggGroup, LedgerGroup: e.ledGroup, Roots: []event.UUID{e.root},
		ReadyKey: e.readyKey, Wait: 30 * time.Second}
}

var windows = []struct {
	w       control.Window
	rolling bool
}{{control.Hourly, false}, {control.Hourly, true}, {control.Daily, false}, {control.Daily, true},
	{control.Weekly, false}, {control.Weekly, true}, {control.Monthly, false}, {control.Monthly, true}}

// spent reads every window of every agent of the tree.
func (e *env) spent(now time.Time) map[string]int64 {
	out := map[string]int64{}
	for _, a := range []event.UUID{e.root, e.child, e.grandchild} {
		for _, w := range windows {
			v, err := e.store.Spent(context.Background(), a, e.root, w.w, w.rolling, now)
			if err != nil {
				e.t.Fatal(err)
			}
			out[a.String()+"/"+w.w.String()+"/"+map[bool]string{true: "rolling", false: "calendar"}[w.rolling]] = v
		}
	}
	return out
}

// ledgerSum is the subtree's ledger spend since from.
func (e *env) ledgerSum(agent event.UUID, from time.Time) int64 {
	var v int64
	err := e.pool.QueryRow(context.Background(), `
		WITH RECURSIVE sub(id) AS (SELECT $1::uuid UNION ALL SELECT a.id FROM agents a JOIN sub ON a.parent_id = sub.id)
		SELECT coalesce(sum(cost_micros), 0) FROM ledger WHERE agent_id IN (SELECT id FROM sub) AND ts >= $2`, [16]byte(agent), from).Scan(&v)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func equalTotals(t *testing.T, stage string, got, want map[string]int64) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s = %d, want %d", stage, k, got[k], w)
		}
	}
}

// TestReconcileAfterRedisLoss: the tree's totals are lost, reconcile rebuilds
// them equal to the undisturbed ones and to the ledger sums, and the
// aggregator continues after the fences without counting twice.
func TestReconcileAfterRedisLoss(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produce(120)
	e.runLedger()
	e.runAggregator(false)
	now := time.Now()
	undisturbed := e.spent(now)
	// The rolling daily window of each agent covers the whole 3 hours.
	for _, a := range []event.UUID{e.root, e.child, e.grandchild} {
		if got, want := undisturbed[a.String()+"/daily/rolling"], e.ledgerSum(a, now.Add(-25*time.Hour)); got != want || want == 0 {
			t.Fatalf("before the loss: Redis %d, ledger %d", got, want)
		}
	}
	if err := e.store.Reset(ctx, e.root); err != nil { // the loss
		t.Fatal(err)
	}
	if got := e.spent(now)[e.root.String()+"/daily/rolling"]; got != 0 {
		t.Fatalf("spend after the loss = %d", got)
	}
	rep, err := Reconcile(ctx, e.pool, e.store, e.adm, e.reconcileOptions())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 120 || rep.Roots != 1 {
		t.Fatalf("report %+v", rep)
	}
	equalTotals(t, "after reconcile", e.spent(now), undisturbed)
	if ok, _ := IsReady(ctx, e.store.Client(), e.readyKey); !ok {
		t.Fatal("reconcile did not set the ready key")
	}
	// New events: the aggregator resumes after the fences.
	e.produce(30)
	e.runLedger()
	e.runAggregator(false)
	now = time.Now()
	for _, a := range []event.UUID{e.root, e.child, e.grandchild} {
		if got, want := e.spent(now)[a.String()+"/daily/rolling"], e.ledgerSum(a, now.Add(-25*time.Hour)); got != want {
			t.Fatalf("after resuming: Redis %d, ledger %d", got, want)
		}
	}
}

// TestAutoReconcileInAggregator: with the ready key gone the aggregator
// rebuilds the totals before its next batch.
func TestAutoReconcileInAggregator(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produce(90)
	e.runLedger()
	e.runAggregator(false)
	if err := MarkReady(ctx, e.store.Client(), e.readyKey); err != nil {
		t.Fatal(err)
	}
	// Redis restarts empty (for this tree and the ready key).
	if err := e.store.Reset(ctx, e.root); err != nil {
		t.Fatal(err)
	}
	if err := ClearReady(ctx, e.store.Client(), e.readyKey); err != nil {
		t.Fatal(err)
	}
	e.produce(60)
	e.runLedger()
	e.runAggregator(true)
	now := time.Now()
	for _, a := range []event.UUID{e.root, e.child, e.grandchild} {
		got := e.spent(now)
		for _, w := range []string{"daily/rolling", "weekly/rolling", "monthly/rolling"} {
			if want := e.ledgerSum(a, now.Add(-25*time.Hour)); got[a.String()+"/"+w] != want {
				t.Fatalf("%s %s: Redis %d, ledger %d", a, w, got[a.String()+"/"+w], want)
			}
		}
	}
	if ok, _ := IsReady(ctx, e.store.Client(), e.readyKey); !ok {
		t.Fatal("ready key not set by the aggregator")
	}
}

// TestAutoReconcileWhileIdle: with no traffic (gateways fail closed without
// the ready key, so none comes) the aggregator's Run rebuilds the totals.
func TestAutoReconcileWhileIdle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produce(60)
	e.runLedger()
	e.runAggregator(false)
	now := time.Now()
	undisturbed := e.spent(now)
	if err := e.store.Reset(ctx, e.root); err != nil {
		t.Fatal(err)
	}
	if err := ClearReady(ctx, e.store.Client(), e.readyKey); err != nil {
		t.Fatal(err)
	}
	ar := &AutoReconciler{Pool: e.pool, Store: e.store, Admin: e.adm, Opt: e.reconcileOptions(), CheckEvery: 50 * time.Millisecond}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { ar.Run(rctx); close(done) }() //nolint:errcheck
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok, _ := IsReady(ctx, e.store.Client(), e.readyKey); ok {
			break
		}
	}
	equalTotals(t, "after the idle reconcile", e.spent(now), undisturbed)
}
