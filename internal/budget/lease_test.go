package budget

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func newLeaser(t testing.TB, s *Store, tr *tree, opt LeaserOptions) *Leaser {
	t.Helper()
	opt.Policies = tr.lookup
	if opt.Now == nil {
		opt.Now = func() time.Time { return t0 }
	}
	l, err := NewLeaser(s, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

func TestLeaserServesLocally(t *testing.T) {
	s := newStore(t)
	tr := newTree(nil, []control.Policy{pol(1_000_000, control.Daily, false)}, nil, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 10_000, LowWater: 1})
	for i := range 100 {
		tk, st := l.Take(tr.child, 50)
		if st.Code != OK {
			t.Fatalf("take %d: %+v", i, st)
		}
		l.Settle(tk, 40)
	}
	if n := l.RoundTrips.Load(); n != 1 {
		t.Fatalf("%d Redis round trips for 100 requests within one lease, want 1", n)
	}
	if r := mustReserved(t, s, tr.parent); r != 10_000 {
		t.Fatalf("reserved = %d, want one lease of 10000", r)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Nothing aggregated yet: the 100*40 charged stays reserved, the rest
	// went back.
	if r := mustReserved(t, s, tr.parent); r != 4000 {
		t.Fatalf("reserved after close = %d, want 4000 charged but not aggregated", r)
	}
	if _, st := l.Take(tr.child, 1); st.Code != Unavailable {
		t.Fatalf("take after close = %+v", st)
	}
}

func TestLeaserExhausted(t *testing.T) {
	s := newStore(t)
	tr := newTree(nil, []control.Policy{pol(1000, control.Weekly, true)}, []control.Policy{pol(5000, control.Daily, false)}, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 400})
	var taken int64
	var st Status
	for range 50 {
		var tk Ticket
		tk, st = l.Take(tr.child, 90)
		if st.Code != OK {
			break
		}
		l.Settle(tk, 90)
		taken += 90
	}
	if st.Code != Exhausted || st.Err() != ErrExhausted {
		t.Fatalf("status = %+v, want exhausted", st)
	}
	if taken != 990 || st.Remaining != 10 {
		t.Fatalf("took %d with %d remaining, want 990 and 10", taken, st.Remaining)
	}
	if st.Agent != tr.parent.ID || st.Window != control.Weekly || !st.Rolling || st.Limit != 1000 {
		t.Fatalf("binding window = %+v, want the parent's rolling weekly", st)
	}
	// A smaller request still fits.
	if tk, st := l.Take(tr.child, 10); st.Code != OK {
		t.Fatalf("take of the last 10 = %+v", st)
	} else {
		l.Settle(tk, 10)
	}
	if l.Exhausted.Load() == 0 {
		t.Fatal("exhausted counter not incremented")
	}
}

// proxy forwards TCP to Redis until Close cuts every connection.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestLeaserRedisDown(t *testing.T) {
	addr := testenv.RedisAddr(t)
	p := newProxy(t, addr)
	s := NewStore(redisClient(t, p.ln.Addr().String()))
	tr := newTree(nil, []control.Policy{pol(1_000_000, control.Daily, false)}, nil, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 1000, LowWater: 1, WaitTimeout: 200 * time.Millisecond, RefillTimeout: 200 * time.Millisecond})
	tk, st := l.Take(tr.child, 100)
	if st.Code != OK {
		t.Fatalf("first take = %+v", st)
	}
	l.Settle(tk, 100)
	p.Close()
	for i := range 9 {
		tk, st := l.Take(tr.child, 100)
		if st.Code != OK {
			t.Fatalf("take %d from the held lease with Redis down = %+v", i, st)
		}
		l.Settle(tk, 100)
	}
	if _, st := l.Take(tr.child, 100); st.Code != Unavailable || st.Err() != ErrUnavailable {
		t.Fatalf("take with an empty lease and Redis down = %+v, want unavailable", st)
	}
	if l.Unavailable.Load() != 1 || l.Errors.Load() == 0 {
		t.Fatalf("unavailable %d errors %d", l.Unavailable.Load(), l.Errors.Load())
	}
}

func TestTakeSettleAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not measured under -race")
	}
	s := newStore(t)
	tr := newTree(nil, []control.Policy{pol(MaxLimitMicros, control.Monthly, false)}, nil, nil)
	l := newLeaser(t, s, tr, LeaserOptions{LeaseSize: 1 << 40, LowWater: 1})
	tk, st := l.Take(tr.child, 10)
	if st.Code != OK {
		t.Fatal(st)
	}
	l.Settle(tk, 10)
	var failed bool
	allocs := testing.AllocsPerRun(1000, func() {
		tk, st := l.Take(tr.child, 10)
		if st.Code != OK {
			failed = true
		}
		l.Settle(tk, 7)
	})
	if failed {
		t.Fatal("take failed in steady state")
	}
	if allocs != 0 {
		t.Fatalf("Take+Settle allocate %v times per request, want 0", allocs)
	}
}
