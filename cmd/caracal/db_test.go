package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/testenv"
)

// TestMigrateUsesDirectURLBehindPgBouncer: with database.pgbouncer and
// database.directURL the migrate commands connect to the direct URL (here
// database.url leads nowhere, so only the direct URL can work); without
// database.pgbouncer they use database.url and fail.
func TestMigrateUsesDirectURLBehindPgBouncer(t *testing.T) {
	url := testenv.PGURL(t)
	dead := "postgres://caracal@127.0.0.1:1/nothing?sslmode=disable"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runWith := func(args ...string) (string, error) {
		var o, e bytes.Buffer
		err := run(ctx, append([]string{"--set", "database.url=" + dead, "--set", "database.directURL=" + url}, args...), &o, &e)
		return o.String() + e.String(), err
	}
	if out, err := runWith("--set", "database.pgbouncer=true", "db", "migrate", "up"); err != nil {
		t.Fatalf("migrate up behind PgBouncer did not use database.directURL: %v\n%s", err, out)
	}
	out, err := runWith("--set", "database.pgbouncer=true", "db", "migrate", "status")
	if err != nil || !strings.Contains(out, "merkle_hash_runs") || strings.Contains(out, "pending") {
		t.Fatalf("migrate status through database.directURL: %v; want every migration applied:\n%s", err, out)
	}
	if _, err := runWith("db", "migrate", "status"); err == nil {
		t.Fatal("without database.pgbouncer, migrate status reached a database through database.directURL")
	}
}
