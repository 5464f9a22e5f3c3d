package ledger

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// The writer's own binary COPY encoding stores exactly what pgx.CopyFrom
// stores for the same rows: every column of every row compared, with
// extreme and non-ASCII values.
func TestBinaryCopyMatchesPgx(t *testing.T) {
	pool := testenv.PG(t)
	ctx := context.Background()
	g := event.NewIDGen()
	base := time.Now().UTC().Truncate(time.Microsecond)
	var rows []stageRow
	for i := 0; i < 40; i++ {
		r := stageRow{ord: int32(i), id: g.New(base), ts: base.Add(-time.Duration(i) * 1234567 * time.Microsecond),
			kind: int16(i % 3), pricing: int16(i % 2), agent: [16]byte{byte(i), 0xff}, root: [16]byte{0xfe, byte(i)},
			route: "openai", model: "gpt-4o-mini", reqID: "req-ünïcødé-✓-" + string(rune('a'+i)), gateway: "",
			in: int64(i), out: math.MaxInt64 - int64(i), cost: int64(i) * 1_000_003, reserved: math.MinInt64 + int64(i),
			currency: "EUR", status: int32(-i), latency: 1 << 40, partition: int32(i % 7), offset: int64(i) << 33}
		if i%2 == 0 {
			r.currency, r.route, r.model = "USD", "", "模型"
		}
		rows = append(rows, r)
	}
	w := NewWriter(pool, "g")
	w.rows = append([]stageRow(nil), rows...)
	if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: 40}}}); err != nil {
		t.Fatal(err)
	}
	// The reference: pgx.CopyFrom of the same rows and seqs.
	for _, q := range []string{
		`CREATE TABLE ref_ledger (LIKE ledger INCLUDING DEFAULTS)`,
		`CREATE TABLE ref_ids (LIKE ledger_ids)`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ref := &Writer{rows: rows}
	for i := range rows {
		ref.fresh = append(ref.fresh, int32(i))
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"ref_ledger"}, ledgerColumns, &freshSource{w: ref, i: -1, full: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"ref_ids"}, []string{"event_id", "seq"}, &freshSource{w: ref, i: -1}); err != nil {
		t.Fatal(err)
	}
	cols := ""
	for i, c := range ledgerColumns {
		if i > 0 {
			cols += ", "
		}
		cols += c
	}
	for _, c := range []struct{ name, sql string }{
		{"ledger rows", `SELECT count(*) FROM ledger`},
		{"ledger rows not in the reference", `SELECT count(*) FROM (SELECT ` + cols + ` FROM ledger EXCEPT SELECT ` + cols + ` FROM ref_ledger) x`},
		{"reference rows not in the ledger", `SELECT count(*) FROM (SELECT ` + cols + ` FROM ref_ledger EXCEPT SELECT ` + cols + ` FROM ledger) x`},
		{"ids not in the reference", `SELECT count(*) FROM (SELECT * FROM ledger_ids EXCEPT SELECT * FROM ref_ids) x`},
		{"reference ids not stored", `SELECT count(*) FROM (SELECT * FROM ref_ids EXCEPT SELECT * FROM ledger_ids) x`},
	} {
		var n int64
		if err := pool.QueryRow(ctx, c.sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := int64(0)
		if c.name == "ledger rows" {
			want = 40
		}
		if n != want {
			t.Errorf("%s: %d, want %d", c.name, n, want)
		}
	}
	// And the values read back are the Go values.
	var got stageRow
	if err := pool.QueryRow(ctx, `SELECT ts, request_id, output_tokens, reserved_micros, currency, model FROM ledger WHERE seq = 3`).
		Scan(&got.ts, &got.reqID, &got.out, &got.reserved, &got.currency, &got.model); err != nil {
		t.Fatal(err)
	}
	r := rows[3]
	if !got.ts.Equal(r.ts) || got.reqID != r.reqID || got.out != r.out || got.reserved != r.reserved || got.currency != r.currency || got.model != r.model {
		t.Fatalf("entry 3 reads back as %+v, want %+v", got, r)
	}
}
