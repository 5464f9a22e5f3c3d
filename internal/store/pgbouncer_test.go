package store_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// bouncerPool opens, the way the product does with database.pgbouncer: true,
// a pool on a fresh database migrated over the direct URL (the supported way:
// migrations hold a session-level advisory lock that transaction pooling
// cannot keep) through the transaction-pooling PgBouncer of
// scripts/services.sh. A missing PgBouncer fails integration runs.
func bouncerPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	dsn := os.Getenv("CARACAL_TEST_PGBOUNCER_DSN")
	if dsn == "" {
		if testenv.Integration() {
			t.Fatal("CARACAL_TEST_PGBOUNCER_DSN is not set: run the tests with `make test` (scripts/services.sh up)")
		}
		t.Skip("integration test: CARACAL_TEST_PGBOUNCER_DSN not set (run `make test`)")
	}
	b, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	direct := testenv.PGURL(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = b.Host // PgBouncer's `*` entry routes any database name
	cfg := testenv.Config(t)
	cfg.Database.URL = u.String()
	cfg.Database.DirectURL = direct
	cfg.Database.PgBouncer = true
	cfg.DBPoolSize, cfg.DBMaxOverflow = 8, 8
	pool, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if got := pool.Config().ConnConfig.DefaultQueryExecMode; got != pgx.QueryExecModeSimpleProtocol {
		t.Fatalf("exec mode %v with database.pgbouncer, want the simple protocol", got)
	}
	return pool
}

// TestStoreThroughPgBouncer: the schema migrated directly is what PgBouncer
// serves, and the administration commands' round trips (agents, policies,
// keys, prices, revocation) work from concurrent clients whose transactions
// PgBouncer spreads over its server connections.
func TestStoreThroughPgBouncer(t *testing.T) {
	pool := bouncerPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("PgBouncer sees %d applied migrations, want %d", n, len(ms))
	}

	n2, err := store.ImportPrices(ctx, pool, strings.NewReader(
		"resource,model,unit,price,currency\nopenai,gpt-pgb,input_mtok,1.25,USD\nopenai,gpt-pgb,output_mtok,5,USD\n"))
	if err != nil || n2 != 2 {
		t.Fatalf("ImportPrices through PgBouncer: %d, %v", n2, err)
	}

	const clients, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- roundTrips(ctx, pool, c, rounds)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	agents, err := store.ListAgents(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != clients*rounds {
		t.Fatalf("%d agents after the round trips, want %d", len(agents), clients*rounds)
	}
	prices, err := store.LoadPrices(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range prices {
		if p.Model == "gpt-pgb" {
			found = p.InputPerMTok == 1_250_000 && p.OutputPerMTok == 5_000_000
		}
	}
	if !found {
		t.Fatalf("imported prices not loaded back: %+v", prices)
	}
}

func roundTrips(ctx context.Context, pool *pgxpool.Pool, c, rounds int) error {
	for r := 0; r < rounds; r++ {
		name := fmt.Sprintf("pgb-%d-%d", c, r)
		if _, err := store.CreateAgent(ctx, pool, store.NewAgent{Name: name}); err != nil {
			return fmt.Errorf("create agent %s: %w", name, err)
		}
		if _, err := store.SetPolicy(ctx, pool, store.PolicySpec{Agent: name, LimitMicros: int64(1_000_000 + r),
			Window: "daily", Active: true, Reason: "pgbouncer test"}); err != nil {
			return fmt.Errorf("set policy %s: %w", name, err)
		}
		k, err := store.CreateKey(ctx, pool, store.NewKey{Agent: name, Name: "k"})
		if err != nil {
			return fmt.Errorf("create key %s: %w", name, err)
		}
		ak, ok, err := store.LoadAPIKey(ctx, pool, k.Prefix)
		if err != nil || !ok {
			return fmt.Errorf("load key %s: %v %v", k.Prefix, ok, err)
		}
		if ak.Hash != store.HashKey(k.Key) {
			return fmt.Errorf("key %s loaded back with another hash", k.Prefix)
		}
		a, err := store.LoadAgentByName(ctx, pool, name)
		if err != nil {
			return fmt.Errorf("load agent %s: %w", name, err)
		}
		if len(a.Policies) != 1 || a.Policies[0].LimitMicros != int64(1_000_000+r) {
			return fmt.Errorf("agent %s loaded back with policies %+v", name, a.Policies)
		}
		if _, err := store.RevokeKey(ctx, pool, k.Prefix); err != nil {
			return fmt.Errorf("revoke %s: %w", k.Prefix, err)
		}
		keys, err := store.ListKeys(ctx, pool, name)
		if err != nil || len(keys) != 1 || keys[0].RevokedAt == nil {
			return fmt.Errorf("list keys %s after revocation: %+v %v", name, keys, err)
		}
	}
	return nil
}
