package scenarios

import (
	"context"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// LedgerRows counts only the rows of the key's agent at or after since.
func TestLedgerRowsCountsTheKeysAgent(t *testing.T) {
	url := testenv.PGURL(t)
	ctx := context.Background()
	cfg := testenv.Config(t)
	cfg.Database.URL = url
	pool, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mine, err := store.CreateAgent(ctx, pool, store.NewAgent{Name: testenv.Name("load-")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.CreateAgent(ctx, pool, store.NewAgent{Name: testenv.Name("other-")})
	if err != nil {
		t.Fatal(err)
	}
	k, err := store.CreateKey(ctx, pool, store.NewKey{Agent: mine.Name})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)
	insert := func(seq int, agent any, ts time.Time) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO ledger (seq, event_id, ts, kind, agent_id, root_id, route, model, request_id,
			gateway, input_tokens, output_tokens, cost_micros, reserved_micros, currency, status, latency_us, pricing,
			src_partition, src_offset) VALUES ($1, gen_random_uuid(), $2, 1, $3, $3, 'openai', 'm', 'r', 'g', 1, 1, 1, 1,
			'USD', 200, 1, 1, 0, $1)`, seq, ts, agent)
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		insert(i, mine.ID, time.Now())
	}
	insert(5, other.ID, time.Now())             // another agent
	insert(6, mine.ID, since.Add(-time.Second)) // before the run
	n, err := LedgerRows(ctx, url, k.Key, since, 5, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("LedgerRows = %d, want 5", n)
	}
	// Fewer rows than wanted: it waits at most the given time and returns the count.
	if n, err = LedgerRows(ctx, url, k.Key, since, 6, 700*time.Millisecond); err != nil || n != 5 {
		t.Fatalf("LedgerRows = %d, %v; want 5 after the wait", n, err)
	}
}
