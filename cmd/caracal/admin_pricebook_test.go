package main

import (
	"strings"
	"testing"

	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// `caracal pricebook set` takes the prompt-cache units, `list` shows them,
// and an unknown unit is refused with the list of units.
func TestAdminPricebookCacheUnits(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	for _, tc := range []struct {
		unit, price string
		micros      int64
	}{
		{"input_mtok", "3", 3_000_000},
		{"cache_write_mtok", "3.75", 3_750_000},
		{"cache_read_mtok", "0.30", 300_000},
		{"output_mtok", "15", 15_000_000},
	} {
		var pr store.PriceRow
		cliJSON(t, url, &pr, "pricebook", "set", "--resource", "anthropic", "--model", "claude-sonnet-4*", "--unit", tc.unit, "--price", tc.price)
		if pr.Unit != tc.unit || pr.PriceMicros != tc.micros || pr.Currency != "USD" {
			t.Fatalf("set %s: %+v", tc.unit, pr)
		}
	}
	var prices []store.PriceRow
	cliJSON(t, url, &prices, "pricebook", "list")
	got := map[string]int64{}
	for _, p := range prices {
		got[p.Unit] = p.PriceMicros
	}
	if len(prices) != 4 || got["cache_write_mtok"] != 3_750_000 || got["cache_read_mtok"] != 300_000 {
		t.Fatalf("list: %+v", prices)
	}
	table := mustCLI(t, url, "pricebook", "list")
	for _, want := range []string{"cache_write_mtok", "cache_read_mtok", "3.75", "0.3"} {
		if !strings.Contains(table, want) {
			t.Errorf("pricebook table lacks %q:\n%s", want, table)
		}
	}
	_, _, err := cli(t, url, "pricebook", "set", "--resource", "anthropic", "--unit", "cache_mtok", "--price", "1")
	if err == nil || !strings.Contains(err.Error(), `invalid unit "cache_mtok"`) || !strings.Contains(err.Error(), "cache_write_mtok, cache_read_mtok") {
		t.Fatalf("unknown unit: %v", err)
	}
	cliJSON(t, url, &prices, "pricebook", "list")
	if len(prices) != 4 {
		t.Fatalf("a refused unit left a row: %+v", prices)
	}
}
