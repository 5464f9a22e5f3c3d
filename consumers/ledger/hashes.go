package ledger

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/consumers/runner"
)

// frontierIndexes are the storage indexes of the complete subtrees that make
// up a tree of n entries: all that tlog.StoredHashesForRecordHash(n, ...) and
// tlog.TreeHash(n, ...) read.
func frontierIndexes(n int64) []int64 {
	var out []int64
	start := int64(0)
	for l := 63 - bits.LeadingZeros64(uint64(n)); l >= 0 && n > 0; l-- {
		if n&(1<<l) == 0 {
			continue
		}
		out = append(out, tlog.StoredHashIndex(l, start>>l))
		start += 1 << l
	}
	return out
}

// memReader serves hashes from a map; a missing one is a bug of the caller.
type memReader map[int64]tlog.Hash

func (m memReader) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("BUG: hash %d is not in the frontier", x)
		}
		out[i] = h
	}
	return out, nil
}

// prune keeps only the frontier of a tree of n entries.
func (m memReader) prune(n int64) {
	keep := map[int64]bool{}
	for _, x := range frontierIndexes(n) {
		keep[x] = true
	}
	for x := range m {
		if !keep[x] {
			delete(m, x)
		}
	}
}

// Stored hashes live in merkle_hash_runs: a row holds the hashes with
// storage indexes first_idx, first_idx+1, ... concatenated (32 bytes each).
// tlog appends stored hashes in index order, so each seal step writes its
// hashes as one run (split at runCap) instead of a row per hash. The column
// is stored uncompressed out of line (STORAGE EXTERNAL): substring() fetches
// only the TOAST chunks it covers, so reading one hash of a run reads about
// 2 kB, not the run. A hash belongs to the run with the greatest first_idx
// at or below its index; an index beyond the end of that run is missing.

// runCap bounds the hashes of one run (2 MiB).
const runCap = 65536

// appendRuns writes the stored hashes in b (concatenated, the first with
// index first) as runs of at most runCap hashes.
func appendRuns(ctx context.Context, tx pgx.Tx, first int64, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), runCap*tlog.HashSize)
		if _, err := tx.Exec(ctx, `INSERT INTO merkle_hash_runs (first_idx, hashes) VALUES ($1, $2)`, first, b[:n]); err != nil {
			return fmt.Errorf("cannot store hashes from %d: %w", first, err)
		}
		first += int64(n / tlog.HashSize)
		b = b[n:]
	}
	return nil
}

// dbReader reads stored hashes from merkle_hash_runs.
type dbReader struct {
	ctx context.Context
	q   runner.Querier
}

func (r dbReader) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	got, err := readHashes(r.ctx, r.q, idx)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d is missing", x)
		}
		out[i] = h
	}
	return out, nil
}

// readHashes reads the stored hashes idx in one query (an index probe and a
// 32-byte slice per hash); missing ones are absent from the result.
func readHashes(ctx context.Context, q runner.Querier, idx []int64) (memReader, error) {
	rows, err := q.Query(ctx, `SELECT i, substring(r.hashes FROM ((i - r.first_idx) * 32 + 1)::int FOR 32)
		FROM unnest($1::bigint[]) AS i
		CROSS JOIN LATERAL (SELECT first_idx, hashes FROM merkle_hash_runs WHERE first_idx <= i ORDER BY first_idx DESC LIMIT 1) r
		WHERE i - r.first_idx < length(r.hashes) / 32`, idx)
	if err != nil {
		return nil, fmt.Errorf("cannot read stored hashes: %w", err)
	}
	out := memReader{}
	var x int64
	var h []byte
	_, err = pgx.ForEachRow(rows, []any{&x, &h}, func() error {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("stored hash %d has %d bytes", x, len(h))
		}
		out[x] = tlog.Hash(h)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read stored hashes: %w", err)
	}
	return out, nil
}

// readHashRange reads the stored hashes with indexes in [lo, hi): the parts
// of the runs that overlap it, sliced in the database. Where runs overlap
// (never written so), the later run wins, as in readHashes.
func readHashRange(ctx context.Context, q runner.Querier, lo, hi int64) (memReader, error) {
	rows, err := q.Query(ctx, `SELECT s, substring(hashes FROM ((s - first_idx) * 32 + 1)::int FOR ((e - s) * 32)::int)
		FROM (SELECT first_idx, hashes, greatest(first_idx, $1) AS s, least(first_idx + length(hashes) / 32, $2) AS e
			FROM merkle_hash_runs
			WHERE first_idx < $2 AND first_idx >= coalesce((SELECT max(first_idx) FROM merkle_hash_runs WHERE first_idx <= $1), 0)) x
		WHERE s < e
		ORDER BY first_idx`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("cannot read stored hashes: %w", err)
	}
	out := make(memReader, hi-lo)
	var start, end int64
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&start, &b}, func() error {
		if len(b)%tlog.HashSize != 0 {
			return fmt.Errorf("stored hashes from %d have %d bytes", start, len(b))
		}
		for x := start; x < end; x++ {
			delete(out, x) // shadowed by this later run
		}
		for i := 0; i < len(b); i += tlog.HashSize {
			out[start+int64(i/tlog.HashSize)] = tlog.Hash(b[i : i+tlog.HashSize])
		}
		end = max(end, start+int64(len(b)/tlog.HashSize))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read stored hashes: %w", err)
	}
	return out, nil
}
