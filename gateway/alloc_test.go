package gateway

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/internal/store"
)

// TestSteadyStateRequestAllocatesNothing sends requests through auth →
// policy → lease → forward → meter (produce to the real broker) and fails if
// a steady-state request allocates. The count covers the whole process: the
// client, the gateway, the upstream and the producer.
func TestSteadyStateRequestAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	s := allocStack(t)
	assertRequestAllocatesNothing(t, s, "Bearer "+s.key)
}

// allocStack is a stack whose "openai" route goes to a minimal upstream
// that answers with usage and allocates nothing.
func allocStack(t *testing.T) *stack {
	t.Helper()
	// The count covers the request path, not the Kafka client's background
	// batching: franz-go allocates per produce request (about a hundred
	// objects per batch, see BENCHMARKS.md), so batches are made large
	// enough here that none is sent while allocations are counted. The lease
	// covers the whole run, so no refill (a Redis round trip) happens either.
	testLeaseSize, testLingerMs, testBatchSize = 1_000_000, 50, 4<<20
	defer func() { testLeaseSize, testLingerMs, testBatchSize = 20_000, 10, 32768 }()
	s := newStack(t, 1_000_000_000)
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { up.Shutdown() })
	applied := s.rg.listenerApplied()
	if _, err := store.SetRoute(context.Background(), s.db, store.RouteSpec{Name: "openai", Prefix: "/openai",
		UpstreamURLs: []string{"http://" + ln.Addr().String() + "/v1"}, CredentialRef: "env:CARACAL_TEST_UPSTREAM_KEY",
		Provider: "openai", Pricing: "tokens", StripPrefix: true}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.rg.listenerApplied() == applied && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// assertRequestAllocatesNothing sends chat requests with the Authorization
// header authorization and fails if a steady-state one allocates.
func assertRequestAllocatesNothing(t *testing.T, s *stack, authorization string) {
	t.Helper()
	c := &fasthttp.HostClient{Addr: s.rg.Addr, MaxConns: 1}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + s.rg.Addr + "/openai/chat/completions")
	req.Header.SetMethod("POST")
	req.Header.Set("Authorization", authorization)
	req.Header.SetContentType("application/json")
	req.SetBodyString(chatBody)
	do := func() {
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("request: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
	}
	for i := 0; i < 2000; i++ { // warm pools, caches, the lease and the producer
		do()
	}
	// A real allocation on the request path shows in every measurement; the
	// Kafka client's per-batch work lands in some. The smallest of three
	// measurements is the request path's own count.
	best := -1.0
	for i := 0; i < 3; i++ {
		n := testing.AllocsPerRun(1000, do)
		t.Logf("measurement %d: %.2f allocations per request (whole process)", i+1, n)
		if best < 0 || n < best {
			best = n
		}
	}
	if best != 0 {
		t.Fatalf("a steady-state request allocates %.2f times", best)
	}
}
