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
	} {
		if _, err := NewPricebook(bad); err == nil {
			t.Errorf("NewPricebook(%+v): no error", bad)
		}
	}
}
