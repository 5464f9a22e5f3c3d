package ledger

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/sumdb/note"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// envInt reads a positive integer knob of the pipeline benchmarks.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// firstDecode records when the runner handed the writer (or its fork) its
// first record and the time spent in Decode and in HandleBatch.
type firstDecode struct {
	*Writer
	*decodeClock
}

type decodeClock struct {
	first, decode, handle, batches atomic.Int64
}

func (f *firstDecode) Decode(r *kgo.Record) error {
	t0 := time.Now()
	if f.first.Load() == 0 {
		f.first.CompareAndSwap(0, t0.UnixNano())
	}
	err := f.Writer.Decode(r)
	f.decode.Add(int64(time.Since(t0)))
	return err
}

func (f *firstDecode) HandleBatch(ctx context.Context, b *runner.Batch) error {
	t0 := time.Now()
	err := f.Writer.HandleBatch(ctx, b)
	f.handle.Add(int64(time.Since(t0)))
	f.batches.Add(1)
	return err
}

func (f *firstDecode) Fork() runner.Handler {
	return &firstDecode{Writer: f.Writer.Fork().(*Writer), decodeClock: f.decodeClock}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// machineBusy returns the busy and total jiffies of all CPUs (/proc/stat).
func machineBusy() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// pipelineEvents produces n valid metering events to a new topic with the
// given partitions and returns the records as produced.
func pipelineEvents(b *testing.B, brokers []string, topic string, partitions, n int) []*kgo.Record {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	adm := kadm.NewClient(cl)
	res, err := adm.CreateTopics(ctx, int32(partitions), 1, nil, topic, topic+"-dlq")
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		b.Fatalf("cannot create topic %s: %v", topic, err)
	}
	b.Cleanup(func() {
		c, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kadm.NewClient(c).DeleteTopics(ctx, topic, topic+"-dlq") //nolint:errcheck
	})
	ids := event.NewIDGen()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		agent := event.UUID{1, byte(i % 50)}
		e := event.Metering{ID: ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Kind: event.KindUsage,
			Agent: agent, Root: agent, Route: []byte("openai"), Model: []byte("gpt-4o"),
			RequestID: []byte("req-" + strconv.Itoa(i)), Gateway: []byte("gw1"), InputTokens: int64(i % 1000),
			OutputTokens: 200, CostMicros: int64(1000 + i%777), ReservedMicros: 5000,
			Currency: [3]byte{'U', 'S', 'D'}, Status: 200, LatencyUs: 900, Pricing: event.PricingTokens}
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % partitions), Key: agent[:], Value: e.AppendJSON(nil)}
	}
	var check event.Metering
	if err := event.DecodeMetering(recs[0].Value, &check); err != nil {
		b.Fatalf("the benchmark's events are invalid: %v", err)
	}
	const chunk = 20000
	for i := 0; i < n; i += chunk {
		if err := cl.ProduceSync(ctx, recs[i:min(i+chunk, n)]...).FirstErr(); err != nil {
			b.Fatalf("cannot produce: %v", err)
		}
	}
	return recs
}

// BenchmarkPipelineEndToEnd is the end-to-end figure of issue 4: N events
// (CARACAL_PIPELINE_EVENTS, default 100000) already on the real broker in a
// fresh topic of CARACAL_PIPELINE_PARTITIONS (default 6) partitions are
// consumed by the real runner with the LedgerWriter (max.poll.records
// CARACAL_PIPELINE_POLL, default the configuration's; records per batch
// across polls CARACAL_PIPELINE_BATCH, default ledger.batchMaxRecords; the runner's overlap
// off with CARACAL_PIPELINE_SEQUENTIAL=1) and the sealer (default consume
// flags: checkpoint every 10000 or 2 s, 20000 per seal) on a fresh
// database, until all N rows are committed, sealed and under a signed
// checkpoint of size N. The clock runs from the first record the writer
// sees (after the group join). In the same run the same N rows are COPYed
// by plain pgx, 5000 rows per chunk, into an unindexed table (the ceiling)
// and into tables with the ledger's indexes (see rawCopyRates). x-copy and
// x-indexed-copy are the sealed rate over those. Run with -benchtime=1x.
func BenchmarkPipelineEndToEnd(b *testing.B) {
	n := envInt("CARACAL_PIPELINE_EVENTS", 100000)
	parts := envInt("CARACAL_PIPELINE_PARTITIONS", 6)
	sequential := os.Getenv("CARACAL_PIPELINE_SEQUENTIAL") == "1"
	brokers := testenv.KafkaBrokers(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := testenv.Config(b)
		cfg.Kafka.Brokers = brokers
		cfg.Kafka.Consumer.MaxPollRecords = envInt("CARACAL_PIPELINE_POLL", cfg.Kafka.Consumer.MaxPollRecords)
		cfg.Ledger.BatchMaxRecords = envInt("CARACAL_PIPELINE_BATCH", cfg.Ledger.BatchMaxRecords)
		pool := testenv.PG(b)
		topic, group := testenv.Name("pipe-"), testenv.Name("g-")
		recs := pipelineEvents(b, brokers, topic, parts, n)
		r := runPipeline(b, cfg, pool, topic, group, int64(n), sequential)
		copies := rawCopyRates(b, pool, recs)
		sealedRate := float64(n) / r.sealed.Seconds()
		b.ReportMetric(r.rate, "events/s")
		b.ReportMetric(float64(n)/r.commit.Seconds(), "committed-events/s")
		b.ReportMetric(sealedRate, "sealed-events/s")
		b.ReportMetric(copies.plain, "copy-events/s")
		b.ReportMetric(copies.indexed, "indexed-copy-events/s")
		b.ReportMetric(sealedRate/copies.plain, "x-copy")
		b.ReportMetric(sealedRate/copies.indexed, "x-indexed-copy")
		b.ReportMetric(r.cpu/float64(n)*1e6, "cpu-µs/event")
		b.ReportMetric(r.machine*100, "machine-busy-%")
		b.Logf("N=%d partitions=%d poll=%d batch=%d sequential=%v: commit %v, sealed %v, checkpoint %v; COPY %.0f/s, indexed COPY %.0f/s; process CPU %.2f s; "+
			"%d batches, in Decode %v, in HandleBatch %v (overlapping unless sequential)",
			n, parts, cfg.Kafka.Consumer.MaxPollRecords, cfg.Ledger.BatchMaxRecords, sequential, r.commit, r.sealed, r.total, copies.plain, copies.indexed, r.cpu,
			r.batches, r.decode, r.handle)
	}
}

type pipelineResult struct {
	commit, sealed, total time.Duration
	decode, handle        time.Duration
	batches               int
	rate, cpu, machine    float64
}

func runPipeline(b *testing.B, cfg *config.Config, pool *pgxpool.Pool, topic, group string, n int64, sequential bool) pipelineResult {
	b.Helper()
	skey, _, err := GenerateKey("caracal-ledger-bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	w := &firstDecode{Writer: NewWriter(pool, group), decodeClock: &decodeClock{}}
	rn, err := runner.New(cfg, w, runner.Options{Name: "ledger", Group: group, Topics: []string{topic},
		DLQTopic: topic + "-dlq", MaxPollRecords: cfg.Kafka.Consumer.MaxPollRecords, BatchMaxRecords: cfg.Ledger.BatchMaxRecords,
		Sequential: sequential})
	if err != nil {
		b.Fatal(err)
	}
	defer rn.Close()
	sealer := NewSealer(pool, SealerOptions{Signer: signer, CheckpointEvery: 10000, CheckpointInterval: 2 * time.Second, BatchSize: 20000})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, run := range []func(context.Context) error{rn.Run, sealer.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				b.Errorf("pipeline: %v", err)
			}
		}()
	}
	cpu0 := cpuSeconds()
	busy0, total0 := machineBusy()
	b.StartTimer()
	var res pipelineResult
	var committedAt, sealedAt time.Time
	q := func(sql string) int64 {
		var v int64
		if err := pool.QueryRow(ctx, sql).Scan(&v); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		now := time.Now()
		if now.After(deadline) {
			b.Fatalf("not done in 10 minutes: %d committed, %d sealed", q(`SELECT next_seq FROM ledger_counter`), q(`SELECT tree_size FROM merkle_head`))
		}
		if committedAt.IsZero() && q(`SELECT next_seq FROM ledger_counter`) == n {
			committedAt = now
		}
		if sealedAt.IsZero() && q(`SELECT tree_size FROM merkle_head`) == n {
			sealedAt = now
		}
		if !sealedAt.IsZero() && q(`SELECT coalesce(max(tree_size), 0) FROM merkle_checkpoints`) == n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	end := time.Now()
	b.StopTimer()
	res.cpu = cpuSeconds() - cpu0
	busy1, total1 := machineBusy()
	if total1 > total0 {
		res.machine = float64(busy1-busy0) / float64(total1-total0)
	}
	first := time.Unix(0, w.first.Load())
	res.commit, res.sealed, res.total = committedAt.Sub(first), sealedAt.Sub(first), end.Sub(first)
	res.rate = float64(n) / res.total.Seconds()
	res.decode, res.handle, res.batches = time.Duration(w.decode.Load()), time.Duration(w.handle.Load()), int(w.batches.Load())
	if got := q(`SELECT count(*) FROM ledger`); got != n {
		b.Fatalf("%d ledger rows, want %d", got, n)
	}
	return res
}

// copyRates are the two raw pgx COPY baselines of the same rows, in rows/s.
type copyRates struct {
	plain   float64 // into an unindexed table of the staging shape, one COPY per chunk
	indexed float64 // into tables with the ledger's and ledger_ids' indexes, two COPYs per chunk in one transaction
}

// rawCopyRates COPYs the rows of recs (decoded as the writer does), 5000 per
// chunk, first into an unindexed table of the staging shape (the ceiling),
// then, with their seq, into a partitioned copy of ledger and a copy of
// ledger_ids that carry exactly the indexes the migrations gave the real
// ones (read from pg_indexes): what PostgreSQL itself costs for these rows.
func rawCopyRates(b *testing.B, pool *pgxpool.Pool, recs []*kgo.Record) copyRates {
	b.Helper()
	ctx := context.Background()
	w := NewWriter(pool, "raw")
	for _, r := range recs {
		if err := w.Decode(r); err != nil {
			b.Fatal(err)
		}
	}
	rows := w.rows
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_copy (ord int, event_id uuid, ts timestamptz, kind smallint, agent_id uuid, root_id uuid,
		route text, model text, request_id text, gateway text, input_tokens bigint, output_tokens bigint, cost_micros bigint,
		reserved_micros bigint, currency char(3), status int, latency_us bigint, pricing smallint, src_partition int, src_offset bigint)`); err != nil {
		b.Fatal(err)
	}
	var out copyRates
	start := time.Now()
	for i := 0; i < len(rows); i += benchBatch {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"raw_copy"}, stageColumns, &stageSource{rows: rows[i:min(i+benchBatch, len(rows))], i: -1}); err != nil {
			b.Fatal(fmt.Errorf("cannot copy: %w", err))
		}
	}
	out.plain = float64(len(rows)) / time.Since(start).Seconds()

	ddl := []string{
		`CREATE TABLE raw_ledger (LIKE ledger INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (ts)`,
		`CREATE TABLE raw_ledger_all PARTITION OF raw_ledger FOR VALUES FROM (MINVALUE) TO (MAXVALUE)`,
		`CREATE TABLE raw_ledger_ids (LIKE ledger_ids INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
	}
	idx, err := pool.Query(ctx, `SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ('ledger', 'ledger_ids') ORDER BY indexname`)
	if err != nil {
		b.Fatal(err)
	}
	var table, def string
	n := 0
	if _, err := pgx.ForEachRow(idx, []any{&table, &def}, func() error {
		// "CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING ..." -> the raw copy.
		head, rest, ok := strings.Cut(def, " ON ")
		_, using, ok2 := strings.Cut(rest, " USING ")
		if !ok || !ok2 {
			return fmt.Errorf("unexpected index definition %q", def)
		}
		unique := ""
		if strings.HasPrefix(head, "CREATE UNIQUE") {
			unique = "UNIQUE "
		}
		n++
		ddl = append(ddl, fmt.Sprintf("CREATE %sINDEX raw_%s_%d ON raw_%s USING %s", unique, table, n, table, using))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for _, q := range ddl {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	all := make([]int32, len(rows))
	for i := range all {
		all[i] = int32(i)
	}
	start = time.Now()
	for i := 0; i < len(rows); i += benchBatch {
		j := min(i+benchBatch, len(rows))
		cw := &Writer{rows: rows[i:j], fresh: all[:j-i]}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_ledger_ids"}, []string{"event_id", "seq"}, &freshSource{w: cw, next: int64(i), i: -1}); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_ledger"}, ledgerColumns, &freshSource{w: cw, next: int64(i), i: -1, full: true})
			return err
		})
		if err != nil {
			b.Fatal(fmt.Errorf("cannot copy: %w", err))
		}
	}
	out.indexed = float64(len(rows)) / time.Since(start).Seconds()
	return out
}

// The COPY fast path and its fallback keep the writer's semantics: the
// first copy of an id in a batch wins, an id already in the ledger is
// dropped, seq stays dense in batch order, and the batch is all or nothing.
func TestWriterFastPathAndFallback(t *testing.T) {
	pool := testenv.PG(t)
	ctx := context.Background()
	w := NewWriter(pool, "g")
	q := func(sql string) int64 {
		var v int64
		if err := pool.QueryRow(ctx, sql).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	first := benchRows(10)
	// Fast path: a batch with an id twice (rows 3 and 7): 9 entries, row 3's kept.
	w.rows = append([]stageRow(nil), first...)
	w.rows[7].id, w.rows[7].cost = w.rows[3].id, 999
	if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: 10}}}); err != nil {
		t.Fatal(err)
	}
	if got := q(`SELECT count(*) FROM ledger WHERE cost_micros = 999`); got != 0 {
		t.Fatal("a later copy of an id in the batch won")
	}
	// Fallback: a batch of 2 replayed ids and 5 new ones: 5 entries added.
	more := benchRows(5)
	w.rows = []stageRow{first[0], more[0], more[1], first[5], more[2], more[3], more[4]}
	if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: 17}}}); err != nil {
		t.Fatal(err)
	}
	// A batch of replays only.
	w.rows = append([]stageRow(nil), first[:4]...)
	if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: 21}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sql  string
		want int64
	}{
		{`SELECT count(*) FROM ledger`, 14},
		{`SELECT count(DISTINCT event_id) FROM ledger`, 14},
		{`SELECT max(seq) + 1 FROM ledger`, 14},
		{`SELECT next_seq FROM ledger_counter`, 14},
		{`SELECT count(*) FROM ledger l JOIN ledger_ids i USING (event_id, seq)`, 14},
		{`SELECT next_offset FROM consumer_offsets WHERE group_id = 'g'`, 21},
	} {
		if got := q(c.sql); got != c.want {
			t.Errorf("%s = %d, want %d", c.sql, got, c.want)
		}
	}
	// The new ids of the fallback batch are numbered 9..13 in batch order.
	rows, err := pool.Query(ctx, `SELECT event_id FROM ledger WHERE seq >= 9 ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var got [][16]byte
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	rows.Close()
	for i, r := range more {
		if i >= len(got) || got[i] != r.id {
			t.Fatalf("entry %d is not the new id %d of the batch", 9+i, i)
		}
	}
}
