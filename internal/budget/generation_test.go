package budget

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// TestWatchReadyNewGeneration: the ready key's value changes between two
// polls (the totals were rebuilt without the watcher seeing the key
// missing): the leaser drops its lease, gives back what it had left, and
// reserves again.
func TestWatchReadyNewGeneration(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	key := "cr:test:ready:" + newUUID().String()
	c := s.Client()
	t.Cleanup(func() { c.Do(context.Background(), c.B().Del().Key(key).Build()) })
	set := func(v string) {
		if err := c.Do(ctx, c.B().Set().Key(key).Value(v).Ex(time.Hour).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	tr := newTree(nil, []control.Policy{pol(1_000_000, control.Daily, false)}, nil, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 10_000, LowWater: 1})
	set(NewGeneration())
	var ready atomic.Bool
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { WatchReady(wctx, c, key, 5*time.Millisecond, l, &ready); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "ready", ready.Load)
	tk, st := l.Take(tr.child, 3000)
	if st.Code != OK {
		t.Fatalf("take: %+v", st)
	}
	l.Settle(tk, 3000)
	if r := mustReserved(t, s, tr.parent); r != 10_000 {
		t.Fatalf("reserved = %d, want one lease", r)
	}
	trips := l.RoundTrips.Load()
	set(NewGeneration())
	waitFor(t, "reset", func() bool { return l.Resets.Load() == 1 })
	// Given back: the 7000 left; the 3000 charged stays reserved until the
	// aggregator applies it.
	if r := mustReserved(t, s, tr.parent); r != 3000 {
		t.Fatalf("reserved after the reset = %d, want the 3000 charged", r)
	}
	if _, st := l.Take(tr.child, 100); st.Code != OK {
		t.Fatalf("take after the reset: %+v", st)
	}
	if n := l.RoundTrips.Load() - trips; n != 2 {
		t.Fatalf("%d round trips after the reset, want a release and a new reserve", n)
	}
	// The key goes missing: no refill until it is back.
	if err := c.Do(ctx, c.B().Del().Key(key).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready", func() bool { return !ready.Load() })
	if _, st := l.Take(tr.child, 20_000); st.Code != Unavailable {
		t.Fatalf("refill without the ready key: %+v", st)
	}
	set(NewGeneration())
	waitFor(t, "ready again", ready.Load)
	if n := l.Resets.Load(); n != 2 {
		t.Fatalf("resets = %d, want 2", n)
	}
	if _, st := l.Take(tr.child, 20_000); st.Code != OK {
		t.Fatalf("take once ready: %+v", st)
	}
}

// TestRestorePending: a reconcile reserves again what a lost lease charged;
// the gateway's release after its reset gives nothing of it back, the
// aggregator's charges take it off, a new grant merges into it.
func TestRestorePending(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	tr := newTree(nil, []control.Policy{pol(100_000, control.Daily, false)}, nil, nil)
	chain := append([]event.UUID{tr.child.ID}, tr.child.Ancestors...)
	lost := PendingLease{Chain: chain, Owner: "gw-1", Micros: 4000}
	n, err := s.RestorePending(ctx, tr.root.ID, []PendingLease{lost}, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("restored %d, %v", n, err)
	}
	if r := mustReserved(t, s, tr.parent); r != 4000 {
		t.Fatalf("reserved = %d, want 4000", r)
	}
	// A lease with a record keeps it.
	if n, err := s.RestorePending(ctx, tr.root.ID, []PendingLease{lost}, time.Minute); err != nil || n != 0 {
		t.Fatalf("restored again: %d, %v", n, err)
	}
	// The gateway's reset releases what it had left: nothing of this.
	if d, err := s.Release(ctx, tr.root.ID, tr.child.ID, "gw-1", 9000, time.Minute); err != nil || d != 0 {
		t.Fatalf("released %d, %v; want 0", d, err)
	}
	// The aggregator applies 1000 of the charges.
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{tr.spend(tr.child, 1000, 1000, "gw-1", t0, 0)}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserved(t, s, tr.parent); r != 3000 {
		t.Fatalf("reserved after one charge = %d, want 3000", r)
	}
	// A new grant merges: reserved = 3000 pending + the grant; a release
	// now gives back the unused grant.
	g, err := s.Reserve(ctx, &ReserveRequest{Root: tr.root.ID, Chain: tr.chain(tr.child), Owner: "gw-1", Requested: 10_000, MinGrant: 1, LeaseTTL: time.Minute, Now: t0})
	if err != nil || g.Granted != 10_000 || !g.Held || g.Lease != 13_000 {
		t.Fatalf("reserve: %+v %v", g, err)
	}
	if d, err := s.Release(ctx, tr.root.ID, tr.child.ID, "gw-1", 10_000, time.Minute); err != nil || d != 10_000 {
		t.Fatalf("released %d, %v; want 10000", d, err)
	}
	if r := mustReserved(t, s, tr.parent); r != 3000 {
		t.Fatalf("reserved after the release = %d, want the 3000 still pending", r)
	}
}
