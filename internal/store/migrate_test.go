package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func TestMigrateUpDownIsIdempotentAndTransactional(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PG(t) // already migrated up
	done, err := store.MigrateUp(ctx, pool)
	if err != nil || len(done) != 0 {
		t.Fatalf("second up: %v %v, want a no-op", done, err)
	}
	ms, _ := store.Migrations()
	st, err := store.MigrationState(ctx, pool)
	if err != nil || len(st) != len(ms) || st[0].AppliedAt.IsZero() {
		t.Fatalf("status: %+v %v", st, err)
	}
	down, err := store.MigrateDown(ctx, pool, len(ms))
	if err != nil || len(down) != len(ms) {
		t.Fatalf("down: %v %v", down, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema='public' AND table_name <> 'schema_migrations'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("tables left after full down: %d %v", n, err)
	}
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		t.Fatalf("up after down: %v", err)
	}
}

func TestControlTriggers(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PG(t)
	var root, child, grandchild, childRoot, gcRoot string
	var depth int
	q := func(sql string, args ...any) pgx.Row { return pool.QueryRow(ctx, sql, args...) }
	if err := q(`INSERT INTO agents (name, root_id) VALUES ('org', gen_random_uuid()) RETURNING id`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := q(`INSERT INTO agents (name, parent_id, root_id) VALUES ('team', $1, gen_random_uuid()) RETURNING id, root_id`, root).Scan(&child, &childRoot); err != nil {
		t.Fatal(err)
	}
	if err := q(`INSERT INTO agents (name, parent_id, root_id) VALUES ('bot', $1, gen_random_uuid()) RETURNING id, root_id, depth`, child).Scan(&grandchild, &gcRoot, &depth); err != nil {
		t.Fatal(err)
	}
	if childRoot != root || gcRoot != root || depth != 2 {
		t.Fatalf("root/depth not derived from the parent: %s %s %d", childRoot, gcRoot, depth)
	}
	if _, err := pool.Exec(ctx, `UPDATE agents SET parent_id = NULL WHERE id = $1`, child); err == nil {
		t.Fatal("re-parenting an agent was accepted")
	}

	// Policy changes are versioned with their reason, and NOTIFY is sent.
	l, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := l.Exec(ctx, "LISTEN caracal_control"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO policies (agent_id, limit_micros, window_size, change_reason) VALUES ($1, 5000000, 'daily', 'initial')`, child); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE policies SET limit_micros = 7000000, change_reason = 'raise' WHERE agent_id = $1`, child); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE policies SET change_reason = '' WHERE agent_id = $1`, child); err == nil {
		t.Fatal("a policy change without a reason was accepted")
	}
	var versions int
	var last int64
	if err := q(`SELECT count(*), max(limit_micros) FROM policy_versions WHERE agent_id = $1`, child).Scan(&versions, &last); err != nil || versions != 2 || last != 7000000 {
		t.Fatalf("history: %d versions, last %d, %v", versions, last, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := l.Conn().WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no NOTIFY after a policy change: %v", err)
	}
	if n.Channel != "caracal_control" || !strings.Contains(n.Payload, `"table" : "policies"`) || !strings.Contains(n.Payload, child) {
		t.Fatalf("notification payload: %s", n.Payload)
	}
}
