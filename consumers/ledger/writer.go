package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/event"
)

// Events further than this from now are rejected (to the DLQ): a corrupt
// timestamp must not create partitions for distant months.
const (
	maxEventAge    = 400 * 24 * time.Hour
	maxEventFuture = 24 * time.Hour
)

// Writer is the LedgerWriter, a runner.Handler: each batch is copied into a
// staging table and inserted with new global sequence numbers, duplicate
// event ids ignored, together with the consumed offsets, in one transaction.
type Writer struct {
	pool  *pgxpool.Pool
	group string
	now   func() time.Time

	ev     event.Metering
	rows   []stageRow
	months map[int64]bool // months (Unix month number) whose partitions exist
	seen   map[[16]byte]struct{}
	fresh  []int32 // indexes into rows of the first copy of each id
	buf    copyBuf // binary COPY data of the fast path

	// beforeCommit fails a transaction in tests.
	beforeCommit func() error
	// pause is the test-only hook of TestPauseBeforeCommitEnv (nil: off).
	pause *testPause
}

type stageRow struct {
	ord                          int32
	id                           [16]byte
	ts                           time.Time
	kind, pricing                int16
	agent, root                  [16]byte
	route, model, reqID, gateway string
	in, out, cost, reserved      int64
	currency                     string
	status                       int32
	latency                      int64
	partition                    int32
	offset                       int64
}

// NewWriter returns a Writer storing offsets under group.
func NewWriter(pool *pgxpool.Pool, group string) *Writer {
	return &Writer{pool: pool, group: group, now: time.Now, months: map[int64]bool{}, seen: map[[16]byte]struct{}{},
		pause: readTestPause()}
}

// Fork implements runner.Forker: a Writer for the same database and group
// with its own batch buffer, so the runner decodes the next batch while
// this one is stored. HandleBatch calls of the two never overlap.
func (w *Writer) Fork() runner.Handler {
	return &Writer{pool: w.pool, group: w.group, now: w.now, months: map[int64]bool{}, seen: map[[16]byte]struct{}{},
		beforeCommit: w.beforeCommit, pause: w.pause}
}

// Begin implements runner.Handler.
func (w *Writer) Begin() { w.rows = w.rows[:0] }

// Decode implements runner.Handler.
func (w *Writer) Decode(r *kgo.Record) error {
	if err := event.DecodeMetering(r.Value, &w.ev); err != nil {
		return err
	}
	e := &w.ev
	now := w.now().UnixMicro()
	if e.TimeUnixUs < now-maxEventAge.Microseconds() || e.TimeUnixUs > now+maxEventFuture.Microseconds() {
		return fmt.Errorf("%w: ts_us %d is too far from now", event.ErrInvalid, e.TimeUnixUs)
	}
	w.rows = append(w.rows, stageRow{
		ord: int32(len(w.rows)), id: e.ID, ts: time.UnixMicro(e.TimeUnixUs).UTC(),
		kind: int16(e.Kind), pricing: int16(e.Pricing), agent: e.Agent, root: e.Root,
		route: string(e.Route), model: string(e.Model), reqID: string(e.RequestID), gateway: string(e.Gateway),
		in: e.InputTokens, out: e.OutputTokens, cost: e.CostMicros, reserved: e.ReservedMicros,
		currency: string(e.Currency[:]), status: int32(e.Status), latency: e.LatencyUs,
		partition: r.Partition, offset: r.Offset,
	})
	return nil
}

// Stored implements runner.Handler.
func (w *Writer) Stored(ctx context.Context, assigned map[string][]int32) (runner.Offsets, error) {
	return runner.StoredOffsets(ctx, w.pool, w.group, assigned)
}

const createStage = `CREATE TEMP TABLE IF NOT EXISTS ledger_stage (
	ord int, event_id uuid, ts timestamptz, kind smallint, agent_id uuid, root_id uuid,
	route text, model text, request_id text, gateway text, input_tokens bigint,
	output_tokens bigint, cost_micros bigint, reserved_micros bigint, currency char(3),
	status int, latency_us bigint, pricing smallint, src_partition int, src_offset bigint
) ON COMMIT DELETE ROWS`

var stageColumns = []string{"ord", "event_id", "ts", "kind", "agent_id", "root_id", "route", "model",
	"request_id", "gateway", "input_tokens", "output_tokens", "cost_micros", "reserved_micros",
	"currency", "status", "latency_us", "pricing", "src_partition", "src_offset"}

// insertFresh numbers the staged rows that are new (first copy of each event
// id, in batch order) from ledger_counter and inserts them; the caller holds
// the counter's row lock, so seq is dense and commits in order.
const insertFresh = `WITH fresh AS (
	SELECT DISTINCT ON (s.event_id) s.* FROM ledger_stage s
	WHERE NOT EXISTS (SELECT 1 FROM ledger_ids i WHERE i.event_id = s.event_id)
	ORDER BY s.event_id, s.ord
), numbered AS (
	SELECT f.*, (SELECT next_seq FROM ledger_counter) + row_number() OVER (ORDER BY f.ord) - 1 AS seq FROM fresh f
), ids AS (
	INSERT INTO ledger_ids (event_id, seq) SELECT event_id, seq FROM numbered
), ins AS (
	INSERT INTO ledger (seq, event_id, ts, kind, agent_id, root_id, route, model, request_id, gateway,
		input_tokens, output_tokens, cost_micros, reserved_micros, currency, status, latency_us, pricing,
		src_partition, src_offset)
	SELECT seq, event_id, ts, kind, agent_id, root_id, route, model, request_id, gateway,
		input_tokens, output_tokens, cost_micros, reserved_micros, currency, status, latency_us, pricing,
		src_partition, src_offset FROM numbered
	RETURNING 1
)
UPDATE ledger_counter SET next_seq = next_seq + (SELECT count(*) FROM ins)`

// HandleBatch implements runner.Handler.
func (w *Writer) HandleBatch(ctx context.Context, b *runner.Batch) error {
	if err := w.ensurePartitions(ctx); err != nil {
		return err
	}
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cannot begin the ledger transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	copied := false
	if len(w.rows) > 0 {
		if copied, err = w.copyFresh(ctx, tx); err != nil {
			return err
		}
	}
	if len(w.rows) > 0 && !copied {
		if _, err := tx.Exec(ctx, createStage); err != nil {
			return fmt.Errorf("cannot create the ledger staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ledger_stage"}, stageColumns, &stageSource{rows: w.rows, i: -1}); err != nil {
			return fmt.Errorf("cannot copy the batch into the staging table: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT next_seq FROM ledger_counter FOR UPDATE`); err != nil {
			return fmt.Errorf("cannot lock the ledger counter: %w", err)
		}
		if _, err := tx.Exec(ctx, insertFresh); err != nil {
			return fmt.Errorf("cannot insert ledger entries: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, runner.StoreOffsetsSQL, runner.OffsetArgs(w.group, b.Next)...); err != nil {
		return fmt.Errorf("cannot store consumer offsets: %w", err)
	}
	if w.beforeCommit != nil {
		if err := w.beforeCommit(); err != nil {
			return err
		}
	}
	if err := w.pauseBeforeCommit(ctx, b); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cannot commit the ledger batch: %w", err)
	}
	return nil
}

func monthOf(t time.Time) int64 { return int64(t.Year())*12 + int64(t.Month()) - 1 }

// ensurePartitions creates the monthly partitions of the batch's months (and
// the next) the first time the writer sees a month.
func (w *Writer) ensurePartitions(ctx context.Context) error {
	var lo, hi time.Time
	missing := false
	for i := range w.rows {
		t := w.rows[i].ts
		if !w.months[monthOf(t)] {
			missing = true
		}
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if hi.IsZero() || t.After(hi) {
			hi = t
		}
	}
	if !missing {
		return nil
	}
	if _, err := w.pool.Exec(ctx, `SELECT ledger_ensure_partitions($1, $2, 1)`, lo, hi); err != nil {
		return fmt.Errorf("cannot create ledger partitions: %w", err)
	}
	for m := monthOf(lo); m <= monthOf(hi)+1; m++ {
		w.months[m] = true
	}
	return nil
}

// stageSource feeds the rows to CopyFrom with one reused value slice.
type stageSource struct {
	rows []stageRow
	i    int
	vals [20]any
}

func (s *stageSource) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *stageSource) Err() error { return nil }
func (s *stageSource) Values() ([]any, error) {
	r := &s.rows[s.i]
	v := &s.vals
	v[0], v[1], v[2], v[3], v[4], v[5] = r.ord, r.id, r.ts, r.kind, r.agent, r.root
	v[6], v[7], v[8], v[9] = r.route, r.model, r.reqID, r.gateway
	v[10], v[11], v[12], v[13] = r.in, r.out, r.cost, r.reserved
	v[14], v[15], v[16], v[17], v[18], v[19] = r.currency, r.status, r.latency, r.pricing, r.partition, r.offset
	return v[:], nil
}

var ledgerColumns = []string{"seq", "event_id", "ts", "kind", "agent_id", "root_id", "route", "model",
	"request_id", "gateway", "input_tokens", "output_tokens", "cost_micros", "reserved_micros",
	"currency", "status", "latency_us", "pricing", "src_partition", "src_offset"}

// copyFresh is the fast path of a batch whose ids are all new (the common
// case: replays happen only after a crash or a rebalance). Under the
// counter's row lock it numbers the first copy of each id in batch order
// and COPYs the ids into ledger_ids inside a savepoint: the primary key
// refuses an id already in the ledger, and then the savepoint is rolled
// back and false returned, for the staging path to drop the duplicates.
// Otherwise the rows are COPYed into ledger and the counter moved.
func (w *Writer) copyFresh(ctx context.Context, tx pgx.Tx) (bool, error) {
	var next int64
	if err := tx.QueryRow(ctx, `SELECT next_seq FROM ledger_counter FOR UPDATE`).Scan(&next); err != nil {
		return false, fmt.Errorf("cannot lock the ledger counter: %w", err)
	}
	clear(w.seen)
	w.fresh = w.fresh[:0]
	for i := range w.rows {
		if _, dup := w.seen[w.rows[i].id]; dup {
			continue
		}
		w.seen[w.rows[i].id] = struct{}{}
		w.fresh = append(w.fresh, int32(i))
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT ledger_fast`); err != nil {
		return false, fmt.Errorf("cannot set a savepoint: %w", err)
	}
	w.appendIDs(&w.buf, next)
	if err := copyBinary(ctx, tx, "ledger_ids", []string{"event_id", "seq"}, &w.buf); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation: a replayed id
			if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT ledger_fast`); err != nil {
				return false, fmt.Errorf("cannot roll back to the savepoint: %w", err)
			}
			return false, nil
		}
		return false, fmt.Errorf("cannot copy ledger ids: %w", err)
	}
	w.appendEntries(&w.buf, next)
	if err := copyBinary(ctx, tx, "ledger", ledgerColumns, &w.buf); err != nil {
		return false, fmt.Errorf("cannot copy ledger entries: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE ledger_counter SET next_seq = $1`, next+int64(len(w.fresh))); err != nil {
		return false, fmt.Errorf("cannot move the ledger counter: %w", err)
	}
	return true, nil
}

// freshSource feeds the first copy of each id, numbered from next, to
// pgx.CopyFrom: (event_id, seq) for ledger_ids, or ledgerColumns when full
// (the benchmarks' baseline and the tests' reference encoding; the writer
// encodes them itself, copybin.go).
type freshSource struct {
	w    *Writer
	next int64
	i    int
	full bool
	vals [20]any
}

func (s *freshSource) Next() bool { s.i++; return s.i < len(s.w.fresh) }
func (s *freshSource) Err() error { return nil }
func (s *freshSource) Values() ([]any, error) {
	r := &s.w.rows[s.w.fresh[s.i]]
	seq := s.next + int64(s.i)
	v := &s.vals
	if !s.full {
		v[0], v[1] = r.id, seq
		return v[:2], nil
	}
	v[0], v[1], v[2], v[3], v[4], v[5] = seq, r.id, r.ts, r.kind, r.agent, r.root
	v[6], v[7], v[8], v[9] = r.route, r.model, r.reqID, r.gateway
	v[10], v[11], v[12], v[13] = r.in, r.out, r.cost, r.reserved
	v[14], v[15], v[16], v[17], v[18], v[19] = r.currency, r.status, r.latency, r.pricing, r.partition, r.offset
	return v[:], nil
}
