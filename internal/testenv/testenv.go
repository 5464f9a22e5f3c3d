// Package testenv gives integration tests the real services that
// scripts/services.sh started: a fresh migrated PostgreSQL database per test,
// the Redis address with a per-test key prefix, and the Kafka brokers (or an
// in-process kfake cluster when the real broker could not be installed).
//
// Under `make test` (CARACAL_INTEGRATION=1) a missing service fails the test;
// a plain `go test ./...` without services skips integration tests.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/store"
)

// Integration reports whether make test asked for integration tests.
func Integration() bool { return os.Getenv("CARACAL_INTEGRATION") == "1" }

func need(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if Integration() {
		t.Fatalf("%s is not set: run the tests with `make test` (scripts/services.sh up)", env)
	}
	t.Skipf("integration test: %s not set (run `make test`)", env)
	return ""
}

// Name returns a short unique lower-case name for per-test resources.
func Name(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// PGURL creates a fresh database, applies every migration, drops it when the
// test ends, and returns its URL.
func PGURL(t testing.TB) string {
	t.Helper()
	base := need(t, "CARACAL_TEST_PG_DSN")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("cannot connect to the test PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	name := Name("caracal_t_")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("cannot create test database: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("cannot drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("cannot drop %s: %v", name, err)
		}
	})
	cfg := Config(t)
	cfg.Database.URL = u.String()
	pool, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// PG returns a pool on a fresh migrated database, closed when the test ends.
func PG(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg := Config(t)
	cfg.Database.URL = PGURL(t)
	pool, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// RedisAddr returns the test Redis address.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return need(t, "CARACAL_TEST_REDIS_ADDR")
}

var (
	fakeOnce    sync.Once
	fakeCluster *kfake.Cluster
	fakeErr     error
)

// KafkaBrokers returns the real broker list, or, when services.sh could not
// install Kafka and CARACAL_REQUIRE_KAFKA is not 1, the addresses of an
// in-process kfake cluster shared by the package's tests (logged as such).
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	if v := os.Getenv("CARACAL_TEST_KAFKA_BROKERS"); v != "" {
		return strings.Split(v, ",")
	}
	if os.Getenv("CARACAL_REQUIRE_KAFKA") == "1" {
		t.Fatal("CARACAL_TEST_KAFKA_BROKERS is not set and CARACAL_REQUIRE_KAFKA=1: the real broker is required")
	}
	if !Integration() {
		t.Skip("integration test: no Kafka (run `make test`)")
	}
	fakeOnce.Do(func() {
		fakeCluster, fakeErr = kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3,
			"caracal.metering.events", "caracal.policy.decisions", "caracal.audit.events", "caracal.dlq"))
	})
	if fakeErr != nil {
		t.Fatalf("cannot start kfake: %v", fakeErr)
	}
	t.Log("KAFKA: using in-process kfake (the real broker is not available)")
	fmt.Fprintln(os.Stderr, "testenv: KAFKA-FALLBACK kfake in use for", t.Name())
	return fakeCluster.ListenAddrs()
}

// Config returns the default configuration pointed at the test services that
// are known (without requiring any of them).
func Config(t testing.TB) *config.Config {
	t.Helper()
	c := config.Default()
	if v := os.Getenv("CARACAL_TEST_PG_DSN"); v != "" {
		c.Database.URL = v
	}
	if v := os.Getenv("CARACAL_TEST_REDIS_ADDR"); v != "" {
		c.Redis.Addrs = []string{v}
	}
	if v := os.Getenv("CARACAL_TEST_KAFKA_BROKERS"); v != "" {
		c.Kafka.Brokers = strings.Split(v, ",")
	}
	c.DBPoolSize, c.DBMaxOverflow = 4, 4
	c.Kafka.Topics.ReplicationFactor, c.Kafka.Topics.MinInsyncReplicas, c.Kafka.Topics.Partitions = 1, 1, 3
	return &c
}
