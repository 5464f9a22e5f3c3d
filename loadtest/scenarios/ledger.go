package scenarios

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// LedgerRows counts the ledger rows of the agent that owns API key key with
// event time at or after since, polling until there are at least want or
// wait has passed (the ledger consumer commits in batches behind the run).
func LedgerRows(ctx context.Context, dbURL, key string, since time.Time, want int64, wait time.Duration) (int64, error) {
	prefix, _, _ := strings.Cut(strings.TrimPrefix(key, "crk_"), "_")
	prefix = "crk_" + prefix
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, fmt.Errorf("cannot connect to the ledger database: %w", err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(wait)
	var n, last int64
	stable := 0
	for {
		err := conn.QueryRow(ctx, `SELECT count(*) FROM ledger l JOIN api_keys k ON k.agent_id = l.agent_id
			WHERE k.prefix = $1 AND l.ts >= $2`, prefix, since).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("cannot count ledger rows: %w", err)
		}
		// Past want, wait for the count to hold still for a few polls so
		// duplicates would show.
		if n == last && n >= want {
			stable++
		} else {
			stable = 0
		}
		last = n
		if stable >= 3 || time.Now().After(deadline) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
