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

// dbReader reads stored hashes from merkle_hashes.
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

func readHashes(ctx context.Context, q runner.Querier, idx []int64) (memReader, error) {
	rows, err := q.Query(ctx, `SELECT idx, hash FROM merkle_hashes WHERE idx = ANY($1)`, idx)
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
