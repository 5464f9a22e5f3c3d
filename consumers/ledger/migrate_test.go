package ledger

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// writeEntries stores n more ledger rows the way the LedgerWriter does.
func writeEntries(t *testing.T, pool *pgxpool.Pool, w *Writer, from, n int) {
	t.Helper()
	for done := 0; done < n; done += benchBatch {
		w.rows = benchRows(min(benchBatch, n-done))
		if err := w.HandleBatch(context.Background(), &runner.Batch{Next: runner.Offsets{"t": {0: int64(from + done + benchBatch)}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// allStoredHashes reads stored hashes 0 .. count-1 and fails on a gap.
func allStoredHashes(t *testing.T, pool *pgxpool.Pool, count int64) memReader {
	t.Helper()
	got, err := readHashRange(context.Background(), pool, 0, count+10)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != count {
		t.Fatalf("%d stored hashes, want %d", len(got), count)
	}
	return got
}

// TestMigrationMovesStoredHashes seals a log of more than one 65536-hash
// chunk, undoes migration 0006 (runs back to one merkle_hashes row per
// hash) and applies it again: every hash must come back at its index, the
// log must verify and sealing must go on. A gap in merkle_hashes makes the
// migration fail and leaves the schema as it was.
func TestMigrationMovesStoredHashes(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PG(t)
	skey, vkey, _ := GenerateKey("caracal-ledger-test")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	w := NewWriter(pool, "migrate")
	const n = 70000
	writeEntries(t, pool, w, 0, n)
	s := NewSealer(pool, SealerOptions{Signer: signer, BatchSize: 40000})
	if err := s.SealAll(ctx); err != nil {
		t.Fatal(err)
	}
	count := tlog.StoredHashCount(n)
	want := allStoredHashes(t, pool, count)
	verifyOK := func(size int64) {
		t.Helper()
		rep, err := Verify(ctx, pool, verifier, 0, -1, nil)
		if err != nil || rep.Problem != nil || rep.To != size {
			t.Fatalf("verify: %+v %v, want %d entries without a problem", rep, err, size)
		}
	}
	verifyOK(n)
	q := func(sql string) int64 {
		t.Helper()
		var x int64
		if err := pool.QueryRow(ctx, sql).Scan(&x); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return x
	}

	if _, err := store.MigrateDown(ctx, pool, 1); err != nil {
		t.Fatal(err)
	}
	if got := q(`SELECT count(*) FROM merkle_hashes`); got != count {
		t.Fatalf("down: merkle_hashes holds %d rows, want %d", got, count)
	}
	rows, err := pool.Query(ctx, `SELECT idx, hash FROM merkle_hashes`)
	if err != nil {
		t.Fatal(err)
	}
	var idx int64
	var h []byte
	bad := 0
	for rows.Next() {
		if err := rows.Scan(&idx, &h); err != nil {
			t.Fatal(err)
		}
		if x, ok := want[idx]; !ok || len(h) != tlog.HashSize || tlog.Hash(h) != x {
			bad++
		}
	}
	if rows.Err() != nil || bad != 0 {
		t.Fatalf("down: %d of %d hashes differ (%v)", bad, count, rows.Err())
	}

	// A gap: the up migration refuses and changes nothing.
	if _, err := pool.Exec(ctx, `DELETE FROM merkle_hashes WHERE idx = 1000`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.MigrateUp(ctx, pool); err == nil || !strings.Contains(err.Error(), "without a gap") {
		t.Fatalf("up over a gap: %v, want a refusal", err)
	}
	if got := q(`SELECT count(*) FROM merkle_hashes`); got != count-1 {
		t.Fatalf("after the refused up: merkle_hashes holds %d rows, want %d", got, count-1)
	}
	h1000 := want[1000]
	if _, err := pool.Exec(ctx, `INSERT INTO merkle_hashes VALUES (1000, $1)`, h1000[:]); err != nil {
		t.Fatal(err)
	}

	if _, err := store.MigrateUp(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if got, wantRuns := q(`SELECT count(*) FROM merkle_hash_runs`), (count+65535)/65536; got != wantRuns {
		t.Fatalf("up: %d runs, want %d", got, wantRuns)
	}
	got := allStoredHashes(t, pool, count)
	for i := int64(0); i < count; i++ {
		if got[i] != want[i] {
			t.Fatalf("up: stored hash %d changed", i)
		}
	}
	verifyOK(n)

	// Sealing goes on from the moved hashes (a new sealer reads its frontier).
	writeEntries(t, pool, w, n, 100)
	if err := NewSealer(pool, SealerOptions{Signer: signer}).SealAll(ctx); err != nil {
		t.Fatal(err)
	}
	verifyOK(n + 100)
}
