package gateway

import (
	"context"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// pgbouncerAddr is host:port of the transaction-pooling PgBouncer that
// scripts/services.sh runs; a missing PgBouncer fails integration runs.
func pgbouncerAddr(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("CARACAL_TEST_PGBOUNCER_DSN")
	if dsn == "" {
		if testenv.Integration() {
			t.Fatal("CARACAL_TEST_PGBOUNCER_DSN is not set: run the tests with `make test` (scripts/services.sh up)")
		}
		t.Skip("integration test: CARACAL_TEST_PGBOUNCER_DSN not set (run `make test`)")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestGatewayThroughPgBouncer: the gateway's pool goes through PgBouncer in
// transaction pooling mode (simple protocol), LISTEN uses the direct URL; a
// request is served and a revocation still arrives by NOTIFY.
func TestGatewayThroughPgBouncer(t *testing.T) {
	addr := pgbouncerAddr(t)
	var bouncerURL string
	testConfigure = func(c *config.Config) {
		u, err := url.Parse(c.Database.URL) // a fresh migrated database, direct
		if err != nil {
			panic(err)
		}
		c.Database.DirectURL = c.Database.URL
		u.Host = addr // PgBouncer's `*` entry routes any database name
		c.Database.URL = u.String()
		c.Database.PgBouncer = true
		bouncerURL = c.Database.URL
	}
	defer func() { testConfigure = nil }()
	s := newStack(t, 5_000_000)
	if bouncerURL == "" || s.cfg.Database.URL != bouncerURL {
		t.Fatalf("the stack does not use PgBouncer: %q", s.cfg.Database.URL)
	}
	ctx := context.Background()
	// The pool really talks to PgBouncer, with the simple protocol.
	cc := s.pool.Config().ConnConfig
	if got := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))); got != addr {
		t.Fatalf("pool connects to %s, not PgBouncer at %s", got, addr)
	}
	if cc.DefaultQueryExecMode != pgx.QueryExecModeSimpleProtocol {
		t.Fatalf("exec mode %v, want the simple protocol", cc.DefaultQueryExecMode)
	}
	var db string
	if err := s.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db, "caracal_t_") {
		t.Fatalf("PgBouncer routed to %q, want the per-test database", db)
	}
	for i := 0; i < 5; i++ {
		if resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody); resp.StatusCode != 200 {
			t.Fatalf("request %d through PgBouncer: %d %s", i, resp.StatusCode, body)
		}
	}

	prefix := s.key[:16]
	applied := s.rg.listenerApplied()
	if _, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE prefix = $1`, prefix); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for s.rg.listenerApplied() == applied && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.rg.listenerApplied() == applied {
		t.Fatal("the revocation notification never arrived on the direct LISTEN connection")
	}
	resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
	if resp.StatusCode != 401 && resp.StatusCode != 429 {
		t.Fatalf("revoked key still accepted: %d %s", resp.StatusCode, body)
	}
}
