package recovery

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Schedule takes a snapshot every interval and keeps the newest retain,
// until ctx is done. A failed snapshot is logged and tried again at the
// next tick. A tick finding a snapshot younger than half the interval (one
// another replica of the consumer took) skips.
func Schedule(ctx context.Context, pool *pgxpool.Pool, adm *kadm.Client, opt SnapshotOptions, interval time.Duration, retain int, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if list, err := ListSnapshots(ctx, pool); err == nil && len(list) > 0 && time.Since(list[0].CreatedAt) < interval/2 {
			continue
		}
		o := opt
		o.Now = time.Now()
		s, err := CreateSnapshot(ctx, pool, adm, o)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("scheduled snapshot failed", "err", err)
			}
			continue
		}
		// Prune even when ctx ends right after the snapshot was taken, so a
		// shutdown never leaves more than retain behind.
		pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		n, err := Prune(pctx, pool, retain)
		pcancel()
		if err != nil {
			log.Error("cannot prune snapshots", "err", err)
		}
		log.Info("snapshot taken", "id", s.ID, "ledger_size", s.LedgerSize, "tree_size", s.TreeSize, "pruned", n)
	}
}
