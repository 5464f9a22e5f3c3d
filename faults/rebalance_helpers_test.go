package faults

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/aggregate"
	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/recovery"
	"github.com/caracal-gw/caracal/consumers/runner"
)

// firstPairs holds, per stack, the cancels of the runners the stack started
// itself (its ledger writer and aggregator), so a test can stop them while
// the stack's sealer and auto-reconciler keep running.
var firstPairs sync.Map // *stack -> *pairCancels

type pairCancels struct {
	mu      sync.Mutex
	cancels []context.CancelFunc
}

// runnerContext is the context of a runner the stack starts: ctx, also
// cancelled by stopFirstPair.
func (s *stack) runnerContext(ctx context.Context) context.Context {
	c, cancel := context.WithCancel(ctx)
	v, loaded := firstPairs.LoadOrStore(s, &pairCancels{})
	if !loaded {
		s.t.Cleanup(func() { firstPairs.Delete(s) })
	}
	pc := v.(*pairCancels)
	pc.mu.Lock()
	pc.cancels = append(pc.cancels, cancel)
	pc.mu.Unlock()
	return c
}

// stopFirstPair cancels the runners the stack started; each abandons its
// batch in flight uncommitted and leaves its group.
func (s *stack) stopFirstPair() int {
	v, ok := firstPairs.Load(s)
	if !ok {
		return 0
	}
	pc := v.(*pairCancels)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, cancel := range pc.cancels {
		cancel()
	}
	return len(pc.cancels)
}

// assignments records the distinct partitions a runner was ever assigned.
type assignments struct {
	mu    sync.Mutex
	parts map[int32]bool
}

func (a *assignments) onAssigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			a.parts[p] = true
		}
	}
}

func (a *assignments) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.parts)
}

// secondPair is a second ledger writer and a second metrics aggregator (with
// its own auto-reconciler) in the stack's consumer groups.
type secondPair struct {
	ledger, metrics *assignments
}

// startSecondPair runs a second ledger writer and aggregator in the groups
// of the stack's own until the test ends.
func (s *stack) startSecondPair() *secondPair {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	s.t.Cleanup(func() { cancel(); wg.Wait() })
	tp := s.cfg.Kafka.Topics
	adm, err := kgo.NewClient(kgo.SeedBrokers(s.k.addr()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(adm.Close)
	agg := aggregate.New(s.rc, "faults-metrics")
	agg.LedgerPool, agg.LedgerGroup = s.pool, "faults-ledger"
	ar := &recovery.AutoReconciler{Pool: s.pool, Store: s.rc, Admin: kadm.NewClient(adm),
		Opt: recovery.ReconcileOptions{Topic: tp.Metering, Group: "faults-metrics", LedgerGroup: "faults-ledger", Wait: 5 * time.Minute}}
	agg.Guard = ar.Guard
	wg.Add(1)
	go func() { defer wg.Done(); ar.Run(ctx) }() //nolint:errcheck
	sp := &secondPair{ledger: &assignments{parts: map[int32]bool{}}, metrics: &assignments{parts: map[int32]bool{}}}
	for _, p := range []struct {
		name, group string
		h           runner.Handler
		a           *assignments
	}{
		{"metrics-2", "faults-metrics", agg, sp.metrics},
		{"ledger-2", "faults-ledger", ledger.NewWriter(s.pool, "faults-ledger"), sp.ledger},
	} {
		r, err := runner.New(s.cfg, p.h, runner.Options{Name: p.name, Group: p.group, Topics: []string{tp.Metering}, DLQTopic: tp.DLQ,
			MaxPollRecords: 500, RetryMin: 50 * time.Millisecond, RetryMax: time.Second,
			ExtraOpts: []kgo.Opt{kgo.OnPartitionsAssigned(p.a.onAssigned)}})
		if err != nil {
			s.t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); defer r.Close(); r.Run(ctx) }() //nolint:errcheck
	}
	return sp
}

// waitAssigned waits (bounded) until both runners of the pair were assigned
// at least n distinct partitions, and reports whether they were.
func (sp *secondPair) waitAssigned(n int, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if sp.ledger.count() >= n && sp.metrics.count() >= n {
			return true
		}
	}
	return false
}
