package recovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
)

// ReconcileOptions say what to rebuild.
type ReconcileOptions struct {
	// Topic is the metering topic; Group the MetricsAggregator's group (its
	// resume offsets and fences); LedgerGroup the ledger writer's group.
	Topic, Group, LedgerGroup string
	// Roots limits the rebuild to these trees (default: every tree).
	Roots []event.UUID
	// Resume overrides the aggregator's resume offset of some partitions
	// (the aggregator reconciling from inside a batch passes the batch's).
	Resume map[int32]int64
	// Wait bounds the wait for the ledger to reach the resume offsets.
	Wait time.Duration
	// ReadyKey is deleted first and set last (default DefaultReadyKey).
	ReadyKey string
	Now      time.Time
	// Progress sees each tree done.
	Progress func(done, total int)
	// Kafka, when set, is the configuration to read the metering topic
	// above the resume offsets with: what those events charged to leases
	// whose record Redis lost is reserved again (budget.RestorePending),
	// released and reclaimed after Drain (default 10 minutes) unless the
	// aggregator applies it first. Nil: not restored (docs/budget.md,
	// overshoot case 4).
	Kafka *config.Config
	Drain time.Duration
}

// ReconcileReport says what was rebuilt.
type ReconcileReport struct {
	Roots   int
	Buckets int
	Entries int64
	Micros  int64
	Resume  map[int32]int64
	// Pending is the number of events above the resume offsets that
	// charged a lease; PendingLeases how many leases were restored with
	// PendingMicros in all.
	Pending, PendingLeases, PendingMicros int64
}

// Reconcile rebuilds the committed spend of every tree in Redis from the
// ledger. The totals are the ledger entries below the offsets the
// aggregator resumes from (its committed offsets in Kafka), and each tree's
// fences are set just below them, so the aggregator continues exactly where
// the totals end: nothing is counted twice or missed. The aggregator must
// not apply batches meanwhile (stop it, or let it reconcile itself through
// AutoReconciler). Leases and reservations of running gateways stay.
func Reconcile(ctx context.Context, pool *pgxpool.Pool, st *budget.Store, adm *kadm.Client, opt ReconcileOptions) (*ReconcileReport, error) {
	if opt.Topic == "" || opt.Group == "" || opt.LedgerGroup == "" {
		return nil, errors.New("cannot reconcile: topic, aggregator group and ledger group are required")
	}
	if opt.ReadyKey == "" {
		opt.ReadyKey = DefaultReadyKey
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Wait <= 0 {
		opt.Wait = 2 * time.Minute
	}
	resume, err := GroupResume(ctx, adm, opt.Group, opt.Topic)
	if err != nil {
		return nil, err
	}
	maps.Copy(resume, opt.Resume)
	if err := waitLedger(ctx, pool, opt.LedgerGroup, opt.Topic, resume, opt.Wait); err != nil {
		return nil, err
	}
	if err := ClearReady(ctx, st.Client(), opt.ReadyKey); err != nil {
		return nil, err
	}
	tot, err := ComputeTotals(ctx, pool, resume, opt.Now)
	if err != nil {
		return nil, err
	}
	roots := opt.Roots
	if len(roots) == 0 {
		if roots, err = Roots(ctx, pool); err != nil {
			return nil, err
		}
		for r := range tot.ByRoot {
			if !containsUUID(roots, r) {
				roots = append(roots, r)
			}
		}
	}
	rep := &ReconcileReport{Roots: len(roots), Resume: resume}
	for i, root := range roots {
		list := tot.ByRoot[root]
		if err := applyRoot(ctx, st, root, list, opt.Group, opt.Topic, resume); err != nil {
			return rep, err
		}
		rep.Buckets += len(list)
		if opt.Progress != nil {
			opt.Progress(i+1, len(roots))
		}
	}
	rep.Entries, rep.Micros = tot.Entries, tot.Micros
	if opt.Kafka != nil {
		if err := restorePending(ctx, st, adm, opt, roots, resume, rep); err != nil {
			return rep, err
		}
	}
	if err := MarkReady(ctx, st.Client(), opt.ReadyKey); err != nil {
		return rep, err
	}
	return rep, nil
}

// applyRoot replaces one tree's buckets and fences.
func applyRoot(ctx context.Context, st *budget.Store, root event.UUID, list []budget.BucketTotal, group, topic string, resume map[int32]int64) error {
	if err := st.Reset(ctx, root); err != nil {
		return err
	}
	if len(list) > 0 {
		if err := st.SetTotals(ctx, root, list); err != nil {
			return err
		}
	}
	for p, next := range resume {
		if next > 0 {
			if err := st.SetFence(ctx, root, group, topic, p, next-1); err != nil {
				return err
			}
		}
	}
	return nil
}

func containsUUID(list []event.UUID, u event.UUID) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}

// waitLedger waits until the ledger writer stored every partition up to the
// resume offsets: the ledger sums below them are then final.
func waitLedger(ctx context.Context, q Querier, group, topic string, resume map[int32]int64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		stored, err := StoredOffsets(ctx, q, group, topic)
		if err != nil {
			return err
		}
		behind := ""
		for p, want := range resume {
			if stored[p] < want {
				behind = fmt.Sprintf("partition %d at %d, the aggregator resumes at %d", p, stored[p], want)
				break
			}
		}
		if behind == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cannot reconcile: the ledger (group %s) is behind the aggregator: %s", group, behind)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// restorePending reserves again what the events above resume charged to
// leases whose record is gone, for the trees in roots.
func restorePending(ctx context.Context, st *budget.Store, adm *kadm.Client, opt ReconcileOptions, roots []event.UUID, resume map[int32]int64, rep *ReconcileReport) error {
	if opt.Drain <= 0 {
		opt.Drain = 10 * time.Minute
	}
	pend, n, err := readPending(ctx, opt.Kafka, adm, opt.Topic, resume, opt.Wait)
	if err != nil {
		return err
	}
	rep.Pending = n
	for _, root := range roots {
		list := pend[root]
		if len(list) == 0 {
			continue
		}
		k, err := st.RestorePending(ctx, root, list, opt.Drain)
		if err != nil {
			return err
		}
		rep.PendingLeases += int64(k)
		for _, l := range list {
			rep.PendingMicros += l.Micros
		}
	}
	return nil
}
