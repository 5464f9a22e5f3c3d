package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	merkleBatchSize    = metrics.NewHistogram("caracal_merkle_batch_size")
	merkleBatchSeconds = metrics.NewHistogram("caracal_merkle_batch_seconds")
	merkleTreeSize     = metrics.NewCounter("caracal_merkle_sealed_entries_total")
	merkleCheckpoints  = metrics.NewCounter("caracal_merkle_checkpoints_total")
)

// sealLockID is the advisory lock held by the one sealer extending the tree.
const sealLockID = 0x63617261_0002

// SealerOptions configure a Sealer.
type SealerOptions struct {
	Signer note.Signer
	// CheckpointEvery and CheckpointInterval: a checkpoint is signed when
	// this many entries were sealed since the last one, or this much time
	// passed and some were.
	CheckpointEvery    int64
	CheckpointInterval time.Duration
	// BatchSize bounds the entries sealed in one transaction.
	BatchSize int
	// PollInterval is the pause when there is nothing to seal.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Sealer extends the Merkle tree over the ledger in seq order. Any number
// may run; a transaction-scoped advisory lock lets one work at a time.
type Sealer struct {
	pool *pgxpool.Pool
	opts SealerOptions

	size     int64     // tree size the frontier belongs to; -1 unknown
	frontier memReader // hashes needed to extend a tree of size
	buf      []byte
	run      []byte // the stored hashes of a step, concatenated
}

// NewSealer returns a Sealer.
func NewSealer(pool *pgxpool.Pool, opts SealerOptions) *Sealer {
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 10000
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 2 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 20000
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Sealer{pool: pool, opts: opts, size: -1}
}

// Run seals until ctx is done.
func (s *Sealer) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := s.Seal(ctx)
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("cannot seal the ledger", "err", err)
		}
		if n == 0 || err != nil {
			t := time.NewTimer(s.opts.PollInterval)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	return nil
}

// SealAll seals until nothing is left and signs a checkpoint of the result
// (for tests and `caracal merkle seal`).
func (s *Sealer) SealAll(ctx context.Context) error {
	for {
		n, err := s.seal(ctx, false)
		if err != nil {
			return err
		}
		if n == 0 {
			_, err := s.seal(ctx, true)
			return err
		}
	}
}

// Seal extends the tree by up to BatchSize entries in one transaction and
// signs a checkpoint when one is due. It returns how many entries it sealed
// (0 when another sealer holds the lock).
func (s *Sealer) Seal(ctx context.Context) (int, error) { return s.seal(ctx, false) }

func (s *Sealer) seal(ctx context.Context, force bool) (int, error) {
	start := time.Now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("cannot begin the sealing transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(sealLockID)).Scan(&locked); err != nil {
		return 0, fmt.Errorf("cannot take the sealer lock: %w", err)
	}
	if !locked {
		return 0, nil
	}
	var size int64
	if err := tx.QueryRow(ctx, `SELECT tree_size FROM merkle_head`).Scan(&size); err != nil {
		return 0, fmt.Errorf("cannot read the tree size: %w", err)
	}
	if size != s.size {
		if s.frontier, err = readHashes(ctx, tx, frontierIndexes(size)); err != nil {
			return 0, err
		}
		s.size = size
	}
	// On any failure below the cached frontier may be ahead of the database.
	s.size = -1
	n, newSize, hashes, err := s.extend(ctx, tx, size)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		if err := appendRuns(ctx, tx, tlog.StoredHashIndex(0, size), hashes); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `UPDATE merkle_head SET tree_size = $1, updated_at = now()`, newSize); err != nil {
			return 0, fmt.Errorf("cannot update the tree size: %w", err)
		}
	}
	signed, err := s.checkpoint(ctx, tx, newSize, force)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("cannot commit the sealing transaction: %w", err)
	}
	s.frontier.prune(newSize)
	s.size = newSize
	if n > 0 {
		merkleBatchSize.Update(float64(n))
		merkleBatchSeconds.UpdateDuration(start)
		merkleTreeSize.Add(n)
	}
	if signed {
		merkleCheckpoints.Inc()
	}
	return n, nil
}

// extend reads the entries from seq size on and computes their stored
// hashes (concatenated, in index order), adding them to the frontier.
func (s *Sealer) extend(ctx context.Context, tx pgx.Tx, size int64) (int, int64, []byte, error) {
	// seq is dense, so the range is the next BatchSize entries. Bounding it
	// on both sides (rather than LIMIT) keeps the plan an index range scan
	// even when the ledger has no statistics yet: with `seq >= size ORDER BY
	// seq LIMIT` the planner chose a sequential scan and an external sort of
	// every unsealed row (80 ms per step for a backlog of 200000).
	rows, err := tx.Query(ctx, `SELECT `+entryColumns+` FROM ledger WHERE seq >= $1 AND seq < $2 ORDER BY seq`, size, size+int64(s.opts.BatchSize))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("cannot read ledger entries: %w", err)
	}
	defer rows.Close()
	sc := newEntryScanner()
	hashes := s.run[:0]
	n := size
	for rows.Next() {
		if err := rows.Scan(sc.dest...); err != nil {
			return 0, 0, nil, fmt.Errorf("cannot read ledger entries: %w", err)
		}
		if err := sc.finish(); err != nil {
			return 0, 0, nil, err
		}
		if sc.e.Seq != n {
			return 0, 0, nil, fmt.Errorf("BUG: ledger entry %d follows %d", sc.e.Seq, n-1)
		}
		var h tlog.Hash
		h, s.buf = sc.e.RecordHash(s.buf)
		add, err := tlog.StoredHashesForRecordHash(n, h, s.frontier)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("cannot hash entry %d: %w", n, err)
		}
		base := tlog.StoredHashIndex(0, n)
		for i, x := range add {
			s.frontier[base+int64(i)] = x
		}
		for _, x := range add {
			hashes = append(hashes, x[:]...)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, 0, nil, fmt.Errorf("cannot read ledger entries: %w", err)
	}
	s.run = hashes
	return int(n - size), n, hashes, nil
}

// checkpoint signs a checkpoint of size when one is due (or force).
func (s *Sealer) checkpoint(ctx context.Context, tx pgx.Tx, size int64, force bool) (bool, error) {
	var last int64
	var at time.Time
	err := tx.QueryRow(ctx, `SELECT tree_size, created_at FROM merkle_checkpoints ORDER BY tree_size DESC LIMIT 1`).Scan(&last, &at)
	if err != nil && err != pgx.ErrNoRows {
		return false, fmt.Errorf("cannot read the last checkpoint: %w", err)
	}
	if size <= last {
		return false, nil
	}
	if !force && size-last < s.opts.CheckpointEvery && time.Since(at) < s.opts.CheckpointInterval {
		return false, nil
	}
	root, err := tlog.TreeHash(size, s.frontier)
	if err != nil {
		return false, fmt.Errorf("cannot compute the root of %d entries: %w", size, err)
	}
	signed, err := Checkpoint{Origin: s.opts.Signer.Name(), Size: size, Root: root}.Sign(s.opts.Signer)
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO merkle_checkpoints (tree_size, root_hash, note) VALUES ($1, $2, $3)`, size, root[:], signed); err != nil {
		return false, fmt.Errorf("cannot store the checkpoint: %w", err)
	}
	return true, nil
}
