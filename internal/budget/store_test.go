package budget

import (
	"context"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

var t0 = time.Date(2026, 3, 4, 12, 30, 0, 0, time.UTC)

func (tr *tree) reserve(t *testing.T, s *Store, who string, agentChain []Link, req, minGrant int64, now time.Time) Grant {
	t.Helper()
	g, err := s.Reserve(context.Background(), &ReserveRequest{Root: tr.root.ID, Chain: agentChain, Owner: who,
		Requested: req, MinGrant: minGrant, LeaseTTL: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestReserveHierarchy(t *testing.T) {
	s := newStore(t)
	// The root has no policy (limitless); the parent is tighter than the child.
	tr := newTree(nil, []control.Policy{pol(1000, control.Daily, false)},
		[]control.Policy{pol(5000, control.Daily, false), pol(9000, control.Monthly, true)}, nil)
	g := tr.reserve(t, s, "gw1", tr.chain(tr.child), 800, 1, t0)
	if g.Granted != 800 || g.Headroom != 1000 || g.Bound != tr.parent.ID || g.Held || g.Lease != 800 {
		t.Fatalf("child grant = %+v", g)
	}
	g = tr.reserve(t, s, "gw1", tr.chain(tr.sibling), 800, 1, t0)
	if g.Granted != 200 || g.Bound != tr.parent.ID || g.BoundPolicy.Window != control.Daily {
		t.Fatalf("sibling grant = %+v, want 200 bound by the parent", g)
	}
	g = tr.reserve(t, s, "gw2", tr.chain(tr.child), 100, 1, t0)
	if g.Granted != 0 || g.Headroom != 0 {
		t.Fatalf("grant past the parent's limit = %+v", g)
	}
	for _, c := range []struct {
		a    *control.Agent
		want int64
	}{{tr.child, 800}, {tr.sibling, 200}, {tr.parent, 1000}, {tr.root, 1000}} {
		if got := mustReserved(t, s, c.a); got != c.want {
			t.Fatalf("reserved of %s = %d, want %d", c.a.ID, got, c.want)
		}
	}
	// A minimum grant refuses a smaller remainder.
	tr2 := newTree(nil, []control.Policy{pol(1000, control.Daily, false)}, nil, nil)
	if g := tr2.reserve(t, s, "gw1", tr2.chain(tr2.child), 700, 1, t0); g.Granted != 700 {
		t.Fatalf("grant = %+v", g)
	}
	if g := tr2.reserve(t, s, "gw1", tr2.chain(tr2.sibling), 700, 400, t0); g.Granted != 0 || g.Headroom != 300 {
		t.Fatalf("grant under the minimum = %+v", g)
	}
}

func TestReserveLimitless(t *testing.T) {
	s := newStore(t)
	tr := newTree(nil, nil, nil, nil)
	g := tr.reserve(t, s, "gw1", tr.chain(tr.child), 1<<40, 1, t0)
	if g.Granted != 1<<40 || !g.Unlimited {
		t.Fatalf("limitless grant = %+v", g)
	}
	tr.policies[tr.root.ID] = []control.Policy{pol(MaxLimitMicros+1, control.Daily, false)}
	if _, err := s.Reserve(context.Background(), &ReserveRequest{Root: tr.root.ID, Chain: tr.chain(tr.child), Owner: "gw1",
		Requested: 1, LeaseTTL: time.Minute, Now: t0}); err == nil {
		t.Fatal("a limit above MaxLimitMicros was accepted")
	}
}

func TestReleaseAndAggregate(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	tr := newTree(nil, []control.Policy{pol(10_000, control.Daily, false)}, nil, nil)
	// Aggregated before the release.
	if g := tr.reserve(t, s, "gw1", tr.chain(tr.child), 1000, 1, t0); g.Granted != 1000 {
		t.Fatalf("grant = %+v", g)
	}
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{tr.spend(tr.child, 300, 300, "gw1", t0, 1)}); err != nil {
		t.Fatal(err)
	}
	if r, c := mustReserved(t, s, tr.parent), mustSpent(t, s, tr.parent, control.Daily, false, t0); r != 700 || c != 300 {
		t.Fatalf("reserved %d committed %d, want 700 and 300", r, c)
	}
	if n, err := s.Release(ctx, tr.root.ID, tr.child.ID, "gw1", 700, time.Minute); err != nil || n != 700 {
		t.Fatalf("release = %d, %v", n, err)
	}
	if r := mustReserved(t, s, tr.parent); r != 0 {
		t.Fatalf("reserved after release = %d", r)
	}
	// Released before aggregated: the charged part stays reserved.
	if g := tr.reserve(t, s, "gw1", tr.chain(tr.sibling), 1000, 1, t0); g.Granted != 1000 || g.Headroom != 9700 {
		t.Fatalf("grant = %+v", g)
	}
	if n, err := s.Release(ctx, tr.root.ID, tr.sibling.ID, "gw1", 600, time.Minute); err != nil || n != 600 {
		t.Fatalf("release = %d, %v", n, err)
	}
	if r := mustReserved(t, s, tr.parent); r != 400 {
		t.Fatalf("reserved after early release = %d, want 400", r)
	}
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{tr.spend(tr.sibling, 450, 400, "gw1", t0, 2)}); err != nil {
		t.Fatal(err)
	}
	if r, c := mustReserved(t, s, tr.parent), mustSpent(t, s, tr.root, control.Daily, false, t0); r != 0 || c != 750 {
		t.Fatalf("reserved %d committed %d, want 0 and 750", r, c)
	}
	if n, err := s.c.Do(ctx, s.c.B().Zcard().Key(leasesKey(prefix(tr.root.ID))).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("%d lease records left (%v)", n, err)
	}
}

func TestExpiredLeaseReclaimed(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	tr := newTree(nil, []control.Policy{pol(1000, control.Daily, false)}, nil, nil)
	if _, err := s.Reserve(ctx, &ReserveRequest{Root: tr.root.ID, Chain: tr.chain(tr.child), Owner: "crashed",
		Requested: 900, LeaseTTL: 20 * time.Millisecond, Now: t0}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := tr.reserve(t, s, "alive", tr.chain(tr.sibling), 1000, 1000, t0)
		if g.Granted == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crashed gateway's lease was never reclaimed: %+v", g)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := mustReserved(t, s, tr.child); r != 0 {
		t.Fatalf("reserved of the crashed lease's agent = %d", r)
	}
	if r := mustReserved(t, s, tr.parent); r != 1000 {
		t.Fatalf("reserved of the parent = %d, want 1000", r)
	}
}

func TestApplyBatchReplay(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, b := newTree(nil, nil, nil, nil), newTree(nil, nil, nil, nil)
	batch := []Spend{
		a.spend(a.child, 10, 0, "", t0, 5), b.spend(b.child, 100, 0, "", t0, 6),
		a.spend(a.sibling, 20, 0, "", t0, 7), a.spend(a.child, 30, 0, "", t0, 8),
	}
	check := func(step string, wantA, wantAChild, wantB int64) {
		t.Helper()
		for _, c := range []struct {
			tr   *tree
			got  int64
			want int64
		}{
			{a, mustSpent(t, s, a.root, control.Monthly, false, t0), wantA},
			{a, mustSpent(t, s, a.child, control.Hourly, true, t0), wantAChild},
			{b, mustSpent(t, s, b.parent, control.Weekly, false, t0), wantB},
		} {
			if c.got != c.want {
				t.Fatalf("%s: spent %d, want %d", step, c.got, c.want)
			}
		}
	}
	apply := func(group, topic string, part int32, sp []Spend) {
		t.Helper()
		if err := s.ApplyBatch(ctx, group, topic, part, append([]Spend(nil), sp...)); err != nil {
			t.Fatal(err)
		}
	}
	apply("g", "t", 0, batch)
	check("first", 60, 40, 100)
	apply("g", "t", 0, batch)
	check("replay", 60, 40, 100)
	apply("g", "t", 0, []Spend{a.spend(a.child, 30, 0, "", t0, 8), a.spend(a.child, 1, 0, "", t0, 9), a.spend(a.child, 1, 0, "", t0, 9)})
	check("overlap", 61, 41, 100)
	// Root b's fence is 6: offset 7 of b is new although a is at 9.
	apply("g", "t", 0, []Spend{b.spend(b.child, 5, 0, "", t0, 7)})
	check("per root", 61, 41, 105)
	// Another partition, and another group, have their own fences.
	apply("g", "t", 1, []Spend{a.spend(a.child, 2, 0, "", t0, 1)})
	apply("other", "t", 0, []Spend{a.spend(a.child, 2, 0, "", t0, 1)})
	check("per partition", 65, 45, 105)
	if f, err := s.Fence(ctx, a.root.ID, "g", "t", 0); err != nil || f != 9 {
		t.Fatalf("fence = %d, %v", f, err)
	}
}

func TestWindowsAtBoundaries(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	at := func(v string) time.Time {
		x, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	tr := newTree(nil, nil, nil, nil)
	spendAt := at("2026-03-01T23:59:30Z") // a Sunday
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{tr.spend(tr.child, 700, 0, "", spendAt, 1)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		w       control.Window
		rolling bool
		now     string
		want    int64
	}{
		{"calendar hourly same hour", control.Hourly, false, "2026-03-01T23:59:59Z", 700},
		{"calendar hourly next hour", control.Hourly, false, "2026-03-02T00:00:00Z", 0},
		{"rolling hourly next hour", control.Hourly, true, "2026-03-02T00:00:00Z", 700},
		{"rolling hourly after 60 min", control.Hourly, true, "2026-03-02T00:59:29Z", 700},
		{"rolling hourly after 61 min", control.Hourly, true, "2026-03-02T01:00:30Z", 0},
		{"calendar daily next day", control.Daily, false, "2026-03-02T00:00:01Z", 0},
		{"rolling daily next day", control.Daily, true, "2026-03-02T23:00:00Z", 700},
		{"rolling daily after 25 h", control.Daily, true, "2026-03-03T00:00:00Z", 0},
		{"calendar weekly Sunday", control.Weekly, false, "2026-02-23T00:00:00Z", 700},
		{"calendar weekly Monday", control.Weekly, false, "2026-03-02T00:00:00Z", 0},
		{"rolling weekly", control.Weekly, true, "2026-03-08T23:59:59Z", 700},
		{"rolling weekly after 8 days", control.Weekly, true, "2026-03-09T00:00:00Z", 0},
		{"calendar monthly same month", control.Monthly, false, "2026-03-31T23:59:59Z", 700},
		{"calendar monthly next month", control.Monthly, false, "2026-04-01T00:00:00Z", 0},
		{"rolling monthly 30 days later", control.Monthly, true, "2026-03-31T12:00:00Z", 700},
		{"rolling monthly 31 days later", control.Monthly, true, "2026-04-01T00:00:00Z", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := at(tt.now)
			if got := mustSpent(t, s, tr.parent, tt.w, tt.rolling, now); got != tt.want {
				t.Fatalf("spent = %d, want %d", got, tt.want)
			}
			// Reserve sees the same window.
			chain := []Link{{Agent: tr.parent.ID, Policies: []control.Policy{pol(1000, tt.w, tt.rolling)}}}
			g := tr.reserve(t, s, "gw-"+tt.name[:4], chain, 0, 1, now)
			if g.Headroom != 1000-tt.want {
				t.Fatalf("reserve headroom = %d, want %d", g.Headroom, 1000-tt.want)
			}
		})
	}
}

// A request that costs more than its lease holds leaves the lease in debt;
// the next grant pays the debt first, so "reserved" stays exact.
func TestLeaseDebt(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	tr := newTree(nil, []control.Policy{pol(10_000, control.Daily, false)}, nil, nil)
	tr.reserve(t, s, "gw1", tr.chain(tr.child), 100, 1, t0)
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{tr.spend(tr.child, 150, 150, "gw1", t0, 1)}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserved(t, s, tr.parent); r != 0 {
		t.Fatalf("reserved of a lease in debt = %d, want 0", r)
	}
	g := tr.reserve(t, s, "gw1", tr.chain(tr.child), 100, 1, t0)
	if g.Granted != 100 || !g.Held || g.Lease != 50 || g.Headroom != 10_000-150 {
		t.Fatalf("grant to a lease in debt = %+v", g)
	}
	if r := mustReserved(t, s, tr.parent); r != 50 {
		t.Fatalf("reserved after paying the debt = %d, want 50", r)
	}
	// The gateway's local lease also holds 100-150+100 = 50.
	if n, err := s.Release(ctx, tr.root.ID, tr.child.ID, "gw1", 50, time.Minute); err != nil || n != 50 {
		t.Fatalf("release = %d, %v", n, err)
	}
	if r := mustReserved(t, s, tr.parent); r != 0 {
		t.Fatalf("reserved after release = %d", r)
	}
}
