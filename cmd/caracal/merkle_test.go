package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// TestConsumeLedgerThenVerifyProveAndSummarise runs `caracal consume ledger`
// against the real broker, then the merkle and ledger commands on its output.
func TestConsumeLedgerThenVerifyProveAndSummarise(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	ctx, cl, brokers, topic, dlq := meteringTopics(t, 2)
	dir := t.TempDir()
	mustCLI(t, url, "merkle", "keygen", "--name", "caracal-ledger", "--out-dir", dir)
	skey, pub := filepath.Join(dir, "caracal-ledger.key"), filepath.Join(dir, "caracal-ledger.pub")

	var parent, child store.AgentRow
	cliJSON(t, url, &parent, "agent", "create", "acme")
	cliJSON(t, url, &child, "agent", "create", "acme.bot", "--parent", "acme")
	pid, _ := event.ParseUUID([]byte(parent.ID))
	cid, _ := event.ParseUUID([]byte(child.ID))
	ids := event.NewIDGen()
	var recs []*kgo.Record
	var firstID event.ID
	for i := 0; i < 40; i++ {
		e := event.Metering{ID: ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Kind: event.KindUsage,
			Agent: pid, Root: pid, Route: []byte("openai"), Model: []byte("gpt"), CostMicros: 1_000_000,
			Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
		if i%2 == 1 {
			e.Agent, e.NumAncestors, e.Ancestors[0], e.CostMicros = cid, 1, pid, 250_000
		}
		if i == 0 {
			firstID = e.ID
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: e.AppendJSON(nil)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	base := []string{"--set", "database.url=" + url, "--set", "kafka.brokers=" + strings.Join(brokers, ","),
		"--set", "kafka.topics.metering=" + topic, "--set", "kafka.topics.dlq=" + dlq,
		"--set", "kafka.consumer.fetch.max.wait.ms=100"}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var co, ce syncBuffer
	go func() {
		done <- run(cctx, append(base, "consume", "ledger", "--signer-key-file", skey, "--checkpoint-interval", "100ms",
			"--group", testenv.Name("g-")), &co, &ce)
	}()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var cp int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(max(tree_size), 0) FROM merkle_checkpoints`).Scan(&cp); err != nil {
			t.Fatal(err)
		}
		if cp == 40 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("consume ended early: %v\n%s", err, ce.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer signed a checkpoint of %d entries, want 40\n%s", cp, ce.String())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v", err)
	}

	if out := mustCLI(t, url, "merkle", "verify", "--public-key", pub); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %q", out)
	}
	if out := mustCLI(t, url, "merkle", "verify", "--public-key", pub, "--from", "10", "--to", "30"); !strings.Contains(out, "entries 10..30,") || !strings.Contains(out, "OK") {
		t.Fatalf("verify --from 10 --to 30: %q", out)
	}
	proof := mustCLI(t, url, "merkle", "prove", "--event-id", firstID.String())
	pf := filepath.Join(dir, "proof.json")
	if err := os.WriteFile(pf, []byte(proof), 0o600); err != nil {
		t.Fatal(err)
	}
	// check-proof needs neither the database nor Kafka.
	var o, e bytes.Buffer
	if err := run(ctx, []string{"--set", "database.url=postgres://nobody@127.0.0.1:1/none", "merkle", "check-proof", pf, "--public-key", pub}, &o, &e); err != nil || !strings.Contains(o.String(), "OK") {
		t.Fatalf("check-proof: %v %q", err, o.String())
	}
	if err := os.WriteFile(pf, []byte(strings.Replace(proof, `"cost_micros": 1000000`, `"cost_micros": 1`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cli(t, url, "merkle", "check-proof", pf, "--public-key", pub); err == nil {
		t.Fatal("check-proof accepted an edited entry")
	}

	var sum []struct {
		AgentName   string `json:"agent"`
		OwnMicros   int64  `json:"own_micros"`
		TotalMicros int64  `json:"total_micros"`
	}
	cliJSON(t, url, &sum, "ledger", "summary", "--from", "1h")
	if len(sum) != 2 || sum[0].AgentName != "acme" || sum[0].OwnMicros != 20_000_000 || sum[0].TotalMicros != 25_000_000 ||
		sum[1].AgentName != "acme.bot" || sum[1].TotalMicros != 5_000_000 {
		t.Fatalf("summary %+v", sum)
	}
	var rows []struct{ Seq int64 }
	cliJSON(t, url, &rows, "ledger", "query", "--agent", "acme", "--subtree", "--route", "openai", "--limit", "1000")
	if len(rows) != 40 {
		t.Fatalf("query --subtree: %d rows", len(rows))
	}
	cliJSON(t, url, &rows, "ledger", "query", "--agent", "acme.bot")
	if len(rows) != 20 {
		t.Fatalf("query acme.bot: %d rows", len(rows))
	}
	cliJSON(t, url, &rows, "ledger", "query", "--agent", "acme", "--subtree", "--model", "gpt", "--from", "1h", "--limit", "1000")
	if len(rows) != 40 {
		t.Fatalf("query --model gpt --from 1h: %d rows, want 40", len(rows))
	}
	for _, args := range [][]string{{"--model", "other"}, {"--route", "other"}, {"--to", "1h"}} {
		cliJSON(t, url, &rows, append([]string{"ledger", "query", "--agent", "acme", "--subtree"}, args...)...)
		if len(rows) != 0 {
			t.Fatalf("query %v: %d rows, want 0", args, len(rows))
		}
	}

	if _, err := conn.Exec(ctx, `UPDATE ledger SET cost_micros = 0 WHERE seq = 5`); err != nil {
		t.Fatal(err)
	}
	_, _, err = cli(t, url, "merkle", "verify", "--public-key", pub)
	if err == nil || !strings.Contains(err.Error(), "entry 5 ") {
		t.Fatalf("verify after tampering: %v", err)
	}
	// Entries below --from are not recomputed.
	if out := mustCLI(t, url, "merkle", "verify", "--public-key", pub, "--from", "6"); !strings.Contains(out, "OK") {
		t.Fatalf("verify --from 6 after tampering with entry 5: %q", out)
	}
	// The consumer's background verifier samples the changed entry sooner
	// or later and counts it in caracal_merkle_verification_failures_total.
	v, err := ledger.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	before := ledger.VerificationFailures.Get()
	bctx, bstop := context.WithCancel(ctx)
	bdone := make(chan error, 1)
	go func() {
		bdone <- backgroundVerify(bctx, pool, v, &consumeFlags{verifyInterval: 10 * time.Millisecond, verifySample: 40})
	}()
	for deadline := time.Now().Add(30 * time.Second); ledger.VerificationFailures.Get() == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the background verifier did not count the changed entry in 30 s")
		}
	}
	bstop()
	if err := <-bdone; err != nil {
		t.Fatalf("background verifier: %v", err)
	}
	var audit []json.RawMessage
	cliJSON(t, url, &audit, "audit", "query", "--type", "decision")
	if len(audit) != 0 {
		t.Fatalf("audit query: %d rows", len(audit))
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// meteringTopics creates a metering and a DLQ topic with partitions
// partitions on the test broker, deleted when the test ends, and returns a
// client that picks partitions by hand and a context of 90 s.
func meteringTopics(t *testing.T, partitions int32) (ctx context.Context, cl *kgo.Client, brokers []string, topic, dlq string) {
	t.Helper()
	brokers = testenv.KafkaBrokers(t)
	topic, dlq = testenv.Name("caracal-t-metering-"), testenv.Name("caracal-t-dlq-")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	adm := kadm.NewClient(cl)
	t.Cleanup(func() {
		cancel()
		if _, err := adm.DeleteTopics(context.Background(), topic, dlq); err != nil {
			t.Logf("cannot delete test topics: %v", err)
		}
		cl.Close()
	})
	if _, err := adm.CreateTopics(ctx, partitions, 1, nil, topic, dlq); err != nil {
		t.Fatal(err)
	}
	return ctx, cl, brokers, topic, dlq
}
