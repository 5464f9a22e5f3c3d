package budget

import (
	"context"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIdleLeaseReturned(t *testing.T) {
	s := newStore(t)
	tr := newTree(nil, []control.Policy{pol(100_000, control.Daily, false)}, nil, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 10_000, LeaseTTL: time.Second, IdleTimeout: 100 * time.Millisecond})
	tk, st := l.Take(tr.child, 300)
	if st.Code != OK {
		t.Fatal(st)
	}
	l.Settle(tk, 250)
	waitFor(t, "the idle lease to be returned", func() bool { return l.Releases.Load() == 1 })
	// Only the charged, not yet aggregated 250 stays reserved.
	if r := mustReserved(t, s, tr.parent); r != 250 {
		t.Fatalf("reserved after idle release = %d, want 250", r)
	}
	if err := s.ApplyBatch(context.Background(), "g", "t", 0, []Spend{tr.spend(tr.child, 250, 250, l.Owner(), t0, 1)}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserved(t, s, tr.parent); r != 0 {
		t.Fatalf("reserved after aggregation = %d, want 0", r)
	}
	// The agent is served again after the release.
	if tk, st := l.Take(tr.child, 300); st.Code != OK {
		t.Fatalf("take after idle release = %+v", st)
	} else {
		l.Settle(tk, 300)
	}
}

// A lease in use outlives its TTL (refills renew it); other gateways'
// reserve calls, which reclaim expired leases, leave it alone.
func TestBusyLeaseRenewed(t *testing.T) {
	s := newStore(t)
	tr := newTree(nil, []control.Policy{pol(100_000, control.Daily, false)}, nil, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 10_000, LowWater: 1, LeaseTTL: 200 * time.Millisecond, IdleTimeout: time.Hour})
	end := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(end) && i < 1000; i++ {
		tk, st := l.Take(tr.child, 1)
		if st.Code != OK {
			t.Fatalf("take %d = %+v", i, st)
		}
		l.Settle(tk, 1)
		time.Sleep(10 * time.Millisecond)
		// Another gateway's reserve reclaims expired leases of the tree.
		tr.reserve(t, s, "other", tr.chain(tr.sibling), 0, 1, t0)
	}
	if r := mustReserved(t, s, tr.child); r != 10_000 {
		t.Fatalf("reserved of the busy lease = %d, want 10000 (it was reclaimed)", r)
	}
}

// With Redis gone longer than the lease TTL the local lease stops serving:
// its Redis record may have been reclaimed by another gateway.
func TestLeaseNotServedPastDeadline(t *testing.T) {
	p := newProxy(t, testenv.RedisAddr(t))
	s := NewStore(redisClient(t, p.ln.Addr().String()))
	tr := newTree(nil, []control.Policy{pol(100_000, control.Daily, false)}, nil, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 10_000, LowWater: 1, LeaseTTL: 200 * time.Millisecond,
		WaitTimeout: 100 * time.Millisecond, RefillTimeout: 100 * time.Millisecond})
	tk, st := l.Take(tr.child, 1)
	if st.Code != OK {
		t.Fatal(st)
	}
	l.Settle(tk, 1)
	p.Close()
	waitFor(t, "the local lease to expire", func() bool {
		tk, st := l.Take(tr.child, 1)
		if st.Code == OK {
			l.Settle(tk, 1)
		}
		return st.Code == Unavailable
	})
}
