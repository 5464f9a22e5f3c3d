package cache

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// fixedSource serves one agent and one key, as if from the database.
type fixedSource struct {
	agent *control.Agent
	key   control.APIKey
}

func (s fixedSource) Agent(context.Context, event.UUID) (*control.Agent, error) { return s.agent, nil }
func (s fixedSource) AgentByName(context.Context, string) (*control.Agent, error) {
	return s.agent, nil
}
func (s fixedSource) APIKey(context.Context, string) (control.APIKey, bool, error) {
	return s.key, true, nil
}
func (s fixedSource) Tables(context.Context) (*Tables, error) { return &Tables{}, nil }

var (
	benchAgentID = event.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	benchPrefix  = []byte("crk_ABCDEFGHIJKL")
	sinkAgent    *control.Agent
	sinkKey      control.APIKey
)

func warmCache(b *testing.B) *Cache {
	c, err := New(fixedSource{agent: &control.Agent{ID: benchAgentID}, key: control.APIKey{AgentID: benchAgentID}},
		Options{MaxEntries: 10_000, TTL: time.Hour, LoadTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	for range 3 { // ristretto admits a key after it has been seen
		if _, err := c.Agent(benchAgentID); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.APIKey(benchPrefix); err != nil {
			b.Fatal(err)
		}
		c.Wait()
	}
	return c
}

// BenchmarkAgentHit is the per-request policy lookup (agent, its budgets and
// allow-lists) once cached; every request makes one.
func BenchmarkAgentHit(b *testing.B) {
	c := warmCache(b)
	b.ReportAllocs()
	for b.Loop() {
		a, err := c.Agent(benchAgentID)
		if err != nil || a == nil {
			b.Fatal("miss")
		}
		sinkAgent = a
	}
}

// BenchmarkAPIKeyHit is the per-request credential lookup by key prefix.
func BenchmarkAPIKeyHit(b *testing.B) {
	c := warmCache(b)
	b.ReportAllocs()
	for b.Loop() {
		k, ok, err := c.APIKey(benchPrefix)
		if err != nil || !ok {
			b.Fatal("miss")
		}
		sinkKey = k
	}
}

// BenchmarkAgentMapRWMutex is the naive twin: a map under a RWMutex with a
// string key (no size bound, no TTL, no admission policy).
func BenchmarkAgentMapRWMutex(b *testing.B) {
	var mu sync.RWMutex
	m := map[string]*control.Agent{benchAgentID.String(): {ID: benchAgentID}}
	b.ReportAllocs()
	for b.Loop() {
		mu.RLock()
		a := m[benchAgentID.String()]
		mu.RUnlock()
		sinkAgent = a
	}
}
