package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

var sinkHash tlog.Hash

// BenchmarkSealHashPerEntry is the CPU part of sealing one entry: canonical
// encoding, record hash, the new interior hashes from the in-memory
// frontier (the database round trips are amortised over a batch).
func BenchmarkSealHashPerEntry(b *testing.B) {
	b.ReportAllocs()
	e := sampleEntry()
	front := memReader{}
	buf := make([]byte, 0, 256)
	for i := 0; i < b.N; i++ {
		e.Seq = int64(i)
		var h tlog.Hash
		h, buf = e.RecordHash(buf)
		add, err := tlog.StoredHashesForRecordHash(e.Seq, h, front)
		if err != nil {
			b.Fatal(err)
		}
		base := tlog.StoredHashIndex(0, e.Seq)
		for j, x := range add {
			front[base+int64(j)] = x
		}
		if i&1023 == 1023 {
			front.prune(e.Seq + 1)
		}
		sinkHash = add[0]
	}
}

func benchRows(n int) []stageRow {
	g := event.NewIDGen()
	rows := make([]stageRow, n)
	now := time.Now().UTC()
	for i := range rows {
		rows[i] = stageRow{ord: int32(i), id: g.New(now), ts: now, kind: 1, pricing: 1, agent: [16]byte{1}, root: [16]byte{1},
			route: "openai", model: "gpt-4o", reqID: "req", gateway: "gw", in: 100, out: 200, cost: 1234, reserved: 5000,
			currency: "USD", status: 200, latency: 1000, partition: 0, offset: int64(i)}
	}
	return rows
}

const benchBatch = 5000

// BenchmarkLedgerWriteBatch stores batches of 5000 events the way the
// LedgerWriter does (COPY to staging, dedupe, seq, offsets, one
// transaction); compare events/s with BenchmarkRawCopy.
func BenchmarkLedgerWriteBatch(b *testing.B) {
	pool := testenv.PG(b)
	w := NewWriter(pool, "bench")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w.rows = benchRows(benchBatch)
		b.StartTimer()
		if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: int64(i+1) * benchBatch}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawCopy is the baseline: plain pgx COPY of the same rows into an
// unindexed table.
func BenchmarkRawCopy(b *testing.B) {
	pool := testenv.PG(b)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_copy (ord int, event_id uuid, ts timestamptz, kind smallint, agent_id uuid, root_id uuid,
		route text, model text, request_id text, gateway text, input_tokens bigint, output_tokens bigint, cost_micros bigint,
		reserved_micros bigint, currency char(3), status int, latency_us bigint, pricing smallint, src_partition int, src_offset bigint)`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rows := benchRows(benchBatch)
		b.StartTimer()
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"raw_copy"}, stageColumns, &stageSource{rows: rows, i: -1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSealFromDatabase seals ledger rows already written, per entry,
// database included.
func BenchmarkSealFromDatabase(b *testing.B) {
	pool := testenv.PG(b)
	ctx := context.Background()
	w := NewWriter(pool, "bench")
	for done := 0; done < b.N; done += benchBatch {
		w.rows = benchRows(min(benchBatch, b.N-done))
		if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: int64(done)}}}); err != nil {
			b.Fatal(err)
		}
	}
	skey, _, _ := GenerateKey("bench")
	signer, _ := note.NewSigner(skey)
	s := NewSealer(pool, SealerOptions{Signer: signer, BatchSize: 20000})
	b.ResetTimer()
	if err := s.SealAll(ctx); err != nil {
		b.Fatal(err)
	}
}
