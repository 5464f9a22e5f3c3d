package ledger

import (
	"bytes"
	"context"
	"fmt"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/internal/event"
)

// VerificationFailures counts failed verifications (CLI and background).
var VerificationFailures = metrics.NewCounter("caracal_merkle_verification_failures_total")

// DB is a pool, a connection or a transaction (tests verify inside one).
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Problem names the first thing verification found wrong.
type Problem struct {
	Seq     int64    `json:"seq"`
	EventID event.ID `json:"-"`
	Event   string   `json:"event_id,omitempty"`
	Reason  string   `json:"reason"`
}

func (p *Problem) Error() string {
	if p.Event != "" {
		return fmt.Sprintf("entry %d (event %s): %s", p.Seq, p.Event, p.Reason)
	}
	return fmt.Sprintf("entry %d: %s", p.Seq, p.Reason)
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	From, To    int64 // verified entries [From, To)
	Checkpoints int   // checkpoints checked
	// Uncovered are sealed entries after the last checkpoint; Unsealed are
	// ledger entries not yet in the tree.
	Uncovered, Unsealed int64
	Problem             *Problem
}

// Verify recomputes the record hashes of entries [from, to) (to < 0: up to
// the tree size) from the ledger rows, compares them and every interior hash
// with the stored ones, recomputes the roots of the checkpoints in the range,
// checks their signatures with v, and checks consistency between each
// checkpoint and the next. The stored hashes below from are trusted. The
// first problem is returned in the report (and counted in the metric).
func Verify(ctx context.Context, pool DB, v note.Verifier, from, to int64, progress func(done, total int64)) (*VerifyReport, error) {
	var size, next int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT tree_size FROM merkle_head), (SELECT next_seq FROM ledger_counter)`).Scan(&size, &next); err != nil {
		return nil, fmt.Errorf("cannot read the tree size: %w", err)
	}
	if to < 0 || to > size {
		to = size
	}
	from = max(0, min(from, to))
	rep := &VerifyReport{From: from, To: to, Unsealed: next - size}
	cps, err := readCheckpoints(ctx, pool)
	if err != nil {
		return nil, err
	}
	frontier, err := readHashes(ctx, pool, frontierIndexes(from))
	if err != nil {
		return nil, err
	}
	vr := &verifier{pool: pool, v: v, frontier: frontier, rep: rep, cps: cps, sc: newEntryScanner()}
	if err := vr.run(ctx, from, to, progress); err != nil {
		return nil, err
	}
	if rep.Problem == nil {
		rep.Problem, err = checkConsistency(ctx, pool, cps, from, to)
		if err != nil {
			return nil, err
		}
	}
	if len(cps) == 0 {
		rep.Uncovered = size
	} else {
		rep.Uncovered = size - cps[len(cps)-1].Size
	}
	if rep.Problem != nil {
		VerificationFailures.Inc()
	}
	return rep, nil
}

type storedCheckpoint struct {
	Size int64
	Root []byte
	Note string
}

func readCheckpoints(ctx context.Context, q DB) ([]storedCheckpoint, error) {
	rows, err := q.Query(ctx, `SELECT tree_size, root_hash, note FROM merkle_checkpoints ORDER BY tree_size`)
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoints: %w", err)
	}
	cps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedCheckpoint])
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoints: %w", err)
	}
	return cps, nil
}

type verifier struct {
	pool     DB
	v        note.Verifier
	frontier memReader
	rep      *VerifyReport
	cps      []storedCheckpoint
	cpi      int
	sc       *entryScanner
	buf      []byte
}

const verifyChunk = 10000

func (vr *verifier) run(ctx context.Context, from, to int64, progress func(done, total int64)) error {
	for vr.cpi < len(vr.cps) && vr.cps[vr.cpi].Size <= from {
		vr.cpi++
	}
	for a := from; a < to && vr.rep.Problem == nil; a += verifyChunk {
		b := min(a+verifyChunk, to)
		if err := vr.chunk(ctx, a, b); err != nil {
			return err
		}
		if progress != nil {
			progress(b-from, to-from)
		}
	}
	return nil
}

func (vr *verifier) chunk(ctx context.Context, a, b int64) error {
	lo, hi := tlog.StoredHashIndex(0, a), tlog.StoredHashIndex(0, b)
	stored, err := readHashRange(ctx, vr.pool, lo, hi)
	if err != nil {
		return err
	}
	rows, err := vr.pool.Query(ctx, `SELECT `+entryColumns+` FROM ledger WHERE seq >= $1 AND seq < $2 ORDER BY seq`, a, b)
	if err != nil {
		return fmt.Errorf("cannot read ledger entries: %w", err)
	}
	defer rows.Close()
	n := a
	for rows.Next() && vr.rep.Problem == nil {
		if err := rows.Scan(vr.sc.dest...); err != nil {
			return fmt.Errorf("cannot read ledger entries: %w", err)
		}
		if err := vr.sc.finish(); err != nil {
			return err
		}
		e := &vr.sc.e
		if e.Seq != n {
			break
		}
		if err := vr.entry(ctx, e, stored); err != nil {
			return err
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read ledger entries: %w", err)
	}
	if vr.rep.Problem == nil && n < b {
		vr.rep.Problem = vr.missing(ctx, n)
	}
	return nil
}

// missing names an entry whose ledger row is gone (or moved).
func (vr *verifier) missing(ctx context.Context, seq int64) *Problem {
	p := &Problem{Seq: seq, Reason: "the ledger row is missing (deleted or renumbered)"}
	var id [16]byte
	if vr.pool.QueryRow(ctx, `SELECT event_id FROM ledger_ids WHERE seq = $1`, seq).Scan(&id) == nil {
		p.EventID, p.Event = event.ID(id), event.ID(id).String()
	}
	return p
}

func (vr *verifier) entry(ctx context.Context, e *Entry, stored memReader) error {
	var h tlog.Hash
	h, vr.buf = e.RecordHash(vr.buf)
	add, err := tlog.StoredHashesForRecordHash(e.Seq, h, vr.frontier)
	if err != nil {
		return fmt.Errorf("cannot hash entry %d: %w", e.Seq, err)
	}
	base := tlog.StoredHashIndex(0, e.Seq)
	for i, x := range add {
		if got, ok := stored[base+int64(i)]; !ok || got != x {
			reason := "the entry does not match its stored record hash (the row or the hash was changed)"
			if i > 0 {
				reason = fmt.Sprintf("stored interior hash %d does not match the recomputed tree", base+int64(i))
			}
			vr.rep.Problem = &Problem{Seq: e.Seq, EventID: e.EventID, Event: e.EventID.String(), Reason: reason}
			return nil
		}
		vr.frontier[base+int64(i)] = x
	}
	vr.frontier.prune(e.Seq + 1)
	for vr.cpi < len(vr.cps) && vr.cps[vr.cpi].Size == e.Seq+1 {
		vr.rep.Problem = vr.checkpoint(vr.cps[vr.cpi], e)
		vr.rep.Checkpoints++
		vr.cpi++
	}
	return nil
}

func (vr *verifier) checkpoint(cp storedCheckpoint, last *Entry) *Problem {
	bad := func(format string, args ...any) *Problem {
		return &Problem{Seq: cp.Size - 1, EventID: last.EventID, Event: last.EventID.String(),
			Reason: fmt.Sprintf("checkpoint of size %d: ", cp.Size) + fmt.Sprintf(format, args...)}
	}
	root, err := tlog.TreeHash(cp.Size, vr.frontier)
	if err != nil {
		return bad("cannot recompute the root: %v", err)
	}
	if !bytes.Equal(cp.Root, root[:]) {
		return bad("stored root does not match the recomputed tree")
	}
	c, err := OpenCheckpoint(cp.Note, vr.v)
	if err != nil {
		return bad("%v", err)
	}
	if c.Size != cp.Size || c.Root != root {
		return bad("the signed note names size %d and another root", c.Size)
	}
	return nil
}

// checkConsistency proves each checkpoint in (from, to] consistent with the
// one before it using the (now verified) stored hashes.
func checkConsistency(ctx context.Context, pool DB, cps []storedCheckpoint, from, to int64) (*Problem, error) {
	r := dbReader{ctx: ctx, q: pool}
	for i := 1; i < len(cps); i++ {
		old, cur := cps[i-1], cps[i]
		if cur.Size <= from || cur.Size > to {
			continue
		}
		proof, err := tlog.ProveTree(cur.Size, old.Size, r)
		if err != nil {
			return nil, fmt.Errorf("cannot prove checkpoint %d consistent with %d: %w", cur.Size, old.Size, err)
		}
		if tlog.CheckTree(proof, cur.Size, tlog.Hash(cur.Root), old.Size, tlog.Hash(old.Root)) != nil {
			return &Problem{Seq: cur.Size - 1, Reason: fmt.Sprintf("checkpoint of size %d is not consistent with checkpoint of size %d", cur.Size, old.Size)}, nil
		}
	}
	return nil, nil
}
