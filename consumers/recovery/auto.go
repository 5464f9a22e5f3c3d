package recovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
)

// AutoReconciler lets the MetricsAggregator rebuild the totals itself when
// the ready key is gone (Redis restarted empty, or a new installation).
// aggregate.Aggregator.Guard is its Guard: before a batch it reconciles
// from the ledger up to the batch's first offsets; Run checks while the
// aggregator is idle (gateways fail closed without the key, so no new batch
// may come). A reconcile never runs while a batch is applied.
type AutoReconciler struct {
	Pool  *pgxpool.Pool
	Store *budget.Store
	Admin *kadm.Client
	Opt   ReconcileOptions
	// CheckEvery bounds how often the ready key is read (default 1 s).
	CheckEvery time.Duration
	Logger     *slog.Logger

	mu        sync.Mutex
	checkedAt time.Time
	// next holds the offsets after the last applied batch, which Kafka may
	// not have committed yet.
	next map[int32]int64
}

func (ar *AutoReconciler) every() time.Duration {
	if ar.CheckEvery <= 0 {
		return time.Second
	}
	return ar.CheckEvery
}

// Guard reconciles, when the ready key is missing, up to the batch's first
// offsets; the batch is applied before release is called.
func (ar *AutoReconciler) Guard(ctx context.Context, b *runner.Batch) (func(), error) {
	ar.mu.Lock()
	resume := map[int32]int64{}
	for _, r := range b.Records {
		if r.Topic != ar.Opt.Topic {
			continue
		}
		if o, seen := resume[r.Partition]; !seen || r.Offset < o {
			resume[r.Partition] = r.Offset
		}
	}
	if err := ar.ensure(ctx, resume); err != nil {
		ar.mu.Unlock()
		return nil, err
	}
	return func() {
		if ar.next == nil {
			ar.next = map[int32]int64{}
		}
		for p, o := range b.Next[ar.Opt.Topic] {
			ar.next[p] = max(ar.next[p], o)
		}
		ar.mu.Unlock()
	}, nil
}

// Run checks the ready key every CheckEvery between batches until ctx is
// done; failures are logged and retried.
func (ar *AutoReconciler) Run(ctx context.Context) error {
	t := time.NewTicker(ar.every())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ar.mu.Lock()
		resume := map[int32]int64{}
		for p, o := range ar.next {
			resume[p] = o
		}
		err := ar.ensure(ctx, resume)
		ar.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			ar.logger().Error("cannot reconcile the budget totals", "err", err)
		}
	}
}

func (ar *AutoReconciler) logger() *slog.Logger {
	if ar.Logger == nil {
		return slog.Default()
	}
	return ar.Logger
}

// ensure reconciles when the key is missing; resume overrides (upwards) the
// group's committed offsets. ar.mu is held.
func (ar *AutoReconciler) ensure(ctx context.Context, resume map[int32]int64) error {
	if time.Since(ar.checkedAt) < ar.every() {
		return nil
	}
	key := ar.Opt.ReadyKey
	if key == "" {
		key = DefaultReadyKey
	}
	ok, err := IsReady(ctx, ar.Store.Client(), key)
	if err != nil {
		return err
	}
	if ok {
		ar.checkedAt = time.Now()
		return nil
	}
	opt := ar.Opt
	committed, err := GroupResume(ctx, ar.Admin, opt.Group, opt.Topic)
	if err != nil {
		return err
	}
	for p, o := range resume {
		committed[p] = max(committed[p], o)
	}
	opt.Resume = committed
	ar.logger().Warn("budget totals missing (Redis lost its data?): reconciling from the ledger", "ready_key", key)
	rep, err := Reconcile(ctx, ar.Pool, ar.Store, ar.Admin, opt)
	if err != nil {
		return fmt.Errorf("cannot reconcile the budget totals: %w", err)
	}
	ar.logger().Info("budget totals reconciled", "roots", rep.Roots, "buckets", rep.Buckets, "entries", rep.Entries, "micros", rep.Micros)
	ar.checkedAt = time.Now()
	return nil
}
