package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// Prompt-cache prices are units of their own: set, listed, imported and
// folded into the loaded entry with their presence, so that an entry
// without them falls back to the input price.
func TestCachePriceUnits(t *testing.T) {
	ctx := context.Background()
	db := testenv.PG(t)
	for _, p := range []store.PriceSpec{
		{Resource: "anthropic", Model: "claude-sonnet-4*", Unit: "input_mtok", PriceMicros: 3_000_000},
		{Resource: "anthropic", Model: "claude-sonnet-4*", Unit: "output_mtok", PriceMicros: 15_000_000},
		{Resource: "anthropic", Model: "claude-sonnet-4*", Unit: "cache_write_mtok", PriceMicros: 3_750_000},
		{Resource: "anthropic", Model: "claude-sonnet-4*", Unit: "cache_read_mtok", PriceMicros: 300_000},
		// Only a cache read price: writes fall back to the input price.
		{Resource: "anthropic", Model: "claude-haiku*", Unit: "input_mtok", PriceMicros: 800_000},
		{Resource: "anthropic", Model: "claude-haiku*", Unit: "cache_read_mtok", PriceMicros: 0},
		{Resource: "openai", Model: "gpt-4o", Unit: "input_mtok", PriceMicros: 2_500_000},
	} {
		r, err := store.SetPrice(ctx, db, p)
		if err != nil || r.Unit != p.Unit || r.PriceMicros != p.PriceMicros {
			t.Fatalf("set %+v: %+v %v", p, r, err)
		}
	}
	usd := [3]byte{'U', 'S', 'D'}
	want := []control.Price{
		{Resource: "anthropic", Model: "claude-haiku*", InputPerMTok: 800_000, HasCacheRead: true, Currency: usd},
		{Resource: "anthropic", Model: "claude-sonnet-4*", InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000,
			CacheWritePerMTok: 3_750_000, HasCacheWrite: true, CacheReadPerMTok: 300_000, HasCacheRead: true, Currency: usd},
		{Resource: "openai", Model: "gpt-4o", InputPerMTok: 2_500_000, Currency: usd},
	}
	prices, err := store.LoadPrices(ctx, db)
	if err != nil || len(prices) != len(want) {
		t.Fatalf("prices %+v %v", prices, err)
	}
	for i := range want {
		if prices[i] != want[i] {
			t.Errorf("price %d: %+v, want %+v", i, prices[i], want[i])
		}
	}
	if p := prices[0]; p.CacheWrite() != 800_000 || p.CacheRead() != 0 {
		t.Errorf("haiku: cache write %d (want the input price 800000), cache read %d (want 0)", p.CacheWrite(), p.CacheRead())
	}
	if p := prices[2]; p.CacheWrite() != 2_500_000 || p.CacheRead() != 2_500_000 {
		t.Errorf("gpt-4o: cache prices %d %d, want the input price", p.CacheWrite(), p.CacheRead())
	}
	rows, err := store.ListPrices(ctx, db)
	if err != nil || len(rows) != 7 {
		t.Fatalf("list: %d rows %v", len(rows), err)
	}
	units := map[string]int64{}
	for _, r := range rows {
		if r.Model == "claude-sonnet-4*" {
			units[r.Unit] = r.PriceMicros
		}
	}
	if units["cache_write_mtok"] != 3_750_000 || units["cache_read_mtok"] != 300_000 {
		t.Errorf("listed sonnet units %v", units)
	}

	// The CSV import takes the new units too.
	csv := "resource,model,unit,price,currency\nanthropic,claude-opus-4*,cache_write_mtok,18.75,USD\nanthropic,claude-opus-4*,cache_read_mtok,1.50,USD\n"
	if n, err := store.ImportPrices(ctx, db, strings.NewReader(csv)); err != nil || n != 2 {
		t.Fatalf("import: %d %v", n, err)
	}
	prices, err = store.LoadPrices(ctx, db)
	if err != nil || len(prices) != 4 || prices[1].Model != "claude-opus-4*" || prices[1].CacheWrite() != 18_750_000 || prices[1].CacheRead() != 1_500_000 {
		t.Fatalf("after import: %+v %v", prices, err)
	}
}

func TestInvalidPriceUnitRefused(t *testing.T) {
	ctx := context.Background()
	db := testenv.PG(t)
	for _, unit := range []string{"cache_mtok", "cache_write", "CACHE_READ_MTOK", "", "cache_read_mtok "} {
		_, err := store.SetPrice(ctx, db, store.PriceSpec{Resource: "anthropic", Model: "*", Unit: unit, PriceMicros: 1})
		want := `want input_mtok, output_mtok, cache_write_mtok, cache_read_mtok or request`
		if err == nil || !strings.Contains(err.Error(), "invalid unit") || !strings.Contains(err.Error(), want) {
			t.Errorf("unit %q: %v, want an invalid unit error naming the units", unit, err)
		}
	}
	// The schema refuses an unknown unit by itself too (migration 0005's CHECK).
	if _, err := db.Exec(ctx, `INSERT INTO pricebook (resource, model, unit, price_micros) VALUES ('a', '*', 'cache_mtok', 1)`); err == nil {
		t.Fatal("the pricebook table accepted an unknown unit")
	}
	if _, err := db.Exec(ctx, `INSERT INTO pricebook (resource, model, unit, price_micros) VALUES ('a', '*', 'cache_read_mtok', 1)`); err != nil {
		t.Fatalf("the pricebook table refused cache_read_mtok: %v", err)
	}
	if _, err := store.SetPrice(ctx, db, store.PriceSpec{Resource: "a", Model: "*", Unit: "cache_write_mtok", PriceMicros: -1}); err == nil {
		t.Fatal("a negative cache price was accepted")
	}
}

// Migration 0005 down deletes the cache prices the old schema cannot hold
// and restores its CHECK; up again accepts them.
func TestCachePriceMigrationDownUp(t *testing.T) {
	ctx := context.Background()
	db := testenv.PG(t)
	for _, u := range []string{"input_mtok", "cache_write_mtok", "cache_read_mtok"} {
		if _, err := store.SetPrice(ctx, db, store.PriceSpec{Resource: "anthropic", Model: "*", Unit: u, PriceMicros: 5}); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	latest := ms[len(ms)-1].Version
	steps := 0
	for i := len(ms) - 1; i >= 0 && ms[i].Version >= 5; i-- {
		steps++
	}
	if steps == 0 {
		t.Fatal("no migration 0005")
	}
	if _, err := store.MigrateDown(ctx, db, steps); err != nil {
		t.Fatalf("down to 0004: %v", err)
	}
	rows, err := store.ListPrices(ctx, db)
	if err != nil || len(rows) != 1 || rows[0].Unit != "input_mtok" {
		t.Fatalf("after down: %+v %v", rows, err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO pricebook (resource, model, unit, price_micros) VALUES ('a', '*', 'cache_read_mtok', 1)`); err == nil {
		t.Fatal("the 0004 schema accepted cache_read_mtok")
	}
	done, err := store.MigrateUp(ctx, db)
	if err != nil || len(done) != steps || done[len(done)-1] != latest {
		t.Fatalf("up again: %v %v", done, err)
	}
	if _, err := store.SetPrice(ctx, db, store.PriceSpec{Resource: "anthropic", Model: "*", Unit: "cache_read_mtok", PriceMicros: 1}); err != nil {
		t.Fatalf("after up: %v", err)
	}
}
