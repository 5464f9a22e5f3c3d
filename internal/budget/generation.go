package budget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// The budget-ready key (config redis.budgetReadyKey) says the committed
// totals in Redis are complete. Whoever writes complete totals (a
// reconcile, a snapshot restore) deletes it first and sets it last, to a
// fresh generation (NewGeneration): a Redis that lost its data lost the key
// too. A gateway watches the key (WatchReady): while it is missing it fails
// closed and refills no lease; when it comes back, or its value changes
// (the totals were rebuilt between two polls), the totals the gateway's
// leases were granted against are gone, so it drops every local lease
// (Leaser.Reset) and reserves again against the rebuilt totals.

// NewGeneration returns a fresh value for the ready key.
func NewGeneration() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + hex.EncodeToString(b[:])
}

// Reset drops every local lease: what a lease had left is given back to
// Redis when its record still exists (a reconcile over a store that kept
// its data), and no request is served from it again; the next Take
// reserves anew. Tickets in flight settle against the new lease (their
// estimate is gone with the old one: Settle takes the actual cost from the
// current lease, as the aggregator does when it applies their events). It
// is called on a new store generation, never on the request path.
func (l *Leaser) Reset(ctx context.Context) error {
	l.Resets.Add(1)
	var errs []error
	for _, ls := range l.snapshot() {
		ls.mu.Lock()
		unused, held := max(ls.remaining, 0), ls.held
		ls.remaining, ls.held, ls.valid = 0, false, 0
		ls.denyUntil, ls.denyHead, ls.headKnown = 0, 0, false
		ls.epoch++
		ls.mu.Unlock()
		if !held {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, l.opt.RefillTimeout)
		l.RoundTrips.Add(1)
		_, err := l.store.Release(rctx, ls.root, ls.id, l.opt.Owner, unused, l.opt.Drain)
		cancel()
		if err != nil {
			l.Errors.Add(1)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SetUsable allows (true, the default) or refuses (false) every Reserve:
// while the ready key is missing the totals are incomplete and a grant
// computed against them could pass a limit. Takes the local leases can pay
// are unaffected (the gateway fails closed before Take meanwhile).
func (l *Leaser) SetUsable(ok bool) { l.unusable.Store(!ok) }

var errStoreNotReady = errors.New("budget totals incomplete (the ready key is missing): no lease is granted")

// WatchReady polls the ready key every interval until ctx is done: ready
// is true while Redis answers and the key is present. When the key comes
// back after being missing, or its value changes, l (when not nil) drops
// its leases before ready turns true again. It reads one key per interval
// per gateway process; the request path only loads ready.
func WatchReady(ctx context.Context, c rueidis.Client, key string, every time.Duration, l *Leaser, ready *atomic.Bool) {
	w := &readyWatch{c: c, key: key, l: l, ready: ready}
	w.poll(ctx, max(every, time.Second))
	w.run(ctx, every)
}

// StartReadyWatch is WatchReady with its first poll made before it returns,
// so a gateway that starts serving right after knows at once whether the
// totals are complete (instead of answering 503 until the first tick); the
// rest runs in a goroutine, and done is closed when ctx ends it.
func StartReadyWatch(ctx context.Context, c rueidis.Client, key string, every time.Duration, l *Leaser, ready *atomic.Bool) (done <-chan struct{}) {
	w := &readyWatch{c: c, key: key, l: l, ready: ready}
	w.poll(ctx, max(every, time.Second))
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		w.run(ctx, every)
	}()
	return ch
}

// run polls every interval after the first poll, until ctx ends.
func (w *readyWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.poll(ctx, max(every, time.Second))
	}
}

type readyWatch struct {
	c     rueidis.Client
	key   string
	l     *Leaser
	ready *atomic.Bool
	gen   string // the generation the leases were granted in
	lost  bool   // the key was seen missing since
}

func (w *readyWatch) poll(ctx context.Context, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	v, err := w.c.Do(pctx, w.c.B().Get().Key(w.key).Build()).ToString()
	cancel()
	switch {
	case rueidis.IsRedisNil(err):
		if w.ready.Load() {
			slog.Warn("budget totals incomplete (ready key missing): failing closed", "ready_key", w.key)
		}
		w.lost = true
		w.setReady(false)
		return
	case err != nil:
		if w.ready.Load() {
			slog.Warn("budget store unreachable: failing closed", "err", err)
		}
		w.ready.Store(false)
		return
	}
	if w.lost || (w.gen != "" && v != w.gen) {
		slog.Warn("budget store has a new generation: dropping every local lease", "ready_key", w.key, "generation", v)
		if w.l != nil {
			if err := w.l.Reset(ctx); err != nil {
				slog.Warn("cannot give back the dropped leases (Redis reclaims them at their deadline)", "err", fmt.Sprint(err))
			}
		}
	}
	w.gen, w.lost = v, false
	w.setReady(true)
}

func (w *readyWatch) setReady(ok bool) {
	if w.l != nil {
		w.l.SetUsable(ok)
	}
	w.ready.Store(ok)
}
