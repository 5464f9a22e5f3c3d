package usage

import (
	"math"
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
)

func TestEstimate(t *testing.T) {
	price := control.Price{InputPerMTok: 2_500_000, OutputPerMTok: 10_000_000, PerRequest: 7}
	for _, tc := range []struct {
		name string
		req  Request
		p    control.Price
		def  int64
		want int64
	}{
		// 1000 in × 2.5/M = 2500; 100 out × 10/M = 1000; + 7.
		{"max tokens", Request{InputTokens: 1000, MaxTokens: 100}, price, 4096, 3507},
		{"default max", Request{InputTokens: 1000, MaxTokens: -1}, price, 100, 3507},
		{"zero max", Request{InputTokens: 1000, MaxTokens: 0}, price, 100, 2507},
		{"rounds up each part", Request{InputTokens: 1, MaxTokens: 1}, price, 0, 3 + 10 + 7},
		{"per request", Request{InputTokens: 1000, MaxTokens: 100}, PerRequestPrice(&control.Route{PricePerRequest: 5000}), 100, 5000},
		{"saturates", Request{InputTokens: math.MaxInt64, MaxTokens: math.MaxInt64}, price, 0, math.MaxInt64},
		{"saturates sum", Request{InputTokens: 1, MaxTokens: -1}, control.Price{InputPerMTok: 1, PerRequest: math.MaxInt64}, 0, math.MaxInt64},
		{"negative price ignored", Request{InputTokens: 10, MaxTokens: 10}, control.Price{InputPerMTok: -1, OutputPerMTok: -1, PerRequest: -1}, 0, 0},
		// The input may all be written to the prompt cache: 1000 × 3.75/M
		// = 3750; 100 out × 15/M = 1500.
		{"cache write dearest", Request{InputTokens: 1000, MaxTokens: 100}, anthropicPrice, 0, 5250},
		// Cache reads are cheaper: the input price stays the dearest.
		{"cache read only", Request{InputTokens: 1000, MaxTokens: 100},
			control.Price{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000, CacheReadPerMTok: 300_000, HasCacheRead: true}, 0, 4500},
		{"cache prices unset", Request{InputTokens: 1000, MaxTokens: 100}, control.Price{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000}, 0, 4500},
		{"cache read dearest", Request{InputTokens: 1000, MaxTokens: 0},
			control.Price{InputPerMTok: 1_000_000, CacheReadPerMTok: 2_000_000, HasCacheRead: true}, 0, 2000},
	} {
		if got := Estimate(tc.req, tc.p, tc.def); got != tc.want {
			t.Errorf("%s: Estimate = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMaxAffordableOutput(t *testing.T) {
	price := control.Price{InputPerMTok: 2_500_000, OutputPerMTok: 10_000_000, PerRequest: 7}
	for _, tc := range []struct {
		name      string
		remaining int64
		inTok     int64
		p         control.Price
		want      int64
	}{
		{"exact", 3507, 1000, price, 100},
		{"one short", 3506, 1000, price, 99},
		{"input only", 2507, 1000, price, 0},
		{"cannot pay input", 2000, 1000, price, 0},
		{"negative remaining", -5, 0, price, 0},
		{"free output", 3000, 1000, control.Price{InputPerMTok: 1}, math.MaxInt64},
		{"huge", math.MaxInt64, 0, control.Price{OutputPerMTok: 1}, math.MaxInt64},
		// 1000 input tokens reserved at the cache write price (3750), 5250
		// left for 350 output tokens at 15/M.
		{"cache write price", 9000, 1000, anthropicPrice, 350},
		{"cache write price one short", 8999, 1000, anthropicPrice, 349},
	} {
		got := MaxAffordableOutput(tc.remaining, tc.inTok, tc.p)
		if got != tc.want {
			t.Errorf("%s: MaxAffordableOutput = %d, want %d", tc.name, got, tc.want)
		}
		// The invariant the proxy relies on: clamping to the result keeps
		// the estimate within the remaining budget.
		if got > 0 && got < math.MaxInt64 {
			if e := Estimate(Request{InputTokens: tc.inTok, MaxTokens: got}, tc.p, 0); e > tc.remaining {
				t.Errorf("%s: estimate %d at max %d exceeds %d", tc.name, e, got, tc.remaining)
			}
			if e := Estimate(Request{InputTokens: tc.inTok, MaxTokens: got + 1}, tc.p, 0); e <= tc.remaining {
				t.Errorf("%s: max %d is not the largest affordable", tc.name, got)
			}
		}
	}
}

func TestCost(t *testing.T) {
	price := control.Price{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000, PerRequest: 100}
	for _, tc := range []struct {
		u    Usage
		p    control.Price
		want int64
	}{
		{Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}, price, 18_000_100},
		{Usage{InputTokens: 1, OutputTokens: 1}, price, 3 + 15 + 100},
		{Usage{}, price, 100},
		{Usage{InputTokens: -5, OutputTokens: -5}, price, 100},
		{Usage{InputTokens: math.MaxInt64}, price, math.MaxInt64},
		{Usage{InputTokens: 333_333, OutputTokens: 0}, control.Price{InputPerMTok: 3}, 1},
		{Usage{InputTokens: 333_334}, control.Price{InputPerMTok: 3}, 2},
	} {
		if got := Cost(tc.u, tc.p); got != tc.want {
			t.Errorf("Cost(%+v) = %d, want %d", tc.u, got, tc.want)
		}
	}
}

// anthropicPrice is claude-sonnet-4's list price: 3/M input, 3.75/M cache
// writes (5-minute cache), 0.30/M cache reads, 15/M output.
var anthropicPrice = control.Price{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000,
	CacheWritePerMTok: 3_750_000, HasCacheWrite: true, CacheReadPerMTok: 300_000, HasCacheRead: true}

func TestCostCacheTokens(t *testing.T) {
	// 7 plain input tokens, 1000 cache writes, 20000 cache reads, 3 output.
	u := Usage{InputTokens: 21_007, OutputTokens: 3, CacheWriteTokens: 1000, CacheReadTokens: 20_000}
	readOnly := anthropicPrice
	readOnly.HasCacheWrite, readOnly.CacheWritePerMTok = false, 0
	writeOnly := anthropicPrice
	writeOnly.HasCacheRead, writeOnly.CacheReadPerMTok = false, 0
	freeReads := control.Price{InputPerMTok: 1_000_000, CacheReadPerMTok: 0, HasCacheRead: true}
	for _, tc := range []struct {
		name string
		u    Usage
		p    control.Price
		want int64
	}{
		// 7×3 + 1000×3.75 + 20000×0.30 = 21 + 3750 + 6000 = 9771; 3×15 = 45.
		{"both cache prices", u, anthropicPrice, 9816},
		// Unset: every input token at 3/M, as before: 21007×3 = 63021; + 45.
		{"no cache prices", u, control.Price{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000}, 63_066},
		// Writes fall back to the input price: 21 + 3000 + 6000 + 45.
		{"cache read price only", u, readOnly, 9066},
		// Reads fall back to the input price: 21 + 3750 + 60000 + 45.
		{"cache write price only", u, writeOnly, 63_816},
		{"per request added", u, control.Price{InputPerMTok: 3_000_000, PerRequest: 100}, 63_121},
		{"no cache tokens", Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}, anthropicPrice, 18_000_000},
		// 1 cache read token costs 0.3 micro-units: rounded up, never to zero.
		{"one cache read rounds up", Usage{InputTokens: 1, CacheReadTokens: 1}, anthropicPrice, 1},
		// The input side is rounded once: 1×3 + 1×0.3 = 3.3 -> 4, not 3 + 1.
		{"input side rounded once", Usage{InputTokens: 2, CacheReadTokens: 1}, anthropicPrice, 4},
		// Unset cache prices keep the old figure exactly: ceil(333334×3/1e6)
		// = 2, where rounding each part apart would give 3.
		{"fallback keeps the old rounding", Usage{InputTokens: 333_334, CacheWriteTokens: 111_111, CacheReadTokens: 111_111},
			control.Price{InputPerMTok: 3}, 2},
		{"cache reads priced zero", Usage{InputTokens: 10, CacheReadTokens: 10}, freeReads, 0},
		{"cache reads priced zero, plain charged", Usage{InputTokens: 11, CacheReadTokens: 10}, freeReads, 1},
		// Parts above the total (never parsed so): the parts are charged whole.
		{"parts above total", Usage{InputTokens: 5, CacheWriteTokens: 10}, control.Price{InputPerMTok: 1_000_000, CacheWritePerMTok: 2_000_000, HasCacheWrite: true}, 20},
		{"negative parts ignored", Usage{InputTokens: 5, CacheWriteTokens: -10, CacheReadTokens: -1}, control.Price{InputPerMTok: 1_000_000}, 5},
		// A saturated total hides its split: all of it at the input price.
		{"saturated total", Usage{InputTokens: math.MaxInt64, CacheReadTokens: 5},
			control.Price{InputPerMTok: 1, HasCacheRead: true}, 9_223_372_036_855},
		{"saturates", Usage{InputTokens: math.MaxInt64, CacheWriteTokens: math.MaxInt64 - 1},
			control.Price{CacheWritePerMTok: math.MaxInt64, HasCacheWrite: true}, math.MaxInt64},
		{"three large parts do not wrap", Usage{InputTokens: math.MaxInt64 - 1, CacheWriteTokens: math.MaxInt64 / 2, CacheReadTokens: math.MaxInt64 / 2},
			control.Price{InputPerMTok: math.MaxInt64, CacheWritePerMTok: math.MaxInt64, HasCacheWrite: true, CacheReadPerMTok: math.MaxInt64, HasCacheRead: true}, math.MaxInt64},
	} {
		if got := Cost(tc.u, tc.p); got != tc.want {
			t.Errorf("%s: Cost(%+v) = %d, want %d", tc.name, tc.u, got, tc.want)
		}
	}
}

func TestPriceCacheFallback(t *testing.T) {
	p := control.Price{InputPerMTok: 7}
	if p.CacheWrite() != 7 || p.CacheRead() != 7 {
		t.Fatalf("unset cache prices: %d %d, want the input price 7", p.CacheWrite(), p.CacheRead())
	}
	p.CacheWritePerMTok, p.CacheReadPerMTok = 9, 1 // not flagged as set: still the input price
	if p.CacheWrite() != 7 || p.CacheRead() != 7 {
		t.Fatalf("unflagged cache prices used: %d %d", p.CacheWrite(), p.CacheRead())
	}
	p.HasCacheWrite, p.HasCacheRead = true, true
	if p.CacheWrite() != 9 || p.CacheRead() != 1 {
		t.Fatalf("set cache prices: %d %d, want 9 1", p.CacheWrite(), p.CacheRead())
	}
}

func TestHeaderCost(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"3", 3_000_000, true}, {"0.0125", 12_500, true}, {" 1.5\t", 1_500_000, true},
		{"0.000001", 1, true}, {"0.0000001", 1, true}, {"0.0000010", 1, true}, {"12.000000", 12_000_000, true},
		{"9223372036854.775806", 9223372036854775806, true},
		{"9223372036854.775807", 0, false}, {"99999999999999999999", 0, false},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1e3", 0, false}, {"1.", 0, false},
		{".5", 0, false}, {"1,5", 0, false}, {"NaN", 0, false}, {"0x10", 0, false},
	} {
		got, ok := HeaderCost([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("HeaderCost(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPricebook(t *testing.T) {
	pb, err := NewPricebook([]control.Price{
		{Resource: "openai", Model: "gpt-4o", InputPerMTok: 1},
		{Resource: "openai", Model: "gpt-4o*", InputPerMTok: 2},
		{Resource: "openai", Model: "gpt-4o-mini*", InputPerMTok: 3},
		{Resource: "openai", Model: "*", InputPerMTok: 4},
		{Resource: "search", Model: "*", PerRequest: 5},
		{Resource: "anthropic", Model: "claude-sonnet-4*", InputPerMTok: 6},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		resource, model string
		want            int64
		ok              bool
	}{
		{"openai", "gpt-4o", 1, true},
		{"openai", "gpt-4o-2024-08-06", 2, true},
		{"openai", "gpt-4o-mini-2024-07-18", 3, true},
		{"openai", "gpt-4o-mini", 3, true},
		{"openai", "o3", 4, true},
		{"openai", "", 4, true},
		{"search", "anything", 5, true},
		{"anthropic", "claude-sonnet-4-20250514", 6, true},
		{"anthropic", "claude-opus-4", 0, false},
		{"nope", "gpt-4o", 0, false},
	} {
		p, ok := pb.Lookup([]byte(tc.resource), []byte(tc.model))
		if ok != tc.ok || p.InputPerMTok+p.PerRequest != tc.want {
			t.Errorf("Lookup(%s, %s) = %+v, %v; want %d, %v", tc.resource, tc.model, p, ok, tc.want, tc.ok)
		}
	}
	if pb.Len() != 6 {
		t.Errorf("Len = %d", pb.Len())
	}
	for _, bad := range [][]control.Price{
		{{Resource: "a", Model: "m"}, {Resource: "a", Model: "m"}},
		{{Resource: "a", Model: "m*"}, {Resource: "a", Model: "m*"}},
		{{Resource: "a", Model: "m", OutputPerMTok: -1}},
		{{Resource: "a", Model: "m", CacheWritePerMTok: -1, HasCacheWrite: true}},
		{{Resource: "a", Model: "m", CacheReadPerMTok: -1, HasCacheRead: true}},
	} {
		if _, err := NewPricebook(bad); err == nil {
			t.Errorf("NewPricebook(%+v): no error", bad)
		}
	}
}
