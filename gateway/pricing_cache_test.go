package gateway

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/caracal-gw/caracal/gateway/usage"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/loadtest/mockupstream"
)

// TestGatewayPricesAnthropicCacheTokens: an Anthropic upstream that reports
// prompt-cache writes and reads is charged at the pricebook's cache prices
// (JSON and SSE), and a model without cache prices charges them at its input
// price; the metering event carries the counts and the hand-computed cost.
func TestGatewayPricesAnthropicCacheTokens(t *testing.T) {
	s := newStack(t, 5_000_000)
	ctx := context.Background()
	const cacheWrite, cacheRead, outTok = 1000, 20_000, 16
	mock := mockupstream.New(mockupstream.Options{OutputTokens: outTok, Chunks: 2, CacheWriteTokens: cacheWrite, CacheReadTokens: cacheRead})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go mock.Serve(ln) //nolint:errcheck // ends at Close
	t.Cleanup(func() { mock.Close() })
	for _, p := range []store.PriceSpec{
		// claude-sonnet-4's list prices.
		{Resource: "anthropic", Model: "claude-sonnet-test", Unit: "input_mtok", PriceMicros: 3_000_000},
		{Resource: "anthropic", Model: "claude-sonnet-test", Unit: "cache_write_mtok", PriceMicros: 3_750_000},
		{Resource: "anthropic", Model: "claude-sonnet-test", Unit: "cache_read_mtok", PriceMicros: 300_000},
		{Resource: "anthropic", Model: "claude-sonnet-test", Unit: "output_mtok", PriceMicros: 15_000_000},
		// No cache prices: cache tokens at the input price.
		{Resource: "anthropic", Model: "claude-plain-test", Unit: "input_mtok", PriceMicros: 800_000},
		{Resource: "anthropic", Model: "claude-plain-test", Unit: "output_mtok", PriceMicros: 4_000_000},
	} {
		p.Currency = "USD"
		must(t, func() error { _, err := store.SetPrice(ctx, s.pool, p); return err })
	}
	must(t, func() error {
		_, err := store.SetRoute(ctx, s.pool, store.RouteSpec{Name: "anthropic", Prefix: "/anthropic",
			UpstreamURLs: []string{"http://" + ln.Addr().String() + "/v1"}, CredentialRef: "env:CARACAL_TEST_UPSTREAM_KEY",
			Provider: "anthropic", Pricing: "tokens", StripPrefix: true})
		return err
	})
	s.waitTables(t, "anthropic")

	// 118 bytes: 30 plain input tokens by the mock's rule (bytes / 4,
	// rounded up); with "stream":true, 132 bytes: 33; the plain model's
	// body, 117 bytes: 30.
	sonnet := `{"model":"claude-sonnet-test","max_tokens":100,"messages":[{"role":"user","content":"What is in the cached prompt?"}]}`
	sonnetStream := strings.TrimSuffix(sonnet, "}") + `,"stream":true}`
	plain := strings.Replace(sonnet, "claude-sonnet-test", "claude-plain-test", 1)
	for _, tc := range []struct {
		body  string
		plain int64
	}{{sonnet, 30}, {sonnetStream, 33}, {plain, 30}} {
		if got := usage.EstimateInputTokens(len(tc.body)); got != tc.plain {
			t.Fatalf("%s: %d plain input tokens, the figures below assume %d", tc.body, got, tc.plain)
		}
	}
	// Hand-computed costs in micro-units, by model and input tokens:
	//   sonnet JSON: 30×3 + 1000×3.75 + 20000×0.30 = 90 + 3750 + 6000 = 9840; 16×15 = 240 -> 10080
	//   sonnet SSE:  33×3 + 3750 + 6000 = 9849; + 240 -> 10089
	//   plain JSON:  (30 + 1000 + 20000)×0.8 = 16824; 16×4 = 64 -> 16888
	type key struct {
		model string
		in    int64
	}
	want := map[key]int64{
		{"claude-sonnet-test", 30 + cacheWrite + cacheRead}: 10_080,
		{"claude-sonnet-test", 33 + cacheWrite + cacheRead}: 10_089,
		{"claude-plain-test", 30 + cacheWrite + cacheRead}:  16_888,
	}
	for _, body := range []string{sonnet, sonnetStream, plain} {
		resp, b := s.post(t, "/anthropic/messages", s.key, body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"cache_read_input_tokens":20000`) {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	if h := mock.LastHeaders(); h.Get("X-Api-Key") != upstreamSecret {
		t.Fatalf("upstream credential not injected as x-api-key: %v", h)
	}
	evs := s.events(t, s.topic, 3)
	if len(evs) != 3 {
		t.Fatalf("%d metering events, want 3", len(evs))
	}
	seen := map[key]bool{}
	for _, raw := range evs {
		var e event.Metering
		if err := event.DecodeMetering(raw, &e); err != nil {
			t.Fatal(err)
		}
		k := key{string(e.Model), e.InputTokens}
		cost, ok := want[k]
		if !ok || seen[k] {
			t.Fatalf("unexpected event %s", raw)
		}
		seen[k] = true
		if e.Pricing != event.PricingTokens || e.Status != 200 || e.OutputTokens != outTok ||
			e.CacheWriteTokens != cacheWrite || e.CacheReadTokens != cacheRead {
			t.Errorf("%v: event %s", k, raw)
		}
		if e.CostMicros != cost {
			t.Errorf("%v: cost %d micro-units, want %d", k, e.CostMicros, cost)
		}
		if !strings.Contains(string(raw), `"cache_write_tokens":1000,"cache_read_tokens":20000`) {
			t.Errorf("%v: cache counts not on the wire: %s", k, raw)
		}
	}
	st := mock.Stats().Messages
	if st.OK != 3 || st.Streams != 1 || st.CacheWriteTokens != 3*cacheWrite || st.CacheReadTokens != 3*cacheRead {
		t.Fatalf("mock served %+v", st)
	}
}
