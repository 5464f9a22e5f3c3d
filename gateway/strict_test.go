package gateway

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
)

// strictStack is a stack with a second, strict route to the same upstream.
func strictStack(tt *testing.T) *stack {
	s := newStack(tt, 5_000_000)
	must(tt, func() error {
		_, err := store.SetRoute(context.Background(), s.pool, store.RouteSpec{Name: "strict", Prefix: "/strict",
			UpstreamURLs: []string{"http://" + s.mockAddr + "/v1"}, CredentialRef: "env:CARACAL_TEST_UPSTREAM_KEY",
			Provider: "openai", Pricing: "tokens", StripPrefix: true, Strict: true})
		return err
	})
	s.waitTables(tt, "strict")
	return s
}

func (s *stack) metric(t *testing.T, name string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + s.rg.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// TestStrictRouteWritesIntents: every request on a strict route has a
// durable intent and a completion, and its metering event is a normal usage
// event (no incomplete charge while the gateway lives).
func TestStrictRouteWritesIntents(t *testing.T) {
	s := strictStack(t)
	before := s.metric(t, "caracal_strict_intents_total")
	const n = 5
	for range n {
		if resp, body := s.post(t, "/strict/chat/completions", s.key, chatBody); resp.StatusCode != 200 {
			t.Fatalf("strict request: %d %s", resp.StatusCode, body)
		}
	}
	if got := s.metric(t, "caracal_strict_intents_total") - before; got != n {
		t.Fatalf("%d intents for %d strict requests", got, n)
	}
	resp, err := http.Get("http://" + s.rg.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"caracal_spool_records ", "caracal_spool_bytes ", "caracal_spool_oldest_age_seconds ", "caracal_spool_corrupt_records_total ", "caracal_producer_brokers_down "} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	evs := s.events(t, s.topic, n)
	if len(evs) != n || s.mock.Stats().Requests != n {
		t.Fatalf("%d events for %d upstream requests, want %d", len(evs), s.mock.Stats().Requests, n)
	}
	for _, raw := range evs {
		var e event.Metering
		if err := event.DecodeMetering(raw, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind != event.KindUsage || e.CostMicros <= 0 || string(e.Route) != "strict" {
			t.Fatalf("strict request event: %s", raw)
		}
	}
}

// TestStrictLatencyReport prints the latency strict mode adds end to end
// (sequential requests on the default and the strict route of one gateway,
// same upstream). It reports only (no timed assertion); run it with
// CARACAL_MEASURE=1.
func TestStrictLatencyReport(t *testing.T) {
	if os.Getenv("CARACAL_MEASURE") != "1" {
		t.Skip("set CARACAL_MEASURE=1 to measure")
	}
	s := strictStack(t)
	const n = 300
	measure := func(path string) time.Duration {
		var ds []time.Duration
		for range n {
			start := time.Now()
			if resp, body := s.post(t, path, s.key, chatBody); resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[n/2]
	}
	measure("/openai/chat/completions") // warm up
	d1, s1 := measure("/openai/chat/completions"), measure("/strict/chat/completions")
	d2, s2 := measure("/openai/chat/completions"), measure("/strict/chat/completions")
	t.Logf("median latency: default %v / %v, strict %v / %v; strict adds ~%v", d1, d2, s1, s2, (s1+s2-d1-d2)/2)
}
