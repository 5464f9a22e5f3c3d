package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/sumdb/note"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

type fixture struct {
	t        *testing.T
	cfg      *config.Config
	pool     *pgxpool.Pool
	topic    string
	dlq      string
	group    string
	producer *kgo.Client
	signer   note.Signer
	verifier note.Verifier
	ids      *event.IDGen
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: testenv.Config(t), pool: testenv.PG(t), topic: testenv.Name("ledger-"),
		dlq: testenv.Name("dlq-"), group: testenv.Name("g-"), ids: event.NewIDGen()}
	f.cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	f.cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	f.cfg.Kafka.Consumer.MaxPollRecords = 100
	f.producer = ctest.Topics(t, f.cfg, f.topic, f.dlq)
	skey, vkey, err := GenerateKey("caracal-ledger-test")
	if err != nil {
		t.Fatal(err)
	}
	if f.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if f.verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	return f
}

// events returns n valid metering records spread over the 3 partitions.
func (f *fixture) events(n int) []*kgo.Record {
	agent := event.UUID{1, 2, 3}
	var out []*kgo.Record
	for i := 0; i < n; i++ {
		e := event.Metering{ID: f.ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Kind: event.KindUsage,
			Agent: agent, Root: agent, Route: []byte("openai"), Model: []byte("gpt-4o"), RequestID: []byte(fmt.Sprint("r", i)),
			Gateway: []byte("gw1"), InputTokens: int64(i), OutputTokens: 2, CostMicros: int64(1000 + i), ReservedMicros: 5000,
			Currency: [3]byte{'U', 'S', 'D'}, Status: 200, LatencyUs: 10, Pricing: event.PricingTokens}
		out = append(out, &kgo.Record{Topic: f.topic, Partition: int32(i % 3), Key: agent[:], Value: e.AppendJSON(nil)})
	}
	return out
}

func (f *fixture) produce(recs ...*kgo.Record) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		f.t.Fatalf("cannot produce: %v", err)
	}
}

// consume runs a ledger runner until the ledger holds want rows and every
// partition's stored offset reached the end, then stops it.
func (f *fixture) consume(w runner.Handler, want int64) {
	f.t.Helper()
	r, err := runner.New(f.cfg, w, runner.Options{Name: "ledger", Group: f.group, Topics: []string{f.topic},
		DLQTopic: f.dlq, MaxPollRecords: f.cfg.Kafka.Consumer.MaxPollRecords, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("runner: %v", err)
		}
		r.Close()
	}()
	end := f.endOffsets()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if f.count() == want && f.storedTotal() == end {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("ledger has %d rows (want %d), stored offsets sum %d (want %d)", f.count(), want, f.storedTotal(), end)
}

func (f *fixture) endOffsets() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(f.producer).ListEndOffsets(ctx, f.topic)
	if err != nil {
		f.t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

func (f *fixture) q(sql string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (f *fixture) count() int64 { return f.q(`SELECT count(*) FROM ledger`) }
func (f *fixture) storedTotal() int64 {
	return f.q(`SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1`, f.group)
}

func (f *fixture) seal() {
	f.t.Helper()
	s := NewSealer(f.pool, SealerOptions{Signer: f.signer, CheckpointEvery: 40, BatchSize: 64})
	if err := s.SealAll(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) verify() *VerifyReport {
	f.t.Helper()
	rep, err := Verify(context.Background(), f.pool, f.verifier, 0, -1, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

func TestLedgerExactlyOnceSealedAndVerified(t *testing.T) {
	f := newFixture(t)
	const n = 300
	recs := f.events(n)
	f.produce(recs...)
	f.consume(NewWriter(f.pool, f.group), n)
	if got := f.q(`SELECT count(DISTINCT event_id) FROM ledger`); got != n {
		t.Fatalf("distinct event ids %d, want %d", got, n)
	}
	if got := f.q(`SELECT count(*) FROM ledger l JOIN ledger_ids i USING (event_id, seq)`); got != n {
		t.Fatalf("ledger_ids matches %d rows, want %d", got, n)
	}
	if got := f.q(`SELECT max(seq) + 1 - count(*) FROM ledger`); got != 0 {
		t.Fatalf("seq has %d gaps", got)
	}
	f.seal()
	if got := f.q(`SELECT max(tree_size) FROM merkle_checkpoints`); got != n {
		t.Fatalf("last checkpoint covers %d entries, want %d", got, n)
	}
	if got := f.q(`SELECT count(*) FROM merkle_checkpoints`); got < 2 {
		t.Fatalf("%d checkpoints, want several (every 40 entries)", got)
	}
	rep := f.verify()
	if rep.Problem != nil || rep.To != n || rep.Uncovered != 0 || rep.Checkpoints < 2 {
		t.Fatalf("verify: %+v problem %v", rep, rep.Problem)
	}
	if p, err := VerifySample(context.Background(), f.pool, f.verifier, 20); err != nil || p != nil {
		t.Fatalf("sample verification: %v %v", p, err)
	}

	// The same events again, and the stored offsets rewound: nothing changes.
	digest := func() string {
		var d string
		if err := f.pool.QueryRow(context.Background(), `SELECT md5(string_agg(l::text, '|' ORDER BY seq)) || ':' ||
			(SELECT next_seq FROM ledger_counter) || ':' || (SELECT encode(root_hash, 'hex') FROM merkle_checkpoints WHERE tree_size = $1)
			FROM ledger l`, int64(n)).Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	before := digest()
	f.produce(cloneRecs(recs)...)
	f.consume(NewWriter(f.pool, f.group), n)
	if _, err := f.pool.Exec(context.Background(), `DELETE FROM consumer_offsets`); err != nil {
		t.Fatal(err)
	}
	f.group = testenv.Name("g-") // a new group starts from the beginning
	f.consume(NewWriter(f.pool, f.group), n)
	f.seal()
	if got := f.q(`SELECT max(tree_size) FROM merkle_checkpoints`); got != n {
		t.Fatalf("after replay the tree has %d entries, want %d", got, n)
	}
	if after := digest(); after != before {
		t.Fatalf("the replay changed the ledger (rows digest:counter:root %s, was %s)", after, before)
	}
	if rep := f.verify(); rep.Problem != nil || rep.To != n {
		t.Fatalf("verify after replay: %+v %v", rep, rep.Problem)
	}

	// Proofs verify offline and with a second implementation.
	for _, seq := range []int64{0, 7, n - 1} {
		var id [16]byte
		if err := f.pool.QueryRow(context.Background(), `SELECT event_id FROM ledger WHERE seq = $1`, seq).Scan(&id); err != nil {
			t.Fatal(err)
		}
		p, err := Prove(context.Background(), f.pool, event.ID(id))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(p)
		if _, err := CheckProof(data, f.verifier); err != nil {
			t.Fatalf("check-proof of entry %d: %v", seq, err)
		}
		c, _ := OpenCheckpoint(p.Checkpoint, f.verifier)
		path := make([][]byte, len(p.Proof))
		for i := range p.Proof {
			path[i] = p.Proof[i][:]
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.Index), uint64(p.TreeSize), p.RecordHash[:], path, c.Root[:]); err != nil {
			t.Fatalf("transparency-dev/merkle rejects the proof of entry %d: %v", seq, err)
		}
		p.Entry.CostMicros++
		data, _ = json.Marshal(p)
		if _, err := CheckProof(data, f.verifier); err == nil {
			t.Fatalf("a proof with a changed cost verified")
		}
	}
}

func cloneRecs(in []*kgo.Record) []*kgo.Record {
	out := make([]*kgo.Record, len(in))
	for i, r := range in {
		out[i] = &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value}
	}
	return out
}

func TestLedgerPoisonGoesToDLQAndPartitionContinues(t *testing.T) {
	f := newFixture(t)
	recs := f.events(20)
	poison := &kgo.Record{Topic: f.topic, Partition: 1, Value: []byte(`{"v":1,"id":"nope"}`)}
	f.produce(recs[:10]...)
	f.produce(poison)
	f.produce(recs[10:]...)
	// The runner's metrics (the package's tests run one at a time).
	counter := func(name string) uint64 { return metrics.GetOrCreateCounter(name + `{consumer="ledger"}`).Get() }
	dlq0, records0, batches0 := counter("caracal_consumer_dlq_total"), counter("caracal_consumer_records_total"), counter("caracal_consumer_batches_total")
	f.consume(NewWriter(f.pool, f.group), 20)
	if d, r, b := counter("caracal_consumer_dlq_total")-dlq0, counter("caracal_consumer_records_total")-records0,
		counter("caracal_consumer_batches_total")-batches0; d != 1 || r != 20 || b < 1 {
		t.Fatalf("caracal_consumer_dlq_total +%d (want 1), caracal_consumer_records_total +%d (want 20), caracal_consumer_batches_total +%d (want >= 1)", d, r, b)
	}
	var prom bytes.Buffer
	metrics.WritePrometheus(&prom, false)
	if !strings.Contains(prom.String(), `caracal_consumer_batch_seconds_count{consumer="ledger"}`) {
		t.Fatal("caracal_consumer_batch_seconds is not exported")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.cfg.Kafka.Brokers...), kgo.ConsumeTopics(f.dlq))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	got := fs.Records()
	if len(got) != 1 || string(got[0].Value) != string(poison.Value) {
		t.Fatalf("DLQ holds %d records", len(got))
	}
	h := map[string]string{}
	for _, x := range got[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if h[runner.HeaderTopic] != f.topic || h[runner.HeaderPartition] != "1" || h[runner.HeaderOffset] == "" ||
		!strings.Contains(h[runner.HeaderError], "invalid") {
		t.Fatalf("DLQ headers %v", h)
	}
}

func TestLedgerFailedBatchIsNotCommittedAndResumes(t *testing.T) {
	f := newFixture(t)
	const n = 60
	f.cfg.Kafka.Consumer.MaxPollRecords = 5
	f.produce(f.events(n)...)
	w := NewWriter(f.pool, f.group)
	var calls atomic.Int32
	w.beforeCommit = func() error {
		// The second, third and fourth transactions fail as if PostgreSQL
		// went away; nothing of them may be stored.
		if c := calls.Add(1); c >= 2 && c <= 4 {
			// Outside the failing transaction, rows and offsets agree.
			rows, stored := f.count(), f.storedTotal()
			if rows != stored {
				t.Errorf("%d ledger rows but stored offsets sum to %d", rows, stored)
			}
			// Nothing of the failing batch reached Kafka's committed offsets.
			// (Fetched here, not with ctest: this runs in the runner's goroutine.)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			off, err := kadm.NewClient(f.producer).FetchOffsets(ctx, f.group)
			if err != nil {
				return fmt.Errorf("cannot fetch the group's offsets: %w", err)
			}
			var kafka int64
			off.Each(func(o kadm.OffsetResponse) { kafka += o.At })
			if kafka > stored {
				t.Errorf("Kafka's committed offsets sum to %d, past the %d stored with the rows", kafka, stored)
			}
			return errors.New("injected: the database is unreachable")
		}
		return nil
	}
	f.consume(w, n)
	if calls.Load() < 5 {
		t.Fatalf("only %d transactions: the failures were not retried", calls.Load())
	}
	if got := f.q(`SELECT count(DISTINCT event_id) FROM ledger`); got != n {
		t.Fatalf("%d distinct events, want %d", got, n)
	}
}

// editStoredHash replaces the stored hash idx, inside its run, by its
// SHA-256.
func editStoredHash(idx int64) string {
	return fmt.Sprintf(`UPDATE merkle_hash_runs
		SET hashes = overlay(hashes PLACING sha256(substring(hashes FROM (%[1]d - first_idx)::int * 32 + 1 FOR 32))
			FROM (%[1]d - first_idx)::int * 32 + 1 FOR 32)
		WHERE first_idx = (SELECT max(first_idx) FROM merkle_hash_runs WHERE first_idx <= %[1]d)
			AND %[1]d - first_idx < length(hashes) / 32`, idx)
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name, sql, want string
	}{
		{"change a cost", `UPDATE ledger SET cost_micros = cost_micros + 1 WHERE seq = 17`, "entry 17 "},
		{"delete a row", `DELETE FROM ledger WHERE seq = 23`, "entry 23 "},
		{"swap two rows", `UPDATE ledger SET seq = CASE seq WHEN 30 THEN 31 ELSE 30 END WHERE seq IN (30, 31)`, "entry 30 "},
		{"edit a stored record hash", editStoredHash(81), "entry 42 "},
		{"edit a stored interior hash", editStoredHash(83), "stored interior hash 83"},
		// Entry 99 (the last) stores hashes 194-196; 196 is interior.
		{"cut the last stored hash", `UPDATE merkle_hash_runs SET hashes = substring(hashes FOR length(hashes) - 32)
			WHERE first_idx = (SELECT max(first_idx) FROM merkle_hash_runs)`, "stored interior hash 196"},
		{"delete the first hash run", `DELETE FROM merkle_hash_runs WHERE first_idx = 0`, "entry 0 "},
		// A one-hash run at 81 shadows the hash at 81 of the run before it.
		{"shadow a stored hash with a run", `INSERT INTO merkle_hash_runs (first_idx, hashes)
			SELECT 81, sha256(substring(hashes FROM 81 * 32 + 1 FOR 32)) FROM merkle_hash_runs WHERE first_idx = 0`, "entry 42 "},
		{"forge a checkpoint root", `UPDATE merkle_checkpoints SET root_hash = sha256(root_hash) WHERE tree_size = 64`, "checkpoint of size 64"},
		{"forge the last checkpoint", `UPDATE merkle_checkpoints SET root_hash = sha256(root_hash) WHERE tree_size = 100`, "checkpoint of size 100"},
		{"forge a checkpoint note", `UPDATE merkle_checkpoints SET note = replace(note, E'\n64\n', E'\n63\n') WHERE tree_size = 64`, "checkpoint of size 64"},
		{"drop the last entries", `DELETE FROM ledger WHERE seq >= 98`, "entry 98 "},
	}
	f := newFixture(t)
	const n = 100
	f.produce(f.events(n)...)
	f.consume(NewWriter(f.pool, f.group), n)
	f.seal() // checkpoints at 64 (the first batch) and 100
	if rep := f.verify(); rep.Problem != nil {
		t.Fatalf("clean ledger fails: %v", rep.Problem)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tx := tamper(t, f.pool, tc.sql)
			before := VerificationFailures.Get()
			rep, err := Verify(ctx, tx, f.verifier, 0, -1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Problem == nil || !strings.Contains(rep.Problem.Error(), tc.want) {
				t.Fatalf("verify: %v, want a problem naming %q", rep.Problem, tc.want)
			}
			if VerificationFailures.Get() != before+1 {
				t.Fatalf("failure metric did not increment")
			}
			if strings.Contains(tc.want, "100") {
				// The background verifier checks the latest checkpoint always.
				if p, err := VerifySample(ctx, tx, f.verifier, 5); err != nil || p == nil {
					t.Fatalf("sample verification missed it: %v %v", p, err)
				}
				if VerificationFailures.Get() != before+2 {
					t.Fatalf("failure metric did not increment for the sample")
				}
			}
		})
	}
	if rep := f.verify(); rep.Problem != nil {
		t.Fatalf("ledger after rollbacks fails: %v", rep.Problem)
	}

	// verify --from/--to: entries outside [from, to) are not recomputed; a
	// checkpoint below from is still checked for consistency with the
	// next one, from the stored hashes.
	ranges := []struct {
		name, sql string
		from, to  int64
		want      string // "" = no problem
	}{
		{"a change after --to is not read", `UPDATE ledger SET cost_micros = cost_micros + 1 WHERE seq = 95`, 0, 90, ""},
		{"a change before --from is not read", `UPDATE ledger SET cost_micros = cost_micros + 1 WHERE seq = 17`, 70, -1, ""},
		{"a change inside the range", `UPDATE ledger SET cost_micros = cost_micros + 1 WHERE seq = 75`, 70, 90, "entry 75 "},
		{"a forged checkpoint below --from", `UPDATE merkle_checkpoints SET root_hash = sha256(root_hash) WHERE tree_size = 64`, 70, -1,
			"checkpoint of size 100 is not consistent with checkpoint of size 64"},
	}
	for _, tc := range ranges {
		t.Run("range/"+tc.name, func(t *testing.T) {
			ctx := context.Background()
			tx := tamper(t, f.pool, tc.sql)
			before := VerificationFailures.Get()
			rep, err := Verify(ctx, tx, f.verifier, tc.from, tc.to, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantTo := tc.to
			if wantTo < 0 {
				wantTo = n
			}
			if rep.From != tc.from || rep.To != wantTo {
				t.Fatalf("verified [%d, %d), want [%d, %d)", rep.From, rep.To, tc.from, wantTo)
			}
			switch {
			case tc.want == "" && rep.Problem != nil:
				t.Fatalf("verify [%d, %d): %v, want no problem", tc.from, tc.to, rep.Problem)
			case tc.want != "" && (rep.Problem == nil || !strings.Contains(rep.Problem.Error(), tc.want)):
				t.Fatalf("verify [%d, %d): %v, want a problem naming %q", tc.from, tc.to, rep.Problem, tc.want)
			}
			if got, want := VerificationFailures.Get()-before, uint64(min(len(tc.want), 1)); got != want {
				t.Fatalf("failure metric rose by %d, want %d", got, want)
			}
		})
	}
}

// tamper runs sql in a transaction that the test rolls back at its end and
// returns it, for verifying through it; sql must change some row.
func tamper(t *testing.T, pool *pgxpool.Pool, sql string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(ctx) }) //nolint:errcheck
	if tag, err := tx.Exec(ctx, sql); err != nil || tag.RowsAffected() == 0 {
		t.Fatalf("tampering changed nothing: %v %v", tag, err)
	}
	return tx
}
