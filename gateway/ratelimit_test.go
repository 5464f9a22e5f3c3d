package gateway

import (
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/event"
)

func TestRateLimiter(t *testing.T) {
	r := newRateLimiter()
	a, b := event.UUID{1}, event.UUID{2}
	now := time.Unix(1000, 0)
	passed := 0
	for i := 0; i < 20; i++ {
		if ok, _ := r.allow(a, 10, 5, now); ok {
			passed++
		}
	}
	if passed != 5 {
		t.Fatalf("burst of 5 let %d through", passed)
	}
	ok, wait := r.allow(a, 10, 5, now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := r.allow(b, 10, 5, now); !ok {
		t.Fatal("another agent was limited")
	}
	if ok, _ := r.allow(a, 10, 5, now.Add(100*time.Millisecond)); !ok {
		t.Fatal("a token did not come back after one interval")
	}
	if ok, _ := r.allow(a, 0, 0, now); !ok {
		t.Fatal("rps 0 must mean unlimited")
	}
	r.sweep(now.Add(time.Hour))
	if len(r.shards[a[15]&63].tat) != 0 {
		t.Fatal("sweep kept an idle agent")
	}
	if n := testing.AllocsPerRun(100, func() { r.allow(a, 1000000, 1000000, now) }); n != 0 {
		t.Fatalf("allow allocates %v", n)
	}
}
