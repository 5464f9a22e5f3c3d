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
// the ready key is gone (Redis restarted empty, or a new installation):
// aggregate.Aggregator.EnsureReady calls it before each batch. The batch is
// held (it reconciles from inside HandleBatch, so nothing is applied
// meanwhile) and resumes right after the totals it reconciled.
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
}

// EnsureReady reconciles when the ready key is missing.
func (ar *AutoReconciler) EnsureReady(ctx context.Context, b *runner.Batch) error {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	every := ar.CheckEvery
	if every <= 0 {
		every = time.Second
	}
	if time.Since(ar.checkedAt) < every {
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
	opt.Resume = map[int32]int64{}
	for _, r := range b.Records {
		if r.Topic != opt.Topic {
			continue
		}
		if o, seen := opt.Resume[r.Partition]; !seen || r.Offset < o {
			opt.Resume[r.Partition] = r.Offset
		}
	}
	log := ar.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Warn("budget totals missing (Redis lost its data?): reconciling from the ledger", "ready_key", key)
	rep, err := Reconcile(ctx, ar.Pool, ar.Store, ar.Admin, opt)
	if err != nil {
		return fmt.Errorf("cannot reconcile the budget totals: %w", err)
	}
	log.Info("budget totals reconciled", "roots", rep.Roots, "buckets", rep.Buckets, "entries", rep.Entries, "micros", rep.Micros)
	ar.checkedAt = time.Now()
	return nil
}
