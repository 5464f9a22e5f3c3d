package replay

import "sync"

const cacheShards = 64

// seenCache remembers nonces this replica has seen, each until an expiry
// (unix nanoseconds). It is a fixed number of shards, each bounded; a full
// shard first drops expired entries, then arbitrary ones (Go map order),
// which is safe because a miss only costs a Redis round trip.
type seenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[string]int64
	_  [40]byte // keep shards on separate cache lines
}

func newSeenCache(entries int) *seenCache {
	c := &seenCache{perShard: max(entries/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]int64)
	}
	return c
}

func (c *seenCache) shard(nonce []byte) *cacheShard {
	h := uint32(2166136261) // FNV-1a
	for _, b := range nonce {
		h ^= uint32(b)
		h *= 16777619
	}
	return &c.shards[h%cacheShards]
}

// seen reports whether nonce is remembered and not expired at now.
func (c *seenCache) seen(nonce []byte, now int64) bool {
	s := c.shard(nonce)
	s.mu.Lock()
	exp, ok := s.m[string(nonce)]
	s.mu.Unlock()
	return ok && exp > now
}

// add remembers nonce until exp.
func (c *seenCache) add(nonce []byte, exp, now int64) {
	s := c.shard(nonce)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[string(nonce)]; !ok && len(s.m) >= c.perShard {
		s.evict(now, c.perShard)
	}
	s.m[string(nonce)] = exp
}

func (s *cacheShard) evict(now int64, limit int) {
	for k, exp := range s.m {
		if exp <= now {
			delete(s.m, k)
		}
	}
	// Still full of live entries: drop an eighth at once, so the sweep
	// above is paid once per limit/8 inserts, not on every insert.
	keep := limit - limit/8 - 1
	for k := range s.m {
		if len(s.m) <= keep {
			return
		}
		delete(s.m, k)
	}
}

func (c *seenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
