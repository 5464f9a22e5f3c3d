package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Result is the outcome of a check.
type Result uint8

const (
	// Accepted: first sight of the nonce, timestamp within the window.
	Accepted Result = iota
	// Missing: neither header was sent (the caller decides whether the
	// route or agent requires replay protection).
	Missing
	// Malformed: a header is absent or not of the required form.
	Malformed
	// Stale: the timestamp is outside the window (past or future).
	Stale
	// Replayed: the nonce was seen before, by this or another replica.
	Replayed
	// Unavailable: the shared store could not be asked; fail closed (503).
	Unavailable
	resultCount
)

var resultNames = [resultCount]string{
	Accepted:    "ok",
	Missing:     "missing_replay_headers",
	Malformed:   "malformed_replay_headers",
	Stale:       "stale_timestamp",
	Replayed:    "replayed_nonce",
	Unavailable: "replay_store_unavailable",
}

// String returns the stable snake_case code used in error bodies and events.
func (r Result) String() string {
	if r < resultCount {
		return resultNames[r]
	}
	return "unknown_result"
}

// DefaultWindow is the default allowed distance between the request's
// timestamp and the gateway's clock, either way.
const DefaultWindow = 300 * time.Second

// DefaultKeyPrefix prefixes nonce keys in Redis.
const DefaultKeyPrefix = "cr:nonce:"

// Config tunes a Checker; zero values take the defaults.
type Config struct {
	Window       time.Duration // DefaultWindow
	KeyPrefix    string        // DefaultKeyPrefix
	LocalEntries int           // nonces remembered locally, 1<<16
}

func (c *Config) validate() error {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Window < time.Second {
		return fmt.Errorf("cannot use replay window %s: want at least 1s", c.Window)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.LocalEntries == 0 {
		c.LocalEntries = 1 << 16
	}
	if c.LocalEntries < 0 {
		return errors.New("cannot use a negative replay LocalEntries")
	}
	return nil
}

// Checker checks nonce and timestamp headers. It is safe for concurrent use.
type Checker struct {
	client  rueidis.Client
	window  int64  // seconds
	ttl     int64  // nanoseconds, 2×window
	ttlArg  string // 2×window in milliseconds, for PX
	prefix  string
	local   *seenCache
	keyPool sync.Pool
}

// New returns a Checker using client (shared with other users is fine).
func New(client rueidis.Client, cfg Config) (*Checker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ttl := 2 * cfg.Window
	c := &Checker{
		client: client,
		window: int64(cfg.Window / time.Second),
		ttl:    int64(ttl),
		ttlArg: strconv.FormatInt(ttl.Milliseconds(), 10),
		prefix: cfg.KeyPrefix,
		local:  newSeenCache(cfg.LocalEntries),
	}
	c.keyPool.New = func() any {
		b := make([]byte, 0, len(c.prefix)+MaxNonceLen)
		return &b
	}
	return c, nil
}

// Check is CheckContext with context.Background(); the rueidis client's own
// timeouts (Dialer.Timeout, ConnWriteTimeout) bound the wait.
func (c *Checker) Check(nonce, ts []byte, now time.Time) Result {
	return c.CheckContext(context.Background(), nonce, ts, now)
}

// CheckContext validates the headers and the window, then accepts the nonce
// if no replica has seen it. A repeat this replica has seen is rejected
// without a round trip and without allocating.
func (c *Checker) CheckContext(ctx context.Context, nonce, ts []byte, now time.Time) Result {
	if r := c.validate(nonce, ts, now); r != Accepted {
		return r
	}
	nowNs := now.UnixNano()
	if c.local.seen(nonce, nowNs) {
		return Replayed
	}
	r := c.claim(ctx, nonce)
	if r == Accepted || r == Replayed {
		c.local.add(nonce, nowNs+c.ttl, nowNs)
	}
	return r
}

func (c *Checker) validate(nonce, ts []byte, now time.Time) Result {
	if len(nonce) == 0 && len(ts) == 0 {
		return Missing
	}
	sec, ok := parseUnix(ts)
	if !ok || !validNonce(nonce) {
		return Malformed
	}
	if d := now.Unix() - sec; d > c.window || d < -c.window {
		return Stale
	}
	return Accepted
}

// claim asks Redis to record the nonce: SET prefix+nonce 1 NX PX 2×window.
func (c *Checker) claim(ctx context.Context, nonce []byte) Result {
	kp := c.keyPool.Get().(*[]byte)
	key := append(append((*kp)[:0], c.prefix...), nonce...)
	// The command is done (and recycled by rueidis) before the buffer goes
	// back to the pool, so BinaryString's aliasing is safe.
	// Arbitrary with the PX argument formatted once in New: the typed
	// builder's Px formats the duration on every call (one allocation).
	cmd := c.client.B().Arbitrary("SET").Keys(rueidis.BinaryString(key)).Args("1", "NX", "PX", c.ttlArg).Build()
	err := c.client.Do(ctx, cmd).Error()
	*kp = key
	c.keyPool.Put(kp)
	switch {
	case err == nil:
		return Accepted
	case rueidis.IsRedisNil(err):
		return Replayed
	}
	return Unavailable
}
