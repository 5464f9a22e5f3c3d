package auth

import (
	"crypto/sha256"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Agents present the same token on every request until it expires, and a
// full verification costs about 70 allocations (JSON into maps, base64, the
// signature check; BenchmarkJWTVerifyUncached). tokenCache remembers tokens
// that verified, keyed by the SHA-256 of the whole token, so a repeat costs
// one hash and one map lookup and allocates nothing.
//
// A hit gives exactly the answer a fresh verification would:
//   - it is accepted only while now <= exp + leeway (checked on every hit,
//     against the same clock) and for at most the cache TTL after the
//     verification that stored it; past either bound the token is verified
//     again, which rejects it when it expired;
//   - a token is stored only when its nbf and iat have passed, and a hit
//     checks them again (a clock stepped back);
//   - an entry belongs to the key generation it was verified under; any
//     change of an issuer's JWKS key set bumps the generation (flush), so a
//     removed key stops working at once. Issuers themselves never change in
//     a verifier: the gateway builds a new verifier, with an empty cache,
//     when they do;
//   - only successes are stored: a rejected token is verified every time.
//
// Why not ristretto, as gateway/cache uses: its Set is asynchronous and may
// drop or delay an entry, and its Clear races with Sets still in its buffers,
// so "a removed key stops working at once" would rest on its internals; its
// admission policy defends against floods of one-off keys, which cannot reach
// this cache (only tokens signed by a trusted issuer get in). A fixed number
// of shards, each a map under a lock with a fixed capacity, is enough: a full
// shard drops an expired or stale entry if one of a few probed is, else any
// one, and the worst a drop costs is one more verification.
type tokenCache struct {
	shards   [tokenCacheShards]tokenShard
	perShard int
	ttl      time.Duration
	gen      atomic.Uint64
}

const (
	// DefaultTokenCacheSize bounds the verified-token cache: about 150 bytes
	// an entry, so 16384 entries are a few MB at most.
	DefaultTokenCacheSize = 16384
	// DefaultTokenCacheTTL is the longest a verification is reused.
	DefaultTokenCacheTTL = 60 * time.Second

	tokenCacheShards = 16
	evictProbe       = 8
)

var (
	tokenCacheHits    = metrics.NewCounter(`caracal_jwt_cache_requests_total{result="hit"}`)
	tokenCacheMisses  = metrics.NewCounter(`caracal_jwt_cache_requests_total{result="miss"}`)
	tokenCacheFlushes = metrics.NewCounter(`caracal_jwt_cache_flushes_total`)
)

type tokenKey = [sha256.Size]byte

type tokenEntry struct {
	claims Claims
	gen    uint64
	// A hit needs notBefore <= now <= until (Unix nanoseconds): notBefore is
	// the later of nbf and iat less the leeway, until is min(exp + leeway,
	// stored + TTL).
	notBefore, until int64
}

type tokenShard struct {
	mu sync.RWMutex
	m  map[tokenKey]tokenEntry // made on first use: most verifiers see few tokens
	_  [32]byte                // one shard per cache line: hits write the read lock
}

// newTokenCache returns nil (no caching) when size is negative.
func newTokenCache(size int, ttl time.Duration) *tokenCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultTokenCacheSize
	}
	if ttl <= 0 {
		ttl = DefaultTokenCacheTTL
	}
	return &tokenCache{perShard: max(1, (size+tokenCacheShards-1)/tokenCacheShards), ttl: ttl}
}

func (c *tokenCache) shard(k *tokenKey) *tokenShard {
	return &c.shards[k[0]%tokenCacheShards]
}

// get returns the claims of a token verified under generation gen that a
// fresh verification at now would accept.
func (c *tokenCache) get(k *tokenKey, gen uint64, now int64) (Claims, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok || e.gen != gen || now < e.notBefore || now > e.until {
		tokenCacheMisses.Inc()
		return Claims{}, false
	}
	tokenCacheHits.Inc()
	return e.claims, true
}

// put stores a verification made under generation gen at now (read before
// the verification started).
func (c *tokenCache) put(k *tokenKey, gen uint64, now time.Time, vd *verified) {
	if !vd.start.IsZero() && vd.start.After(now) {
		return // nbf or iat not passed yet (accepted within the leeway): verify again
	}
	e := tokenEntry{claims: vd.claims, gen: gen, notBefore: math.MinInt64}
	if !vd.start.IsZero() {
		e.notBefore = vd.start.Add(-vd.leeway).UnixNano()
	}
	limit := now.Add(c.ttl)
	if end := vd.claims.ExpiresAt.Add(vd.leeway); end.Before(limit) {
		e.until = end.UnixNano()
	} else {
		e.until = limit.UnixNano() // exp may be centuries away, beyond UnixNano's range
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return // the keys changed during the verification
	}
	if s.m == nil {
		s.m = make(map[tokenKey]tokenEntry)
	}
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		s.evictOne(gen, now.UnixNano())
	}
	s.m[*k] = e
}

// evictOne drops an expired or stale entry among the first few of a map
// iteration (which starts at a random place), else the first of them.
func (s *tokenShard) evictOne(gen uint64, now int64) {
	var victim tokenKey
	n := 0
	for k, e := range s.m {
		if e.gen != gen || now > e.until {
			victim = k
			break
		}
		if n == 0 {
			victim = k
		}
		if n++; n == evictProbe {
			break
		}
	}
	delete(s.m, victim)
}

// flush forgets every entry; called when a key set changes. The generation
// is bumped first, so no lookup accepts an old entry even before its shard
// is cleared, and no verification that read the old keys stores its result.
func (c *tokenCache) flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
	tokenCacheFlushes.Inc()
}

// size counts the entries (tests).
func (c *tokenCache) size() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
