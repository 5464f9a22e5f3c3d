package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/event"
)

// SpooledHeader is the Kafka record header (value SpooledValue) the
// gateway's spool drain puts on every record it produces. Records produced
// directly carry none. The spool drain is at least once, so an event id may
// reach the metering topic twice, and always with at least one spooled
// copy: a direct copy then a spooled one (same key, same partition, the
// direct one first), or two spooled ones.
const (
	SpooledHeader = "caracal-spooled"
	SpooledValue  = "1"
)

var (
	duplicatesSkipped = metrics.NewCounter("caracal_aggregator_duplicates_skipped_total")
	spooledChecked    = metrics.NewCounter("caracal_aggregator_spooled_records_total")
	ledgerWaits       = metrics.NewCounter("caracal_aggregator_ledger_waits_total")
	waitingNow        atomic.Int64
	_                 = metrics.NewGauge("caracal_aggregator_waiting_for_ledger", func() float64 {
		if waitingNow.Load() > 0 {
			return 1
		}
		return 0
	})
)

// errNoLedger fails a batch with spooled records when the aggregator has no
// database: applying them unchecked could count an event twice.
var errNoLedger = errors.New("spooled metering records need the ledger to be deduplicated, and the aggregator has no database: batch held")

// waitLogEvery rate-limits the log line of the wait for the ledger.
const waitLogEvery = time.Minute

// flaggedRec is a spooled record of the batch: spends[k][idx] is its spend.
type flaggedRec struct {
	k      partKey
	idx    int
	id     event.ID
	ts     int64
	offset int64
}

// stats are per Aggregator (tests); the metrics above are per process.
type stats struct {
	skipped, checked, polls atomic.Int64
	waiting                 atomic.Bool
}

func spooled(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == SpooledHeader && string(h.Value) == SpooledValue {
			return true
		}
	}
	return false
}

func (a *Aggregator) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// dedupe waits until the ledger writer stored offsets past every spooled
// record of the batch, then asks the ledger (one query) which copy of each
// of their event ids it kept. A spooled record the ledger kept (its
// src_partition and src_offset are the record's own) is applied; any other
// is a duplicate: its spend is emptied (no cost, no reservation released)
// and stays in the batch, so the fence still moves past it. A spooled
// record whose event id the ledger does not hold at all (the ledger sent it
// to the DLQ) is applied, as a record without the header would be.
func (a *Aggregator) dedupe(ctx context.Context) error {
	if a.LedgerPool == nil || a.LedgerGroup == "" {
		return errNoLedger
	}
	if err := a.waitForLedger(ctx); err != nil {
		return err
	}
	// One row per event id (two copies of one event may share a batch).
	ids := make([][16]byte, 0, len(a.flagged))
	ts := make([]time.Time, 0, len(a.flagged))
	seen := make(map[event.ID]struct{}, len(a.flagged))
	for _, f := range a.flagged {
		if _, ok := seen[f.id]; ok {
			continue
		}
		seen[f.id] = struct{}{}
		ids = append(ids, f.id)
		ts = append(ts, time.UnixMicro(f.ts).UTC())
	}
	type src struct {
		partition int32
		offset    int64
	}
	kept := make(map[event.ID]src, len(ids))
	// Per id: one probe of ledger_ids' primary key, then one of the
	// ledger's unique (seq, ts) index in the partition of the event's ts
	// (pruned per row). The LIMITs keep both lateral lookups index probes
	// whatever the table statistics say. A ledger row whose ts is not its
	// event's (never: the writer takes it from the event) is found by seq
	// alone below.
	rows, err := a.LedgerPool.Query(ctx, `SELECT x.event_id, i.seq, l.src_partition, l.src_offset
		FROM unnest($1::uuid[], $2::timestamptz[]) AS x(event_id, ts)
		CROSS JOIN LATERAL (SELECT seq FROM ledger_ids WHERE event_id = x.event_id LIMIT 1) i
		LEFT JOIN LATERAL (SELECT src_partition, src_offset FROM ledger l
			WHERE l.seq = i.seq AND l.ts = x.ts LIMIT 1) l ON true`, ids, ts)
	if err != nil {
		return fmt.Errorf("cannot read the ledger's copies of spooled records: %w", err)
	}
	var orphans []int64
	orphanID := map[int64]event.ID{}
	for rows.Next() {
		var id [16]byte
		var seq int64
		var part *int32
		var off *int64
		if err := rows.Scan(&id, &seq, &part, &off); err != nil {
			rows.Close()
			return fmt.Errorf("cannot read the ledger's copies of spooled records: %w", err)
		}
		if part == nil || off == nil {
			orphans = append(orphans, seq)
			orphanID[seq] = event.ID(id)
			continue
		}
		kept[event.ID(id)] = src{*part, *off}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read the ledger's copies of spooled records: %w", err)
	}
	if len(orphans) > 0 {
		rows, err := a.LedgerPool.Query(ctx, `SELECT seq, src_partition, src_offset FROM ledger WHERE seq = ANY($1)`, orphans)
		if err != nil {
			return fmt.Errorf("cannot read the ledger's copies of spooled records: %w", err)
		}
		for rows.Next() {
			var seq, off int64
			var part int32
			if err := rows.Scan(&seq, &part, &off); err != nil {
				rows.Close()
				return fmt.Errorf("cannot read the ledger's copies of spooled records: %w", err)
			}
			kept[orphanID[seq]] = src{part, off}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("cannot read the ledger's copies of spooled records: %w", err)
		}
		for _, seq := range orphans {
			if _, ok := kept[orphanID[seq]]; !ok {
				return fmt.Errorf("ledger_ids holds seq %d for event %s but the ledger has no such row", seq, event.UUID(orphanID[seq]))
			}
		}
	}
	var skipped int64
	log := a.logger()
	for _, f := range a.flagged {
		k, ok := kept[f.id]
		if !ok {
			log.Warn("spooled metering record not in the ledger (sent to its DLQ?); applied", "event_id", event.UUID(f.id),
				"topic", f.k.topic, "partition", f.k.partition, "offset", f.offset)
			continue
		}
		if k.partition == f.k.partition && k.offset == f.offset {
			continue
		}
		sp := &a.spends[f.k][f.idx]
		log.Debug("duplicate metering record skipped", "event_id", event.UUID(f.id), "topic", f.k.topic,
			"partition", f.k.partition, "offset", f.offset, "ledger_partition", k.partition, "ledger_offset", k.offset,
			"cost_micros", sp.CostMicros)
		sp.CostMicros, sp.ReservedMicros, sp.Owner = 0, 0, ""
		skipped++
	}
	spooledChecked.Add(len(a.flagged))
	a.stats.checked.Add(int64(len(a.flagged)))
	duplicatesSkipped.AddInt64(skipped)
	a.stats.skipped.Add(skipped)
	return nil
}

// waitForLedger polls consumer_offsets, with backoff, until the ledger
// writer's group stored, on the partition of every spooled record, a next
// offset above it (the ledger has decided about that record).
func (a *Aggregator) waitForLedger(ctx context.Context) error {
	need := map[partKey]int64{} // highest spooled offset per partition
	var topics []string
	for _, f := range a.flagged {
		if o, ok := need[f.k]; !ok || f.offset > o {
			if !ok && !containsString(topics, f.k.topic) {
				topics = append(topics, f.k.topic)
			}
			need[f.k] = f.offset
		}
	}
	delay := a.pollMin
	waiting := false
	defer func() {
		if waiting {
			waitingNow.Add(-1)
			a.stats.waiting.Store(false)
		}
	}()
	for {
		behind, err := a.ledgerBehind(ctx, topics, need)
		if err != nil {
			return err
		}
		if behind == nil {
			return nil
		}
		if !waiting {
			waiting = true
			waitingNow.Add(1)
			a.stats.waiting.Store(true)
			ledgerWaits.Inc()
		}
		if now := time.Now(); now.Sub(a.lastWaitLog) >= waitLogEvery {
			a.lastWaitLog = now
			a.logger().Info("waiting for the ledger writer to pass spooled metering records (is it running?)",
				"ledger_group", a.LedgerGroup, "topic", behind.topic, "partition", behind.partition,
				"offset", need[*behind])
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, a.pollMax)
	}
}

// ledgerBehind returns a partition whose ledger offset does not pass need,
// or nil.
func (a *Aggregator) ledgerBehind(ctx context.Context, topics []string, need map[partKey]int64) (*partKey, error) {
	a.stats.polls.Add(1)
	rows, err := a.LedgerPool.Query(ctx, `SELECT topic, partition, next_offset FROM consumer_offsets
		WHERE group_id = $1 AND topic = ANY($2)`, a.LedgerGroup, topics)
	if err != nil {
		return nil, fmt.Errorf("cannot read the ledger writer's offsets: %w", err)
	}
	defer rows.Close()
	next := make(map[partKey]int64, len(need))
	for rows.Next() {
		var k partKey
		var n int64
		if err := rows.Scan(&k.topic, &k.partition, &n); err != nil {
			return nil, fmt.Errorf("cannot read the ledger writer's offsets: %w", err)
		}
		next[k] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the ledger writer's offsets: %w", err)
	}
	for k, o := range need {
		if n, ok := next[k]; !ok || n <= o {
			return &k, nil
		}
	}
	return nil, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
