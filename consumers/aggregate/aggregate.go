// Package aggregate is the MetricsAggregator: it applies metering events to
// the spend buckets in Redis through budget.Store.ApplyBatch, which adds each
// spend to the agent and every ancestor and releases the matching
// reservation atomically behind a per-partition offset fence, so a replayed
// batch changes nothing.
//
// The fences make it exactly-once per Kafka record; records the gateway's
// spool drain produced (header SpooledHeader) may repeat an event id, and
// for those the ledger decides (see dedupe.go), so the totals are
// exactly-once per event id too.
package aggregate

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/event"
)

var (
	// appliedMicros counts the cost handed to ApplyBatch (replays that the
	// fence drops are counted again; the Redis buckets are not).
	appliedMicros   = metrics.NewCounter("caracal_aggregator_spend_applied_micros_total")
	lastBatchMicros atomicGauge
	_               = metrics.NewGauge("caracal_aggregator_last_batch_spend_micros", lastBatchMicros.get)
	lastEventTime   atomicGauge
	_               = metrics.NewGauge("caracal_aggregator_last_event_timestamp_seconds", func() float64 { return lastEventTime.get() / 1e6 })
)

type partKey struct {
	topic     string
	partition int32
}

// Aggregator is a runner.Handler.
type Aggregator struct {
	store *budget.Store
	group string

	ev     event.Metering
	spends map[partKey][]budget.Spend
	order  []partKey

	// flagged are the batch's spooled records (SpooledHeader); deduped is
	// set once the ledger decided about them (a retried batch keeps the
	// decision).
	flagged []flaggedRec
	deduped bool

	// LedgerPool and LedgerGroup are the ledger writer's database and
	// consumer group (<groupPrefix>-ledger). A batch holding spooled
	// records waits until the ledger writer stored offsets past them and
	// applies each only if the ledger kept that very copy. Without a pool
	// such a batch fails (the runner retries it): it is never applied
	// unchecked. Records without the header never use them.
	LedgerPool  *pgxpool.Pool
	LedgerGroup string
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// pollMin and pollMax bound the backoff of the wait for the ledger
	// (default 50 ms and 2 s); lastWaitLog rate-limits its log line.
	pollMin, pollMax time.Duration
	lastWaitLog      time.Time
	stats            stats

	// Guard, when set, runs before every batch and its release after it:
	// the budget totals must be complete (recovery.AutoReconciler rebuilds
	// them from the ledger when Redis lost them, never while a batch is
	// applied). An error holds the batch; the runner retries it.
	Guard func(ctx context.Context, b *runner.Batch) (release func(), err error)
}

// New returns an Aggregator that fences its batches under group.
func New(store *budget.Store, group string) *Aggregator {
	return &Aggregator{store: store, group: group, spends: map[partKey][]budget.Spend{},
		pollMin: 50 * time.Millisecond, pollMax: 2 * time.Second}
}

// Begin implements runner.Handler.
func (a *Aggregator) Begin() {
	for k := range a.spends {
		a.spends[k] = a.spends[k][:0]
	}
	a.order = a.order[:0]
	a.flagged = a.flagged[:0]
	a.deduped = false
}

// Decode implements runner.Handler.
func (a *Aggregator) Decode(r *kgo.Record) error {
	if err := event.DecodeMetering(r.Value, &a.ev); err != nil {
		return err
	}
	e := &a.ev
	k := partKey{r.Topic, r.Partition}
	list, seen := a.spends[k]
	if !seen || len(list) == 0 {
		a.order = append(a.order, k)
	}
	a.spends[k] = append(list, budget.Spend{
		Agent: e.Agent, Root: e.Root, Ancestors: append([]event.UUID(nil), e.Ancestors[:e.NumAncestors]...),
		CostMicros: e.CostMicros, TimeUnixUs: e.TimeUnixUs, ReservedMicros: e.ReservedMicros,
		Owner: string(e.Gateway), Offset: r.Offset,
	})
	if len(r.Headers) > 0 && spooled(r) {
		a.flagged = append(a.flagged, flaggedRec{k: k, idx: len(list), id: e.ID, ts: e.TimeUnixUs, offset: r.Offset})
	}
	return nil
}

// HandleBatch implements runner.Handler: one ApplyBatch per partition. A
// partial failure is retried whole; the fences make the repeat a no-op for
// the roots that were applied.
//
// Spooled records are first checked against the ledger (dedupe.go); a copy
// the ledger did not keep is applied with no cost and no reservation, so it
// still moves the fence.
func (a *Aggregator) HandleBatch(ctx context.Context, b *runner.Batch) error {
	if len(a.flagged) > 0 && !a.deduped {
		if err := a.dedupe(ctx); err != nil {
			return err
		}
		a.deduped = true
	}
	if a.Guard != nil {
		release, err := a.Guard(ctx, b)
		if err != nil {
			return err
		}
		defer release()
	}
	var sum, last int64
	for _, k := range a.order {
		list := a.spends[k]
		if err := a.store.ApplyBatch(ctx, a.group, k.topic, k.partition, list); err != nil {
			return fmt.Errorf("cannot apply spends of %s[%d]: %w", k.topic, k.partition, err)
		}
		for i := range list {
			sum += list[i].CostMicros
			last = max(last, list[i].TimeUnixUs)
		}
	}
	appliedMicros.AddInt64(sum)
	lastBatchMicros.set(float64(sum))
	if last > 0 {
		lastEventTime.set(float64(last))
	}
	return nil
}

// Stored implements runner.Handler: the fences live per root in Redis, so
// the aggregator starts from Kafka's committed offsets and the fences drop
// what was applied already.
func (a *Aggregator) Stored(context.Context, map[string][]int32) (runner.Offsets, error) {
	return nil, nil
}
