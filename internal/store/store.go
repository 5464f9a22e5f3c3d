// Package store owns Caracal's PostgreSQL schema, its migrations and the
// queries on control data.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caracal-gw/caracal/internal/config"
)

// Open connects a pool sized by the guide's keys: dbPoolSize connections kept,
// up to dbMaxOverflow more under load (closed again after a minute idle), and
// dbPoolTimeout as the longest wait for a connection (see Acquire).
func Open(ctx context.Context, c *config.Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(c.Database.URL)
	if err != nil {
		return nil, fmt.Errorf("config key database.url: %w", err)
	}
	pc.MaxConns = int32(c.DBPoolSize + c.DBMaxOverflow)
	pc.MinIdleConns = 0
	pc.MinConns = 0
	pc.MaxConnIdleTime = time.Minute
	pc.ConnConfig.ConnectTimeout = c.DBPoolTimeout.D()
	if c.Database.PgBouncer {
		// Transaction pooling: no server-side prepared statements survive
		// between transactions.
		pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("cannot create PostgreSQL pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, c.DBPoolTimeout.D())
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %w", redactedHost(pc), err)
	}
	return pool, nil
}

func redactedHost(pc *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database)
}
