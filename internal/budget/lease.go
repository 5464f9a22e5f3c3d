package budget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// LeaserOptions configure a Leaser; zero fields take the defaults below.
type LeaserOptions struct {
	// Owner names this gateway process in lease records; the gateway must
	// put it in event.Metering.Gateway. Default: hostname-<random>.
	Owner string
	// LeaseSize is what a refill asks for (config gateway.leaseSizeMicros).
	LeaseSize int64
	// LeaseTTL is the lease deadline in Redis, renewed by every refill
	// (config gateway.leaseTTL). Default 30s.
	LeaseTTL time.Duration
	// LowWater starts a background refill. Default LeaseSize/2.
	LowWater int64
	// MinGrant is the smallest background grant worth a lease. Default
	// LeaseSize/100 (at least 1).
	MinGrant int64
	// WaitTimeout bounds how long Take waits for a synchronous refill.
	// Default 500ms.
	WaitTimeout time.Duration
	// RefillTimeout bounds a background Redis call. Default 1s.
	RefillTimeout time.Duration
	// IdleTimeout returns a lease unused that long. Default 2*LeaseTTL.
	IdleTimeout time.Duration
	// Drain keeps charged but not yet aggregated spend of a released lease
	// reserved that long. Default 10m.
	Drain time.Duration
	// DenyFor caches an exhausted answer. Default 1s.
	DenyFor time.Duration
	// Workers run background refills. Default 2.
	Workers int
	// Policies returns the active policies of an ancestor (from the policy
	// cache). Nil: ancestors have no limits.
	Policies func(ctx context.Context, agent event.UUID) ([]control.Policy, error)
	// Now picks window buckets (tests inject a clock). Default time.Now.
	Now func() time.Time
}

func (o *LeaserOptions) validate() error {
	if o.LeaseSize < 1 || o.LeaseSize > MaxLimitMicros {
		return fmt.Errorf("cannot use lease size %d: must be in [1, %d]", o.LeaseSize, int64(MaxLimitMicros))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.LeaseTTL, 30*time.Second)
	def(&o.WaitTimeout, 500*time.Millisecond)
	def(&o.RefillTimeout, time.Second)
	def(&o.IdleTimeout, 2*o.LeaseTTL)
	def(&o.Drain, 10*time.Minute)
	def(&o.DenyFor, time.Second)
	if o.LowWater <= 0 {
		o.LowWater = o.LeaseSize / 2
	}
	if o.MinGrant <= 0 {
		o.MinGrant = max(o.LeaseSize/100, 1)
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if strings.ContainsAny(o.Owner, " \t\r\n") {
		return fmt.Errorf("cannot use lease owner %q: it must not contain white space", o.Owner)
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Owner = host + "-" + hex.EncodeToString(b[:])
	}
	return nil
}

// Stats count the Leaser's work for metrics.
type Stats struct {
	Takes       atomic.Uint64
	Refills     atomic.Uint64 // Reserve calls that asked for headroom
	RoundTrips  atomic.Uint64 // every Redis script call
	Exhausted   atomic.Uint64 // Takes answered Exhausted
	Unavailable atomic.Uint64 // Takes answered Unavailable
	Errors      atomic.Uint64 // failed Redis calls
	Releases    atomic.Uint64
	Resets      atomic.Uint64 // every local lease dropped: a new store generation
}

// Leaser serves budget from local leases of headroom reserved in Redis: no
// Redis round trip per request while a lease lasts.
type Leaser struct {
	Stats
	store  *Store
	opt    LeaserOptions
	base   time.Time
	mu     sync.RWMutex
	leases map[event.UUID]*lease
	kick   chan *lease
	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
	// unusable refuses every Reserve while the totals are incomplete
	// (SetUsable, WatchReady).
	unusable atomic.Bool
}

// lease is the local view of this process's Redis lease for one agent.
type lease struct {
	mu        sync.Mutex
	id, root  event.UUID
	agent     *control.Agent
	remaining int64 // may go negative: actual cost above the estimate
	inflight  int64
	held      bool  // a Redis lease record exists
	epoch     int64 // bumped when the Redis lease was lost or returned
	valid     int64 // mono ns: Takes allowed before this
	renewAt   int64
	lastUse   int64
	kicked    bool
	waiting   int64         // Takes in the slow path
	busy      chan struct{} // non-nil while a refill or release runs
	denyUntil int64
	denyHead  int64 // headroom Redis had left outside leases at the last refill
	headKnown bool
	bound     Status
}

// Ticket is one request's hold on a lease; pass it to Settle.
type Ticket struct {
	l     *lease
	est   int64
	epoch int64
}

// NewLeaser starts a Leaser on s; Close it to return every lease.
func NewLeaser(s *Store, opt LeaserOptions) (*Leaser, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	l := &Leaser{store: s, opt: opt, base: time.Now(), leases: make(map[event.UUID]*lease),
		kick: make(chan *lease, 1024), stop: make(chan struct{})}
	for range opt.Workers {
		l.wg.Add(1)
		go l.refiller()
	}
	l.wg.Add(1)
	go l.housekeeper()
	return l, nil
}

// Owner returns the lease owner name (for event.Metering.Gateway).
func (l *Leaser) Owner() string { return l.opt.Owner }

func (l *Leaser) mono() int64 { return int64(time.Since(l.base)) }

func (l *Leaser) get(a *control.Agent) *lease {
	l.mu.RLock()
	ls := l.leases[a.ID]
	l.mu.RUnlock()
	if ls != nil {
		return ls
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls = l.leases[a.ID]; ls == nil {
		root := a.Root
		if root.IsZero() {
			root = a.ID
		}
		ls = &lease{id: a.ID, root: root, agent: a}
		l.leases[a.ID] = ls
	}
	return ls
}

// Take takes estimate micro-units for a request of agent, waiting at most
// WaitTimeout for Redis when the local lease cannot pay.
func (l *Leaser) Take(agent *control.Agent, estimate int64) (Ticket, Status) {
	return l.TakeContext(context.Background(), agent, estimate)
}

// TakeContext is Take bounded by ctx as well.
func (l *Leaser) TakeContext(ctx context.Context, agent *control.Agent, estimate int64) (Ticket, Status) {
	l.Takes.Add(1)
	estimate = max(estimate, 0)
	ls := l.get(agent)
	now := l.mono()
	ls.mu.Lock()
	ls.agent, ls.lastUse = agent, now
	if now < ls.valid && ls.remaining >= estimate {
		t, st := l.takeLocked(ls, estimate, now)
		ls.mu.Unlock()
		return t, st
	}
	ls.mu.Unlock()
	return l.slowTake(ctx, ls, estimate)
}

func (l *Leaser) takeLocked(ls *lease, est, now int64) (Ticket, Status) {
	ls.remaining -= est
	ls.inflight++
	if !ls.kicked && (ls.remaining < l.opt.LowWater || now > ls.renewAt) && !l.closed.Load() {
		select {
		case l.kick <- ls:
			ls.kicked = true
		default:
		}
	}
	st := ls.bound
	st.Code, st.Remaining = OK, ls.remaining+ls.denyHead
	return Ticket{l: ls, est: est, epoch: ls.epoch}, st
}

func (l *Leaser) slowTake(ctx context.Context, ls *lease, est int64) (Ticket, Status) {
	ctx, cancel := context.WithTimeout(ctx, l.opt.WaitTimeout)
	defer cancel()
	ls.mu.Lock()
	ls.waiting++
	ls.mu.Unlock()
	defer func() {
		ls.mu.Lock()
		ls.waiting--
		ls.mu.Unlock()
	}()
	for range 32 {
		now := l.mono()
		ls.mu.Lock()
		if now < ls.valid && ls.remaining >= est {
			t, st := l.takeLocked(ls, est, now)
			ls.mu.Unlock()
			return t, st
		}
		if now < ls.denyUntil && est > max(ls.remaining, 0)+ls.denyHead {
			st := ls.bound
			st.Code, st.Remaining = Exhausted, max(ls.remaining, 0)+ls.denyHead
			ls.mu.Unlock()
			l.Exhausted.Add(1)
			return Ticket{}, st
		}
		if w := ls.busy; w != nil {
			ls.mu.Unlock()
			if !l.wait(ctx, w) {
				break
			}
			continue
		}
		if l.closed.Load() {
			ls.mu.Unlock()
			break
		}
		need := max(est-max(ls.remaining, 0), 1)
		// Ask for the other waiters too, so one round trip serves them all.
		want := min(max(l.target(ls), need*ls.waiting), MaxLimitMicros)
		ls.busy = make(chan struct{})
		ls.mu.Unlock()
		t, ok, err := l.refill(ctx, ls, need, want, est)
		l.done(ls)
		if err != nil {
			break
		}
		if ok {
			return t, l.okStatus(ls)
		}
	}
	l.Unavailable.Add(1)
	return Ticket{}, Status{Code: Unavailable}
}

func (l *Leaser) okStatus(ls *lease) Status {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.bound
	st.Code, st.Remaining = OK, ls.remaining+ls.denyHead
	return st
}

func (l *Leaser) wait(ctx context.Context, w chan struct{}) bool {
	t := time.NewTimer(l.opt.WaitTimeout)
	defer t.Stop()
	select {
	case <-w:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

func (l *Leaser) done(ls *lease) {
	ls.mu.Lock()
	close(ls.busy)
	ls.busy, ls.kicked = nil, false
	ls.mu.Unlock()
}

// Settle records the actual cost of a request and returns what it charged
// to the lease: the value for event.Metering.ReservedMicros (0 for a zero
// Ticket). Below the estimate the difference returns to the lease; above
// it the lease pays the excess, possibly going negative (the documented
// overshoot).
func (l *Leaser) Settle(t Ticket, actual int64) int64 {
	ls := t.l
	if ls == nil {
		return 0
	}
	actual = max(actual, 0)
	ls.mu.Lock()
	if t.epoch == ls.epoch {
		ls.remaining += t.est - actual
	} else {
		// The lease that held the estimate is gone; the aggregator takes
		// the actual cost from the current one.
		ls.remaining -= actual
	}
	ls.inflight--
	ls.mu.Unlock()
	return actual
}

// chain resolves the agent and its ancestors with their policies.
func (l *Leaser) chain(ctx context.Context, a *control.Agent) ([]Link, error) {
	links := make([]Link, 0, len(a.Ancestors)+1)
	links = append(links, Link{Agent: a.ID, Policies: a.Policies})
	for _, id := range a.Ancestors {
		var pols []control.Policy
		if l.opt.Policies != nil {
			var err error
			if pols, err = l.opt.Policies(ctx, id); err != nil {
				return nil, fmt.Errorf("cannot load policies of ancestor %s: %w", id, err)
			}
		}
		links = append(links, Link{Agent: id, Policies: pols})
	}
	return links, nil
}

// refill asks Redis for headroom (need > 0: a waiting request's shortfall,
// granted whole or not at all, asking for want; need == 0: a background
// top-up or renewal). With est >= 0 the grant pays est first, so the
// request that waited for the round trip is served (ok). The caller owns
// ls.busy.
func (l *Leaser) refill(ctx context.Context, ls *lease, need, want, est int64) (t Ticket, ok bool, err error) {
	ls.mu.Lock()
	a, rem := ls.agent, ls.remaining
	ls.mu.Unlock()
	req := ReserveRequest{Root: ls.root, Owner: l.opt.Owner, LeaseTTL: l.opt.LeaseTTL, Now: l.opt.Now()}
	switch {
	case need > 0:
		req.Requested, req.MinGrant = max(want, need), need
	case rem < l.opt.LowWater:
		ls.mu.Lock()
		req.Requested = l.target(ls)
		ls.mu.Unlock()
		req.MinGrant = min(l.opt.MinGrant, req.Requested)
	}
	chain, err := l.chain(ctx, a)
	if err != nil {
		l.Errors.Add(1)
		return Ticket{}, false, err
	}
	req.Chain = chain
	if l.unusable.Load() {
		l.Errors.Add(1)
		return Ticket{}, false, errStoreNotReady
	}
	start := l.mono()
	l.RoundTrips.Add(1)
	g, err := l.store.Reserve(ctx, &req)
	if err != nil {
		l.Errors.Add(1)
		return Ticket{}, false, err
	}
	if req.Requested > 0 {
		l.Refills.Add(1)
	}
	t, ok = l.apply(ls, &req, g, start, est)
	return t, ok, nil
}

func (l *Leaser) apply(ls *lease, req *ReserveRequest, g Grant, start, est int64) (Ticket, bool) {
	now := l.mono()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if !g.Held && ls.held {
		// Reclaimed in Redis: what the old lease held is gone.
		ls.remaining = min(ls.remaining, 0)
		ls.epoch++
	}
	ls.remaining += g.Granted
	ls.held = g.Granted > 0 || g.Held
	ls.valid = 0
	if ls.held {
		ttl := int64(l.opt.LeaseTTL)
		ls.valid, ls.renewAt = start+ttl-ttl/8, start+ttl/3
	}
	ls.bound = Status{Agent: g.Bound, Window: g.BoundPolicy.Window, Rolling: g.BoundPolicy.Rolling, Limit: g.BoundPolicy.LimitMicros}
	ls.denyHead, ls.headKnown = max(g.Headroom-g.Granted, 0), true
	if g.Unlimited {
		ls.denyHead = MaxLimitMicros
	}
	ls.denyUntil = 0
	if req.Requested > 0 && g.Granted == 0 {
		ls.denyUntil = now + int64(l.opt.DenyFor)
	}
	if est < 0 || now >= ls.valid || ls.remaining < est {
		return Ticket{}, false
	}
	ls.remaining -= est
	ls.inflight++
	return Ticket{l: ls, est: est, epoch: ls.epoch}, true
}

// target is the size of a top-up: a lease, or near the limit half of what
// Redis had left outside leases at the last refill, so the last headroom is
// shared between replicas instead of taken by the first to ask. ls.mu held.
func (l *Leaser) target(ls *lease) int64 {
	if !ls.headKnown || ls.denyHead >= 2*l.opt.LeaseSize {
		return l.opt.LeaseSize
	}
	return max(ls.denyHead/2, l.opt.MinGrant)
}

func (l *Leaser) refiller() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case ls := <-l.kick:
			ls.mu.Lock()
			if ls.busy != nil {
				ls.kicked = false
				ls.mu.Unlock()
				continue
			}
			ls.busy = make(chan struct{})
			ls.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), l.opt.RefillTimeout)
			_, _, _ = l.refill(ctx, ls, 0, 0, -1) // counted in Errors; Take fails closed
			cancel()
			l.done(ls)
		}
	}
}

func (l *Leaser) snapshot() []*lease {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*lease, 0, len(l.leases))
	for _, ls := range l.leases {
		out = append(out, ls)
	}
	return out
}

// housekeeper returns idle leases and renews held ones nobody takes from
// (long requests in flight).
func (l *Leaser) housekeeper() {
	defer l.wg.Done()
	tick := time.NewTicker(min(l.opt.LeaseTTL/4, l.opt.IdleTimeout/2))
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		now := l.mono()
		for _, ls := range l.snapshot() {
			ls.mu.Lock()
			switch {
			case ls.busy != nil || !ls.held:
			case ls.inflight == 0 && now-ls.lastUse > int64(l.opt.IdleTimeout):
				ls.busy = make(chan struct{})
				ls.mu.Unlock()
				_ = l.release(ls)
				l.done(ls)
				continue
			case now > ls.renewAt && !ls.kicked:
				select {
				case l.kick <- ls:
					ls.kicked = true
				default:
				}
			}
			ls.mu.Unlock()
		}
	}
}

// release returns the unused part of the lease to Redis. The caller owns
// ls.busy.
func (l *Leaser) release(ls *lease) error {
	ls.mu.Lock()
	unused := max(ls.remaining, 0)
	held := ls.held
	ls.remaining, ls.held, ls.valid = 0, false, 0
	ls.epoch++
	ls.mu.Unlock()
	if !held {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opt.RefillTimeout)
	defer cancel()
	l.RoundTrips.Add(1)
	if _, err := l.store.Release(ctx, ls.root, ls.id, l.opt.Owner, unused, l.opt.Drain); err != nil {
		l.Errors.Add(1)
		return err
	}
	l.Releases.Add(1)
	return nil
}

// Close stops refills and returns every lease (what Redis cannot be told
// is reclaimed at the lease deadline). Tickets still in flight may be
// settled afterwards.
func (l *Leaser) Close(ctx context.Context) error {
	if l.closed.Swap(true) {
		return nil
	}
	close(l.stop)
	l.wg.Wait()
	var errs []error
	for _, ls := range l.snapshot() {
		ls.mu.Lock()
		w := ls.busy
		ls.mu.Unlock()
		if w != nil && !l.wait(ctx, w) {
			errs = append(errs, fmt.Errorf("cannot release lease of agent %s: refill still running", ls.id))
			continue
		}
		ls.mu.Lock()
		ls.busy = make(chan struct{})
		ls.mu.Unlock()
		if err := l.release(ls); err != nil {
			errs = append(errs, err)
		}
		l.done(ls)
	}
	return errors.Join(errs...)
}

// OptionsFromConfig returns the Leaser options the configuration sets
// (gateway.leaseSizeMicros, gateway.leaseTTL); the gateway adds Owner,
// Policies and, for tests, Now.
func OptionsFromConfig(cfg *config.Config) LeaserOptions {
	return LeaserOptions{LeaseSize: cfg.Gateway.LeaseSize, LeaseTTL: cfg.Gateway.LeaseTTL.D()}
}
