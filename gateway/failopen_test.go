package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/store"
)

// TestFailOpenRouteForwardsWhenSpoolFull: while Kafka refuses records and
// the spool is full, a route created with --fail-open keeps forwarding,
// each such request counted in caracal_metering_fail_open_total, while an
// ordinary route answers 503 metering_unavailable (fail closed). Only
// fail-open requests may lose their events, and each loss is counted.
func TestFailOpenRouteForwardsWhenSpoolFull(t *testing.T) {
	testConfigure = func(c *config.Config) { c.Gateway.SpoolMaxBytes = 16 << 10 }
	s := newStack(t, 5_000_000)
	testConfigure = nil
	ctx := context.Background()
	applied := s.rg.listenerApplied()
	if _, err := store.SetRoute(ctx, s.pool, store.RouteSpec{Name: "openai-open", Prefix: "/openai-open", UpstreamURLs: []string{"http://" + s.mockAddr + "/v1"},
		CredentialRef: "env:CARACAL_TEST_UPSTREAM_KEY", Provider: "openai", Pricing: "tokens", StripPrefix: true, FailOpen: true}); err != nil {
		t.Fatal(err)
	}
	s.waitNotified(t, applied, "the route notification")
	setMaxMessageBytes(t, s.brokers, s.topic, "64", 512, true)
	post := func(path string) (int, string) {
		resp, body := s.post(t, path, s.key, chatBody)
		return resp.StatusCode, string(body)
	}
	failedBefore := s.metric(t, `caracal_producer_records_total{result="failed"}`)
	openBefore := s.metric(t, "caracal_metering_fail_open_total")
	servedBefore := s.mock.Stats().Requests

	// Fill the spool through the fail-open route: every request is served.
	const n = 40
	for i := 0; i < n; i++ {
		if code, body := post("/openai-open/chat/completions"); code != 200 {
			t.Fatalf("fail-open route, request %d: %d %s", i, code, body)
		}
	}
	open := s.metric(t, "caracal_metering_fail_open_total") - openBefore
	if open == 0 {
		t.Fatalf("%d requests through a 16 KiB spool and none forwarded fail-open", n)
	}
	if served := s.mock.Stats().Requests - servedBefore; served != n {
		t.Fatalf("upstream served %d of %d fail-open requests", served, n)
	}
	// The ordinary route fails closed meanwhile.
	if code, body := post("/openai/chat/completions"); code != 503 || !strings.Contains(body, "metering_unavailable") {
		t.Fatalf("ordinary route with the spool full: %d %s, want 503 metering_unavailable", code, body)
	}
	if served := s.mock.Stats().Requests - servedBefore; served != n {
		t.Fatalf("the refused request reached the upstream (%d served)", served)
	}
	// Losses, if any, are counted, and only fail-open requests can cause
	// them.
	for deadline := time.Now().Add(10 * time.Second); s.rg.GW.producer.Reserved() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d spool bytes still reserved", s.rg.GW.producer.Reserved())
		}
	}
	lost := s.metric(t, `caracal_producer_records_total{result="failed"}`) - failedBefore
	t.Logf("%d fail-open requests: %d forwarded without spool room, %d events lost (counted)", n, open, lost)
	if lost > open {
		t.Fatalf("%d events lost but only %d requests were forwarded fail-open", lost, open)
	}
}
