package recovery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// holder is one gateway's side of the budget: a Leaser, its ready-key
// watcher and the metering events it produced.
type holder struct {
	l     *budget.Leaser
	ready atomic.Bool
	owner string
}

func (e *env) holder(owner string) *holder {
	h := &holder{owner: owner}
	l, err := budget.NewLeaser(e.store, budget.LeaserOptions{Owner: owner, LeaseSize: 30_000, LeaseTTL: time.Minute, MinGrant: 1, LowWater: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	h.l = l
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		budget.WatchReady(ctx, e.store.Client(), e.readyKey, 10*time.Millisecond, l, &h.ready)
		close(done)
	}()
	e.t.Cleanup(func() { cancel(); <-done; _ = l.Close(context.Background()) })
	return h
}

// charge is one settled request: the metering event the gateway produces.
func (e *env) charge(h *holder, a *control.Agent, cost, reserved int64) *kgo.Record {
	now := time.Now()
	m := event.Metering{ID: e.ids.New(now), TimeUnixUs: now.UnixMicro(), Kind: event.KindUsage, Agent: a.ID, Root: a.Root,
		Route: []byte("openai"), Model: []byte("m"), Gateway: []byte(h.owner), CostMicros: cost, ReservedMicros: reserved,
		Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
	m.NumAncestors = copy(m.Ancestors[:], a.Ancestors)
	return &kgo.Record{Topic: e.topic, Key: a.ID[:], Value: m.AppendJSON(nil)}
}

// spendN takes and settles n requests of cost each from h.
func (e *env) spendN(h *holder, a *control.Agent, n int, cost int64) []*kgo.Record {
	var recs []*kgo.Record
	for i := range n {
		tk, st := h.l.Take(a, cost)
		if st.Code != budget.OK {
			e.t.Fatalf("%s take %d: %+v", h.owner, i, st)
		}
		recs = append(recs, e.charge(h, a, cost, h.l.Settle(tk, cost)))
	}
	return recs
}

// flushTree deletes every key of the tree and the ready key, as a Redis
// restarted without its data has them (only the keys this test owns).
func (e *env) flushTree() {
	ctx := context.Background()
	c := e.store.Client()
	pattern := "cr:{" + e.root.String() + "}:*"
	for cursor, i := uint64(0), 0; i < 10_000; i++ {
		se, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
		if err != nil {
			e.t.Fatal(err)
		}
		if len(se.Elements) > 0 {
			if err := c.Do(ctx, c.B().Del().Key(se.Elements...).Build()).Error(); err != nil {
				e.t.Fatal(err)
			}
		}
		if cursor = se.Cursor; cursor == 0 {
			break
		}
	}
	if err := ClearReady(ctx, c, e.readyKey); err != nil {
		e.t.Fatal(err)
	}
}

func waitReady(t *testing.T, want bool, hs ...*holder) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ok := true
		for _, h := range hs {
			ok = ok && h.ready.Load() == want
		}
		if ok {
			return
		}
	}
	t.Fatalf("the gateways did not see the budget store ready=%v within 30s", want)
}

// TestStoreLossLeasesInFlight: two gateways hold leases when Redis loses
// its data; the reconcile rebuilds the totals from the ledger, reserves
// again what the events in Kafka above them charged, and the gateways,
// seeing the new generation of the ready key, drop their leases and
// reserve again. Spending to the limit from both afterwards charges at most
// the limit plus the documented bound (docs/budget.md, case 4: what a
// gateway charged before the loss whose events had not reached Kafka).
// Gateways that kept their old leases would spend them on top of a full
// new grant; without the restored reservations the charges in Kafka would
// pass the limit too.
func TestStoreLossLeasesInFlight(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const limit, cost = 100_000, 1000
	child := &control.Agent{ID: e.child, Root: e.root, Ancestors: []event.UUID{e.root}, Active: true,
		Policies: []control.Policy{{LimitMicros: limit, Window: control.Daily}}}
	if err := MarkReady(ctx, e.store.Client(), e.readyKey); err != nil {
		t.Fatal(err)
	}
	a, b := e.holder("gw-a"), e.holder("gw-b")
	waitReady(t, true, a, b)

	// Before the loss: 20 requests applied; gateway a charges 5 more whose
	// events are in Kafka but not applied, 2 whose events are still in its
	// producer, and has one request in flight.
	ctest.Produce(t, e.cl, append(e.spendN(a, child, 10, cost), e.spendN(b, child, 10, cost)...)...)
	e.runLedger()
	e.runAggregator(false)
	ctest.Produce(t, e.cl, e.spendN(a, child, 5, cost)...)
	inProducer := e.spendN(a, child, 2, cost)
	inflight, st := a.l.Take(child, 2*cost)
	if st.Code != budget.OK {
		t.Fatalf("take in flight: %+v", st)
	}
	if r, _ := e.store.Reserved(ctx, child.ID, child.Root); r != 40_000 {
		t.Fatalf("reserved before the loss = %d, want two leases of 30000 less the 10000 each applied", r)
	}

	e.flushTree()
	waitReady(t, false, a, b)
	if _, st := b.l.Take(child, 25_000); st.Code == budget.OK {
		t.Fatal("a lease was refilled while the totals were missing")
	}
	opt := e.reconcileOptions()
	opt.Kafka = e.cfg
	rep, err := Reconcile(ctx, e.pool, e.store, e.adm, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 20 || rep.Pending != 5 || rep.PendingLeases != 1 || rep.PendingMicros != 5*cost {
		t.Fatalf("reconciled %d ledger entries, restored %d leases of %d micro-units from %d events; want 20, 1, %d, 5",
			rep.Entries, rep.PendingLeases, rep.PendingMicros, rep.Pending, 5*cost)
	}
	if r, _ := e.store.Reserved(ctx, child.ID, child.Root); r != 5*cost {
		t.Fatalf("reserved after the reconcile = %d, want the %d charged in Kafka", r, 5*cost)
	}
	waitReady(t, true, a, b)
	if a.l.Resets.Load() == 0 || b.l.Resets.Load() == 0 {
		t.Fatalf("leases not dropped on the new generation: resets a %d b %d", a.l.Resets.Load(), b.l.Resets.Load())
	}

	// After the loss: the producer delivers, the request in flight ends,
	// then both gateways spend until the budget denies them.
	recs := append(inProducer, e.charge(a, child, 2*cost, a.l.Settle(inflight, 2*cost)))
	denied := map[*holder]bool{}
	for i := 0; i < 400 && len(denied) < 2; i++ {
		h := [2]*holder{a, b}[i%2]
		tk, st := h.l.Take(child, cost)
		switch st.Code {
		case budget.OK:
			recs = append(recs, e.charge(h, child, cost, h.l.Settle(tk, cost)))
		case budget.Exhausted:
			denied[h] = true
		default:
			t.Fatalf("%s: take = %+v", h.owner, st)
		}
	}
	if len(denied) < 2 {
		t.Fatal("400 requests did not reach the limit from both gateways")
	}
	ctest.Produce(t, e.cl, recs...)
	e.runLedger()
	e.runAggregator(false)

	// Bound: what gateway a charged before the loss whose events had not
	// reached Kafka when the reconcile ran (2 requests).
	bound := int64(len(inProducer)) * cost
	charged := e.ledgerSum(e.child, time.Now().Add(-25*time.Hour))
	t.Logf("limit %d, charged %d (bound %d)", limit, charged, bound)
	if charged > limit+bound {
		t.Fatalf("charged %d > limit %d + bound %d", charged, limit, bound)
	}
	if charged < limit-2*cost {
		t.Fatalf("charged %d: the gateways stopped well below the limit %d", charged, limit)
	}
	if got := e.spent(time.Now())[e.child.String()+"/daily/calendar"]; got != charged {
		t.Fatalf("Redis daily total %d != ledger %d", got, charged)
	}
}
