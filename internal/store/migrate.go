package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockID is the advisory lock that serialises migrations between
// processes (a Helm hook Job and a developer, say).
const migrateLockID = 0x63617261_0001

// Migration is one versioned schema step with its undo.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// MigrationStatus is a migration and when it was applied (zero if not).
type MigrationStatus struct {
	Migration
	AppliedAt time.Time
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("cannot read embedded migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		name := e.Name()
		base, dir, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), ".")
		num, label, ok2 := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || !ok2 || err != nil || (dir != "up" && dir != "down") {
			return nil, fmt.Errorf("BUG: migration file %q is not NNNN_name.(up|down).sql", name)
		}
		body, err := migrationFS.ReadFile("migrations/" + name)
		if err != nil {
			return nil, err
		}
		m := byVersion[v]
		if m == nil {
			m = &Migration{Version: v, Name: label}
			byVersion[v] = m
		}
		if dir == "up" {
			m.Up = string(body)
		} else {
			m.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("BUG: migration %d has no up or no down file", m.Version)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// withMigrationLock runs fn on one connection holding the migration lock.
func withMigrationLock(ctx context.Context, pool *pgxpool.Pool, fn func(*pgx.Conn) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLockID)); err != nil {
		return fmt.Errorf("cannot take the migration lock: %w", err)
	}
	defer c.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLockID)) //nolint:errcheck
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("cannot create schema_migrations: %w", err)
	}
	return fn(c.Conn())
}

func applied(ctx context.Context, c *pgx.Conn) (map[int]time.Time, error) {
	rows, err := c.Query(ctx, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	out := map[int]time.Time{}
	var v int
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&v, &at}, func() error { out[v] = at; return nil })
	return out, err
}

// MigrateUp applies every pending migration, each in its own transaction, and
// returns the versions it applied. A failed migration leaves the schema as it
// was before that migration.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var done []int
	err = withMigrationLock(ctx, pool, func(c *pgx.Conn) error {
		have, err := applied(ctx, c)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if _, ok := have[m.Version]; ok {
				continue
			}
			if err := inTx(ctx, c, m.Up, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("migration %04d_%s failed, schema left at the previous version: %w", m.Version, m.Name, err)
			}
			done = append(done, m.Version)
		}
		return nil
	})
	return done, err
}

// MigrateDown undoes the latest `steps` applied migrations.
func MigrateDown(ctx context.Context, pool *pgxpool.Pool, steps int) ([]int, error) {
	if steps < 1 {
		return nil, errors.New("steps must be at least 1")
	}
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var done []int
	err = withMigrationLock(ctx, pool, func(c *pgx.Conn) error {
		have, err := applied(ctx, c)
		if err != nil {
			return err
		}
		for i := len(ms) - 1; i >= 0 && len(done) < steps; i-- {
			m := ms[i]
			if _, ok := have[m.Version]; !ok {
				continue
			}
			if err := inTx(ctx, c, m.Down, `DELETE FROM schema_migrations WHERE version = $1`, m.Version); err != nil {
				return fmt.Errorf("undoing migration %04d_%s failed, schema unchanged: %w", m.Version, m.Name, err)
			}
			done = append(done, m.Version)
		}
		return nil
	})
	return done, err
}

// MigrationState lists every known migration with when it was applied.
func MigrationState(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var out []MigrationStatus
	err = withMigrationLock(ctx, pool, func(c *pgx.Conn) error {
		have, err := applied(ctx, c)
		if err != nil {
			return err
		}
		for _, m := range ms {
			out = append(out, MigrationStatus{Migration: m, AppliedAt: have[m.Version]})
		}
		return nil
	})
	return out, err
}

func inTx(ctx context.Context, c *pgx.Conn, script, record string, args ...any) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	// The simple protocol runs a multi-statement script in one round trip.
	if _, err := tx.Exec(ctx, script, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, record, args...); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
