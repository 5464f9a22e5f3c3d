// Package cache keeps the gateway's view of the control data: agents and API
// keys in ristretto caches sized and aged by policyCacheMaxSize and
// policyCacheTTL, and small tables (routes, prices, JWT issuers, mTLS
// identities) as snapshots swapped atomically. Entries are dropped on
// PostgreSQL NOTIFY (see listen.go), not only at TTL.
package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/ristretto/v2"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

var (
	hits          = metrics.NewCounter(`caracal_policy_cache_requests_total{result="hit"}`)
	misses        = metrics.NewCounter(`caracal_policy_cache_requests_total{result="miss"}`)
	loadErrors    = metrics.NewCounter(`caracal_policy_cache_load_errors_total`)
	invalidations = metrics.NewCounter(`caracal_policy_cache_invalidations_total`)
)

// Source reads control data from the database of record.
type Source interface {
	Agent(ctx context.Context, id event.UUID) (*control.Agent, error) // nil, nil when unknown
	AgentByName(ctx context.Context, name string) (*control.Agent, error)
	APIKey(ctx context.Context, prefix string) (control.APIKey, bool, error)
	Tables(ctx context.Context) (*Tables, error)
}

// Tables are the small control tables, loaded whole.
type Tables struct {
	Routes     []control.Route
	Prices     []control.Price
	Issuers    []control.JWTIssuer
	Identities []control.MTLSIdentity
}

// ErrUnavailable means the control data could not be read: the gateway fails
// closed.
var ErrUnavailable = errors.New("control data unavailable")

type keyEntry struct {
	key   control.APIKey
	found bool
}

// Cache is safe for concurrent use.
type Cache struct {
	src     Source
	timeout time.Duration
	ttl     time.Duration
	// agents is keyed by the first 8 bytes of the (random) agent id; a hit
	// is checked against the full id, so a collision is only a miss.
	agents *ristretto.Cache[uint64, *control.Agent]
	keys   *ristretto.Cache[[]byte, keyEntry]
	names  *ristretto.Cache[string, event.UUID]
	tables atomic.Pointer[Tables]
	// gen is bumped by every invalidation; a load that started under an
	// older generation does not store its (possibly stale) result.
	gen atomic.Uint64

	loadMu sync.Mutex
}

// Options size the cache.
type Options struct {
	MaxEntries  int
	TTL         time.Duration
	LoadTimeout time.Duration
}

// New creates a cache over src.
func New(src Source, o Options) (*Cache, error) {
	agents, err := ristretto.NewCache(&ristretto.Config[uint64, *control.Agent]{
		NumCounters: int64(o.MaxEntries) * 10, MaxCost: int64(o.MaxEntries), BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the agent cache: %w", err)
	}
	keys, err := ristretto.NewCache(&ristretto.Config[[]byte, keyEntry]{
		NumCounters: int64(o.MaxEntries) * 10, MaxCost: int64(o.MaxEntries), BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the key cache: %w", err)
	}
	names, err := ristretto.NewCache(&ristretto.Config[string, event.UUID]{
		NumCounters: int64(o.MaxEntries) * 10, MaxCost: int64(o.MaxEntries), BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the agent name cache: %w", err)
	}
	return &Cache{src: src, timeout: o.LoadTimeout, ttl: o.TTL, agents: agents, keys: keys, names: names}, nil
}

// Close releases the caches.
func (c *Cache) Close() {
	c.agents.Close()
	c.keys.Close()
	c.names.Close()
}

// Agent returns the agent with id, from the cache or the source.
func (c *Cache) Agent(id event.UUID) (*control.Agent, error) {
	if a, ok := c.agents.Get(agentKey(id)); ok && a.ID == id {
		hits.Inc()
		return a, nil
	}
	misses.Inc()
	gen := c.gen.Load()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	a, err := c.src.Agent(ctx, id)
	if err != nil {
		loadErrors.Inc()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if a != nil && c.gen.Load() == gen {
		c.agents.SetWithTTL(agentKey(id), a, 1, c.ttl)
	}
	return a, nil
}

func agentKey(id event.UUID) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

// AgentByName returns the agent named name (a JWT names its agent by name
// or by id). Names are looked up in the source and the result cached by id.
func (c *Cache) AgentByName(name string) (*control.Agent, error) {
	if id, err := event.ParseUUID([]byte(name)); err == nil {
		return c.Agent(id)
	}
	if a, ok := c.names.Get(name); ok {
		hits.Inc()
		return c.Agent(a)
	}
	misses.Inc()
	gen := c.gen.Load()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	a, err := c.src.AgentByName(ctx, name)
	if err != nil {
		loadErrors.Inc()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if a != nil && c.gen.Load() == gen {
		c.names.SetWithTTL(name, a.ID, 1, c.ttl)
		c.agents.SetWithTTL(agentKey(a.ID), a, 1, c.ttl)
	}
	return a, nil
}

// APIKey returns the stored key with the visible prefix. Unknown prefixes are
// cached too (briefly), so guessing does not reach the database each time.
func (c *Cache) APIKey(prefix []byte) (control.APIKey, bool, error) {
	if e, ok := c.keys.Get(prefix); ok {
		hits.Inc()
		return e.key, e.found, nil
	}
	misses.Inc()
	gen := c.gen.Load()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	k, found, err := c.src.APIKey(ctx, string(prefix))
	if err != nil {
		loadErrors.Inc()
		return control.APIKey{}, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if c.gen.Load() == gen {
		ttl := c.ttl
		if !found {
			ttl = min(ttl, 5*time.Second)
		}
		c.keys.SetWithTTL(append([]byte(nil), prefix...), keyEntry{key: k, found: found}, 1, ttl)
	}
	return k, found, nil
}

// Tables returns the current snapshot of the small tables (nil before the
// first successful Reload).
func (c *Cache) Tables() *Tables { return c.tables.Load() }

// Reload reads the small tables again and swaps them in.
func (c *Cache) Reload(ctx context.Context) error {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	t, err := c.src.Tables(ctx)
	if err != nil {
		loadErrors.Inc()
		return fmt.Errorf("cannot load routes, prices and identities: %w", err)
	}
	c.tables.Store(t)
	return nil
}

// DropAgent forgets one agent.
func (c *Cache) DropAgent(id event.UUID) {
	invalidations.Inc()
	c.gen.Add(1)
	c.agents.Del(agentKey(id))
}

// DropKeys forgets every cached API key (key changes are rare; a prefix is
// not in the notification).
func (c *Cache) DropKeys() {
	invalidations.Inc()
	c.gen.Add(1)
	c.keys.Clear()
}

// DropAll forgets everything cached, e.g. after the notification connection
// was lost and changes may have been missed.
func (c *Cache) DropAll() {
	invalidations.Inc()
	c.gen.Add(1)
	c.agents.Clear()
	c.keys.Clear()
	c.names.Clear()
}

// Wait blocks until pending cache writes are visible (tests).
func (c *Cache) Wait() {
	c.agents.Wait()
	c.keys.Wait()
}
