package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// proofEntry is the synthetic entry seq of the large-log proof benchmark.
func proofEntry(seq, ts int64) Entry {
	var id event.ID
	id[0] = 0x01
	binary.BigEndian.PutUint64(id[8:], uint64(seq))
	agent := event.UUID{7, byte(seq % 50)}
	return Entry{Seq: seq, EventID: id, TimeUnixUs: ts, Kind: event.KindUsage, Agent: agent, Root: agent,
		Route: "openai", Model: "gpt-4o", InputTokens: seq % 1000, OutputTokens: 200, CostMicros: 1000 + seq%777,
		ReservedMicros: 5000, Currency: [3]byte{'U', 'S', 'D'}, Status: 200}
}

// storedHashSource computes the stored hashes of entries 0..n-1 as COPY
// rows of merkle_hash_runs (first_idx, hashes) of runCap hashes each,
// keeping only the frontier and one run in memory.
type storedHashSource struct {
	n, ts, seq int64
	front      memReader
	buf        []byte
	pending    []byte // hashes from index first not yet in a row
	first      int64
	row        []byte
	vals       [2]any
	hashes     int64
	err        error
}

func (s *storedHashSource) Next() bool {
	for len(s.pending) < runCap*tlog.HashSize && s.seq < s.n {
		e := proofEntry(s.seq, s.ts)
		var h tlog.Hash
		h, s.buf = e.RecordHash(s.buf)
		add, err := tlog.StoredHashesForRecordHash(s.seq, h, s.front)
		if err != nil {
			s.err = err
			return false
		}
		base := tlog.StoredHashIndex(0, s.seq)
		for j, x := range add {
			s.front[base+int64(j)] = x
			s.pending = append(s.pending, x[:]...)
		}
		s.seq++
		if s.seq&4095 == 0 {
			s.front.prune(s.seq)
		}
	}
	if len(s.pending) == 0 {
		return false
	}
	k := min(len(s.pending), runCap*tlog.HashSize)
	s.row = append(s.row[:0], s.pending[:k]...)
	s.vals[0], s.vals[1] = s.first, s.row
	s.first += int64(k / tlog.HashSize)
	s.hashes += int64(k / tlog.HashSize)
	s.pending = s.pending[:copy(s.pending, s.pending[k:])]
	return true
}

func (s *storedHashSource) Values() ([]any, error) { return s.vals[:], nil }

func (s *storedHashSource) Err() error { return s.err }

// buildLargeLog fills a fresh database with the stored hashes of n
// synthetic entries (COPY of merkle_hash_runs rows of runCap hashes), a
// signed checkpoint of size n, and the ledger and ledger_ids rows of the
// entries in samples.
func buildLargeLog(b *testing.B, pool *pgxpool.Pool, n int64, samples []int64, signer note.Signer) {
	b.Helper()
	ctx := context.Background()
	ts := time.Now().Truncate(time.Second).UnixMicro()
	start := time.Now()
	src := &storedHashSource{n: n, ts: ts, front: memReader{}}
	rows, err := pool.CopyFrom(ctx, pgx.Identifier{"merkle_hash_runs"}, []string{"first_idx", "hashes"}, src)
	if err != nil {
		b.Fatal(err)
	}
	if want := tlog.StoredHashCount(n); src.hashes != want {
		b.Fatalf("stored %d hashes, want %d", src.hashes, want)
	}
	copied := time.Since(start)
	if _, err := pool.Exec(ctx, `ANALYZE merkle_hash_runs`); err != nil {
		b.Fatal(err)
	}
	root, err := tlog.TreeHash(n, src.front)
	if err != nil {
		b.Fatal(err)
	}
	note, err := Checkpoint{Origin: signer.Name(), Size: n, Root: root}.Sign(signer)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO merkle_checkpoints (tree_size, root_hash, note) VALUES ($1, $2, $3)`, n, root[:], note); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE merkle_head SET tree_size = $1`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `SELECT ledger_ensure_partitions($1, $1, 1)`, time.UnixMicro(ts)); err != nil {
		b.Fatal(err)
	}
	for _, seq := range samples {
		e := proofEntry(seq, ts)
		if _, err := pool.Exec(ctx, `INSERT INTO ledger (seq, event_id, ts, kind, agent_id, root_id, route, model, request_id, gateway,
			input_tokens, output_tokens, cost_micros, reserved_micros, currency, status, latency_us, pricing, src_partition, src_offset)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'req', 'gw', $9, $10, $11, $12, $13, $14, 0, 1, 0, $1)`,
			e.Seq, [16]byte(e.EventID), e.Time(), int16(e.Kind), [16]byte(e.Agent), [16]byte(e.Root), e.Route, e.Model,
			e.InputTokens, e.OutputTokens, e.CostMicros, e.ReservedMicros, string(e.Currency[:]), e.Status); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO ledger_ids (event_id, seq) VALUES ($1, $2)`, [16]byte(e.EventID), e.Seq); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built %d stored hashes of %d entries in %d runs: COPY %v, with ANALYZE %v", src.hashes, n, rows, copied, time.Since(start))
}

// BenchmarkProveLargeLog times Prove (the code path of `caracal merkle
// prove`: ledger_ids lookup, checkpoint, ledger row, tlog.ProveRecord over
// the merkle_hash_runs reader) for random entries of a log of
// CARACAL_PROOF_ENTRIES entries (default 1048576; 10000000 for the issue's
// figure), and checks every proof offline with CheckProof. merkle_hash_runs
// holds all 2n stored hashes; ledger and ledger_ids hold only the 200
// sampled entries (their lookups are index probes either way). Proofs
// cycle over the 200 entries; run with -benchtime=1000x.
func BenchmarkProveLargeLog(b *testing.B) {
	n := int64(envInt("CARACAL_PROOF_ENTRIES", 1<<20))
	pool := testenv.PG(b)
	skey, vkey, err := GenerateKey("caracal-ledger-bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	rng := rand.New(rand.NewPCG(4, uint64(n)))
	samples := []int64{0, n - 1}
	for len(samples) < 200 {
		if s := rng.Int64N(n); !slices.Contains(samples, s) {
			samples = append(samples, s)
		}
	}
	buildLargeLog(b, pool, n, samples, signer)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := samples[i%len(samples)]
		e := proofEntry(seq, 0)
		t0 := time.Now()
		p, err := Prove(ctx, pool, e.EventID)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		data, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := CheckProof(data, verifier); err != nil {
			b.Fatalf("the proof of entry %d does not verify: %v", seq, err)
		}
		if p.TreeSize != n || p.Index != seq {
			b.Fatalf("proof of entry %d in a tree of %d, want %d in %d", p.Index, p.TreeSize, seq, n)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 { return lat[int(q*float64(len(lat)-1))].Seconds() * 1000 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(ms(1), "max-ms")
	b.ReportMetric(float64(len(lat)), "proofs")
}
