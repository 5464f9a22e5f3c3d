package budget

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// aggregator stands in for the MetricsAggregator: it applies settled spends
// in batches with increasing offsets, and replays every third batch.
type aggregator struct {
	s       *Store
	in      chan Spend
	done    chan error
	applied atomic.Int64
}

func startAggregator(s *Store) *aggregator {
	a := &aggregator{s: s, in: make(chan Spend, 4096), done: make(chan error, 1)}
	go a.run()
	return a
}

func (a *aggregator) run() {
	ctx := context.Background()
	var off int64
	var batch []Spend
	flush := func(n int) error {
		if len(batch) == 0 {
			return nil
		}
		if err := a.s.ApplyBatch(ctx, "metrics", "caracal.metering.events", 0, batch); err != nil {
			return err
		}
		if n%3 == 0 {
			if err := a.s.ApplyBatch(ctx, "metrics", "caracal.metering.events", 0, batch); err != nil {
				return err
			}
		}
		a.applied.Add(int64(len(batch)))
		batch = batch[:0]
		return nil
	}
	for n := 0; ; n++ {
		sp, ok := <-a.in
		if !ok {
			a.done <- flush(n)
			return
		}
		off++
		sp.Offset = off
		batch = append(batch, sp)
		for len(batch) < 64 {
			select {
			case sp, ok = <-a.in:
				if !ok {
					a.done <- flush(n)
					return
				}
				off++
				sp.Offset = off
				batch = append(batch, sp)
				continue
			default:
			}
			break
		}
		if err := flush(n); err != nil {
			a.done <- err
			return
		}
	}
}

func TestBudgetRace(t *testing.T) {
	addr := testenv.RedisAddr(t)
	const (
		parentDaily  = 100_000
		parentHourly = 90_000 // rolling: the tightest window
		childDaily   = 30_000 // binds before the parent
		leaseSize    = 5_000
	)
	tr := newTree(nil,
		[]control.Policy{pol(parentDaily, control.Daily, false), pol(parentHourly, control.Hourly, true)},
		[]control.Policy{pol(childDaily, control.Daily, false), pol(200_000, control.Monthly, true)},
		[]control.Policy{pol(200_000, control.Weekly, false)})
	stores := []*Store{NewStore(redisClient(t, addr)), NewStore(redisClient(t, addr))}
	opt := LeaserOptions{LeaseSize: leaseSize, LowWater: 2000, DenyFor: 5 * time.Millisecond, IdleTimeout: time.Hour}
	leasers := make([]*Leaser, 2)
	for i := range leasers {
		o := opt
		o.Owner = testenv.Name("gw")
		leasers[i] = newLeaser(t, stores[i], tr, o)
	}
	agg := startAggregator(NewStore(redisClient(t, addr)))

	var (
		mu                              sync.Mutex
		actual                          = map[event.UUID]int64{}
		overshoot                       = map[event.UUID]int64{}
		granted, exhausted, unavailable atomic.Int64
	)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			l := leasers[g%2]
			for range 150 {
				a := tr.child
				if rng.IntN(2) == 0 {
					a = tr.sibling
				}
				est := 1 + rng.Int64N(1000)
				tk, st := l.Take(a, est)
				switch st.Code {
				case Exhausted:
					exhausted.Add(1)
					continue
				case Unavailable:
					unavailable.Add(1)
					continue
				}
				granted.Add(1)
				cost := est * (50 + rng.Int64N(71)) / 100 // 50%..120% of the estimate
				charged := l.Settle(tk, cost)
				mu.Lock()
				actual[a.ID] += cost
				overshoot[a.ID] += max(cost-est, 0)
				mu.Unlock()
				agg.in <- tr.spend(a, cost, charged, l.Owner(), t0, 0)
			}
		}()
	}
	wg.Wait()
	for _, l := range leasers {
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	close(agg.in)
	if err := <-agg.done; err != nil {
		t.Fatal(err)
	}
	t.Logf("child %d sibling %d, granted %d, exhausted %d, unavailable %d, round trips %d+%d, applied %d",
		actual[tr.child.ID], actual[tr.sibling.ID], granted.Load(), exhausted.Load(), unavailable.Load(), leasers[0].RoundTrips.Load(), leasers[1].RoundTrips.Load(), agg.applied.Load())

	s := stores[0]
	total := actual[tr.child.ID] + actual[tr.sibling.ID]
	over := overshoot[tr.child.ID] + overshoot[tr.sibling.ID]
	if unavailable.Load() != 0 {
		t.Fatalf("%d requests answered unavailable with Redis up", unavailable.Load())
	}
	checks := []struct {
		name    string
		a       *control.Agent
		w       control.Window
		rolling bool
		limit   int64
		want    int64
		bound   int64
	}{
		{"parent daily", tr.parent, control.Daily, false, parentDaily, total, over},
		{"parent rolling hourly", tr.parent, control.Hourly, true, parentHourly, total, over},
		{"root daily (no limit)", tr.root, control.Daily, false, MaxLimitMicros, total, over},
		{"child daily", tr.child, control.Daily, false, childDaily, actual[tr.child.ID], overshoot[tr.child.ID]},
		{"sibling weekly", tr.sibling, control.Weekly, false, 200_000, actual[tr.sibling.ID], overshoot[tr.sibling.ID]},
	}
	for _, c := range checks {
		got := mustSpent(t, s, c.a, c.w, c.rolling, t0)
		if got != c.want {
			t.Errorf("%s: committed %d, want the sum of actual costs %d", c.name, got, c.want)
		}
		if got > c.limit+c.bound {
			t.Errorf("%s: committed %d passes limit %d + overshoot bound %d", c.name, got, c.limit, c.bound)
		}
	}
	for _, a := range []*control.Agent{tr.root, tr.parent, tr.child, tr.sibling} {
		if r := mustReserved(t, s, a); r != 0 {
			t.Errorf("reserved of %s = %d after close and aggregation, want 0", a.ID, r)
		}
	}
	// The budget was really spent: what is left unspent is at most what
	// leases held when the denials came, not a lucky short run.
	if exhausted.Load() == 0 || total < parentHourly-4*leaseSize || actual[tr.child.ID] < childDaily-4*leaseSize {
		t.Fatalf("spent %d of %d (child %d of %d) with %d denials: the race never reached the limits",
			total, parentHourly, actual[tr.child.ID], childDaily, exhausted.Load())
	}
}
