package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// TestSealerOptionsFromConfig: the checkpoint rule comes from
// ledger.checkpointEvery/Interval; a flag given replaces its key.
func TestSealerOptionsFromConfig(t *testing.T) {
	cfg, err := config.Load("", nil, []string{"ledger.checkpointEvery=7", "ledger.checkpointInterval=3s"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := sealerOptions(cfg, &consumeFlags{sealBatch: 11})
	if err != nil || o.CheckpointEvery != 7 || o.CheckpointInterval != 3*time.Second || o.BatchSize != 11 {
		t.Fatalf("from the config: %+v %v, want every 7, interval 3s, batch 11", o, err)
	}
	o, err = sealerOptions(cfg, &consumeFlags{checkpointEvery: 50, checkpointInterval: 100 * time.Millisecond})
	if err != nil || o.CheckpointEvery != 50 || o.CheckpointInterval != 100*time.Millisecond {
		t.Fatalf("flags given: %+v %v, want every 50, interval 100ms", o, err)
	}
	o, err = sealerOptions(cfg, &consumeFlags{checkpointInterval: time.Minute})
	if err != nil || o.CheckpointEvery != 7 || o.CheckpointInterval != time.Minute {
		t.Fatalf("one flag given: %+v %v, want every 7 (config), interval 1m (flag)", o, err)
	}
	if _, err := sealerOptions(cfg, &consumeFlags{checkpointEvery: -1}); err == nil || !strings.Contains(err.Error(), "--checkpoint-every") {
		t.Fatalf("a negative --checkpoint-every: %v", err)
	}
	if _, err := sealerOptions(cfg, &consumeFlags{checkpointInterval: -time.Second}); err == nil || !strings.Contains(err.Error(), "--checkpoint-interval") {
		t.Fatalf("a negative --checkpoint-interval: %v", err)
	}
}

// TestConsumeLedgerCheckpointsFromConfig runs `caracal consume ledger` with
// ledger.checkpointEvery 10 and ledger.checkpointInterval 1h from the config
// (no checkpoint flags) and sealing steps of at most 5 entries: after the
// first checkpoint every next one comes 10 to 14 entries later. With the
// defaults (10000 entries or 2 s) 40 entries would get at most two or
// three checkpoints at whatever sizes the 2 s fell on.
func TestConsumeLedgerCheckpointsFromConfig(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	ctx, cl, brokers, topic, dlq := meteringTopics(t, 1)
	dir := t.TempDir()
	mustCLI(t, url, "merkle", "keygen", "--name", "caracal-ledger", "--out-dir", dir)
	var agent store.AgentRow
	cliJSON(t, url, &agent, "agent", "create", "cfg-checkpoints")
	id, _ := event.ParseUUID([]byte(agent.ID))
	ids := event.NewIDGen()
	const n = 40
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		e := event.Metering{ID: ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Kind: event.KindUsage,
			Agent: id, Root: id, Route: []byte("openai"), Model: []byte("gpt"), CostMicros: 1000,
			Currency: [3]byte{'U', 'S', 'D'}, Status: 200, Pricing: event.PricingTokens}
		recs = append(recs, &kgo.Record{Topic: topic, Value: e.AppendJSON(nil)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	args := []string{"--set", "database.url=" + url, "--set", "kafka.brokers=" + strings.Join(brokers, ","),
		"--set", "kafka.topics.metering=" + topic, "--set", "kafka.topics.dlq=" + dlq,
		"--set", "kafka.consumer.fetch.max.wait.ms=100",
		"--set", "ledger.checkpointEvery=10", "--set", "ledger.checkpointInterval=1h",
		"consume", "ledger", "--signer-key-file", filepath.Join(dir, "caracal-ledger.key"), "--seal-batch", "5",
		"--verify-interval", "0", "--group", testenv.Name("g-")}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var co, ce syncBuffer
	go func() { done <- run(cctx, args, &co, &ce) }()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sizes []int64
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sizes = sizes[:0]
		rows, err := conn.Query(ctx, `SELECT tree_size FROM merkle_checkpoints ORDER BY tree_size`)
		if err != nil {
			t.Fatal(err)
		}
		sizes, err = pgx.AppendRows(sizes, rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		// Once all 40 entries are sealed the last checkpoint is above 30.
		if len(sizes) > 0 && sizes[len(sizes)-1] > n-10 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("consume ended early: %v\n%s", err, ce.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoints %v after 60 s, want one above %d\n%s", sizes, n-10, ce.String())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v\n%s", err, ce.String())
	}
	if len(sizes) < 3 {
		t.Fatalf("checkpoints at %v: want at least 3 for %d entries every 10", sizes, n)
	}
	if sizes[0] > 5 {
		t.Fatalf("checkpoints at %v: the first should sign the first step (at most 5 entries)", sizes)
	}
	for i := 1; i < len(sizes); i++ {
		if d := sizes[i] - sizes[i-1]; d < 10 || d > 14 {
			t.Fatalf("checkpoints at %v: %d entries between %d and %d, want 10..14 (ledger.checkpointEvery 10, steps of 5, interval 1h)",
				sizes, d, sizes[i-1], sizes[i])
		}
	}
	t.Logf("checkpoints at %v", sizes)
}
