package gateway

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/caracal-gw/caracal/internal/store"
)

// TestHighErrorRateProcedure follows docs/runbook.md "HighErrorRate": an
// upstream that refuses connections makes the gateway answer 502
// upstream_error; the alert's series caracal_requests_total{status="error"}
// and the runbook's first diagnostic, caracal_decisions_total by reason on
// the admin port's /metrics, both show it.
func TestHighErrorRateProcedure(t *testing.T) {
	s := newStack(t, 5_000_000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there any more: connections are refused
	applied := s.rg.listenerApplied()
	if _, err := store.SetRoute(context.Background(), s.pool, store.RouteSpec{Name: "down", Prefix: "/down", UpstreamURLs: []string{"http://" + dead + "/v1"},
		CredentialRef: "env:CARACAL_TEST_UPSTREAM_KEY", Provider: "openai", Pricing: "tokens", StripPrefix: true}); err != nil {
		t.Fatal(err)
	}
	s.waitNotified(t, applied, "the route notification")
	errorsBefore := s.metric(t, `caracal_requests_total{status="error"}`)
	upstreamBefore := s.metric(t, `caracal_decisions_total{reason="upstream_error"}`)
	const n = 5
	for i := 0; i < n; i++ {
		resp, body := s.post(t, "/down/chat/completions", s.key, chatBody)
		if resp.StatusCode != 502 || !strings.Contains(string(body), `"upstream_error"`) {
			t.Fatalf("request %d to a dead upstream: %d %s, want 502 upstream_error", i, resp.StatusCode, body)
		}
	}
	if d := s.metric(t, `caracal_requests_total{status="error"}`) - errorsBefore; d != n {
		t.Errorf(`caracal_requests_total{status="error"} rose by %d, want %d`, d, n)
	}
	if d := s.metric(t, `caracal_decisions_total{reason="upstream_error"}`) - upstreamBefore; d != n {
		t.Errorf(`caracal_decisions_total{reason="upstream_error"} rose by %d, want %d`, d, n)
	}
	// The good route still serves: nothing to repair in Caracal.
	if resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody); resp.StatusCode != 200 {
		t.Fatalf("the healthy route: %d %s", resp.StatusCode, body)
	}
}
