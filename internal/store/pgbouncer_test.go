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
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/sumdb/note"

	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/event"
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

// TestLedgerBatchThroughPgBouncer: a ledger write batch (COPY into the stage,
// the offsets in the same transaction), a replay of the same batch, sealing
// with its transaction-scoped advisory lock and verification, all through
// PgBouncer.
func TestLedgerBatchThroughPgBouncer(t *testing.T) {
	pool := bouncerPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n, topic, group = 120, "metering-pgb", "g-pgb"
	ids := event.NewIDGen()
	agent := event.UUID{7, 7, 7}
	b := &runner.Batch{Next: runner.Offsets{}}
	for i := 0; i < n; i++ {
		e := event.Metering{ID: ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Kind: event.KindUsage,
			Agent: agent, Root: agent, Route: []byte("openai"), Model: []byte("gpt-4o"), RequestID: []byte(fmt.Sprint("r", i)),
			Gateway: []byte("gw1"), InputTokens: int64(i), OutputTokens: 2, CostMicros: int64(1000 + i), ReservedMicros: 5000,
			Currency: [3]byte{'U', 'S', 'D'}, Status: 200, LatencyUs: 10, Pricing: event.PricingTokens}
		p := int32(i % 3)
		b.Records = append(b.Records, &kgo.Record{Topic: topic, Partition: p, Offset: int64(i / 3), Key: agent[:], Value: e.AppendJSON(nil)})
		b.Next.Set(topic, p, int64(i/3)+1)
	}
	w := ledger.NewWriter(pool, group)
	for round := 0; round < 2; round++ { // the second round is a redelivery: no new rows
		w.Begin()
		for _, r := range b.Records {
			if err := w.Decode(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.HandleBatch(ctx, b); err != nil {
			t.Fatalf("round %d: HandleBatch through PgBouncer: %v", round, err)
		}
	}
	var rows, next int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM ledger),
		(SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1)`, group).Scan(&rows, &next); err != nil {
		t.Fatal(err)
	}
	if rows != n || next != n {
		t.Fatalf("ledger rows %d, stored offsets %d; want %d and %d", rows, next, n, n)
	}

	skey, vkey, err := ledger.GenerateKey("caracal-pgbouncer-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.NewSealer(pool, ledger.SealerOptions{Signer: signer, CheckpointEvery: 50, BatchSize: 64}).SealAll(ctx); err != nil {
		t.Fatalf("sealing through PgBouncer: %v", err)
	}
	rep, err := ledger.Verify(ctx, pool, verifier, 0, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil || rep.To != n || rep.Checkpoints == 0 {
		t.Fatalf("verification through PgBouncer: %+v (problem %v)", rep, rep.Problem)
	}
}
