package gateway

import (
	"sync"
	"time"

	"github.com/caracal-gw/caracal/internal/event"
)

// rateLimiter is a per-agent token bucket (GCRA form: one timestamp per
// agent, the theoretical arrival time of the next request). Local to each
// gateway: with N replicas behind a balancer an agent gets up to N× its rate
// in the worst case; budgets, not rates, are the exact limit.
type rateLimiter struct {
	shards [64]rateShard
}

type rateShard struct {
	mu  sync.Mutex
	tat map[event.UUID]int64 // unix nanos
}

func newRateLimiter() *rateLimiter {
	r := &rateLimiter{}
	for i := range r.shards {
		r.shards[i].tat = make(map[event.UUID]int64)
	}
	return r
}

// allow reports whether a request of agent id may pass at now under rps
// requests per second with the given burst; when not, it returns how long to
// wait. rps <= 0 means unlimited.
func (r *rateLimiter) allow(id event.UUID, rps, burst int, now time.Time) (bool, time.Duration) {
	if rps <= 0 {
		return true, 0
	}
	return r.allowEvery(id, time.Second/time.Duration(rps), burst, now)
}

// allowEvery is allow with one request per interval.
func (r *rateLimiter) allowEvery(id event.UUID, every time.Duration, burst int, now time.Time) (bool, time.Duration) {
	if burst < 1 {
		burst = 1
	}
	interval := int64(every)
	tolerance := interval * int64(burst-1)
	t := now.UnixNano()
	s := &r.shards[id[15]&63]
	s.mu.Lock()
	tat, ok := s.tat[id]
	if !ok || tat < t {
		tat = t
	}
	if tat-t > tolerance {
		s.mu.Unlock()
		return false, time.Duration(tat - t - tolerance)
	}
	s.tat[id] = tat + interval
	s.mu.Unlock()
	return true, 0
}

// sweep forgets agents idle for longer than a second past their bucket, so
// the maps do not grow without bound.
func (r *rateLimiter) sweep(now time.Time) {
	t := now.UnixNano() - int64(time.Second)
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for id, tat := range s.tat {
			if tat < t {
				delete(s.tat, id)
			}
		}
		s.mu.Unlock()
	}
}

// blocked reports, without taking a token, whether allowEvery would refuse.
func (r *rateLimiter) blocked(id event.UUID, every time.Duration, burst int, now time.Time) bool {
	if burst < 1 {
		burst = 1
	}
	tolerance := int64(every) * int64(burst-1)
	t := now.UnixNano()
	s := &r.shards[id[15]&63]
	s.mu.Lock()
	tat, ok := s.tat[id]
	s.mu.Unlock()
	return ok && tat-t > tolerance
}
