package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
	"github.com/caracal-gw/caracal/loadtest/mockupstream"
)

// stack is a gateway against the real PostgreSQL, Redis and Kafka, with a
// mock OpenAI-compatible upstream, all on loopback.
type stack struct {
	cfg      *config.Config
	db       store.Execer
	pool     *pgxpool.Pool
	mockAddr string
	bot      string
	mock     *mockupstream.Server
	rg       *Running
	base     string
	key      string
	brokers  []string
	topic    string
	decision string
}

const upstreamSecret = "sk-upstream-secret-for-tests"

// testLeaseSize is the budget lease of test gateways: small, so budgets are
// exercised; the allocation test raises it so no refill runs while it
// counts.
var testLeaseSize int64 = 20_000

// testLingerMs is the producer linger of test gateways.
var testLingerMs = 10

// testConfigure, when set, adjusts a test gateway's configuration.
var testConfigure func(*config.Config)

// testBatchSize is the producer batch.size of test gateways.
var testBatchSize = 32768

func newStack(t *testing.T, childLimitMicros int64) *stack {
	t.Helper()
	return newStackLimits(t, 10_000_000, childLimitMicros)
}

func newStackLimits(t *testing.T, parentLimitMicros, childLimitMicros int64) *stack {
	t.Helper()
	return newStackWith(t, parentLimitMicros, childLimitMicros, StartOptions{})
}

func newStackWith(t *testing.T, parentLimitMicros, childLimitMicros int64, so StartOptions) *stack {
	t.Helper()
	ctx := context.Background()
	cfg := testenv.Config(t)
	cfg.Database.URL = testenv.PGURL(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Redis.Addrs = []string{testenv.RedisAddr(t)}
	cfg.Kafka.Topics.Metering = testenv.Name("t.metering.")
	cfg.Kafka.Topics.Decisions = testenv.Name("t.decisions.")
	cfg.Kafka.Topics.Audit = testenv.Name("t.audit.")
	cfg.Gateway.Listen, cfg.Gateway.AdminListen, cfg.Gateway.Plaintext = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.Gateway.LeaseSize = testLeaseSize
	cfg.Kafka.Producer.LingerMs = testLingerMs
	cfg.Kafka.Producer.BatchSize = testBatchSize
	if testConfigure != nil {
		testConfigure(cfg)
	}
	cfg.PolicyCacheTTL = config.Duration(time.Hour) // only NOTIFY can drop entries
	admin, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopics(ctx, 2, 1, nil, cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit); err != nil {
		t.Fatal(err)
	}
	pool, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	mock := mockupstream.New(mockupstream.Options{OutputTokens: 16, Chunks: 3})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go mock.Serve(mln) //nolint:errcheck // ends at Close
	t.Cleanup(func() { mock.Close() })
	t.Setenv("CARACAL_TEST_UPSTREAM_KEY", upstreamSecret)

	org := testenv.Name("org-")
	bot := testenv.Name("bot-")
	must(t, func() error { _, err := store.CreateAgent(ctx, pool, store.NewAgent{Name: org}); return err })
	must(t, func() error {
		_, err := store.CreateAgent(ctx, pool, store.NewAgent{Name: bot, Parent: org})
		return err
	})
	must(t, func() error {
		_, err := store.SetPolicy(ctx, pool, store.PolicySpec{Agent: org, LimitMicros: parentLimitMicros, Window: "daily", Active: true, Reason: "test"})
		return err
	})
	must(t, func() error {
		_, err := store.SetPolicy(ctx, pool, store.PolicySpec{Agent: bot, LimitMicros: childLimitMicros, Window: "daily", Active: true, Reason: "test"})
		return err
	})
	must(t, func() error {
		_, err := store.SetRoute(ctx, pool, store.RouteSpec{Name: "openai", Prefix: "/openai", UpstreamURLs: []string{"http://" + mln.Addr().String() + "/v1"},
			CredentialRef: "env:CARACAL_TEST_UPSTREAM_KEY", Provider: "openai", Pricing: "tokens", StripPrefix: true})
		return err
	})
	for _, p := range []store.PriceSpec{
		{Resource: "openai", Model: "gpt-test", Unit: "input_mtok", PriceMicros: 1_000_000, Currency: "USD"},
		{Resource: "openai", Model: "gpt-test", Unit: "output_mtok", PriceMicros: 2_000_000, Currency: "USD"},
	} {
		must(t, func() error { _, err := store.SetPrice(ctx, pool, p); return err })
	}
	var k store.CreatedKey
	must(t, func() error { var err error; k, err = store.CreateKey(ctx, pool, store.NewKey{Agent: bot}); return err })

	markBudgetReady(t, cfg)
	rg, err := StartWith(ctx, cfg, pool, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rg.Stop(20 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	s := &stack{cfg: cfg, db: pool, pool: pool, mock: mock, mockAddr: mln.Addr().String(), bot: bot, rg: rg, base: "http://" + rg.Addr, key: k.Key, brokers: cfg.Kafka.Brokers,
		topic: cfg.Kafka.Topics.Metering, decision: cfg.Kafka.Topics.Decisions}
	s.waitReady(t)
	return s
}

func must(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.rg.AdminAddr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway never ready: %s", body)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) post(t *testing.T, path, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// meteringEvents reads n events from the metering topic (bounded wait).
func (s *stack) events(t *testing.T, topic string, n int) [][]byte {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out [][]byte
	for len(out) < n && ctx.Err() == nil {
		c.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r.Value) })
	}
	return out
}

const chatBody = `{"model":"gpt-test","max_tokens":50,"messages":[{"role":"user","content":"hello there"}]}`

type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

func TestGatewayEndToEnd(t *testing.T) {
	s := newStack(t, 5_000_000)

	resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("JSON request: %d %s", resp.StatusCode, body)
	}
	hdr := s.mock.LastHeaders()
	if hdr.Get("Authorization") != "Bearer "+upstreamSecret {
		t.Fatalf("upstream credential not injected: %q", hdr.Get("Authorization"))
	}
	if strings.Contains(fmt.Sprint(hdr), s.key) {
		t.Fatal("the agent's own key reached the upstream")
	}

	// SSE: streamed through, metered from the final usage chunk.
	resp, body = s.post(t, "/openai/chat/completions", s.key,
		`{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
		!strings.Contains(string(body), "data: [DONE]") {
		t.Fatalf("SSE request: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	// Failures all use the one JSON error shape.
	for _, tc := range []struct {
		name, path, key string
		status          int
		code            string
	}{
		{"no credentials", "/openai/chat/completions", "", 401, "unauthenticated"},
		{"unknown key", "/openai/chat/completions", "crk_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", 401, "unauthenticated"},
		{"malformed key", "/openai/chat/completions", "crk_short", 401, "unauthenticated"},
		{"no route", "/nowhere", s.key, 404, "route_not_found"},
	} {
		resp, body := s.post(t, tc.path, tc.key, chatBody)
		var e errorBody
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.RequestID == "" {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}

	st := s.mock.Stats()
	evs := s.events(t, s.topic, 2)
	if len(evs) != 2 || st.Requests != 2 {
		t.Fatalf("%d events for %d upstream requests, want 2 and 2", len(evs), st.Requests)
	}
	var total, in, out int64
	for _, raw := range evs {
		var e event.Metering
		if err := event.DecodeMetering(raw, &e); err != nil {
			t.Fatal(err)
		}
		if e.Pricing != event.PricingTokens || e.Status != 200 || string(e.Model) != "gpt-test" || e.NumAncestors != 1 {
			t.Fatalf("event: %s", raw)
		}
		if want := e.InputTokens*1 + e.OutputTokens*2; e.CostMicros != want {
			t.Fatalf("cost %d, want %d from the usage", e.CostMicros, want)
		}
		total += e.CostMicros
		in += e.InputTokens
		out += e.OutputTokens
	}
	if in != st.InputTokens || out != st.OutputTokens {
		t.Fatalf("metered %d/%d tokens, upstream served %d/%d", in, out, st.InputTokens, st.OutputTokens)
	}
	if total <= 0 {
		t.Fatal("nothing was charged")
	}

	// The guide's metrics are on the admin listener.
	mresp, err := http.Get("http://" + s.rg.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, name := range []string{`caracal_requests_total{status="ok"}`, `caracal_requests_total{status="denied"}`,
		`caracal_request_duration_seconds_bucket{vmrange=`, `caracal_requests_in_flight`, `caracal_db_connections{state="in_use"}`,
		`caracal_policy_cache_requests_total{result="hit"}`, `caracal_budget_redis_round_trips_total`, `caracal_producer_buffered_records`} {
		if !strings.Contains(string(mbody), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestGatewayBudgetExceeded(t *testing.T) {
	// The child may spend 300 micro-units a day: a handful of requests.
	s := newStack(t, 300)
	var ok, denied int
	for i := 0; i < 50 && denied == 0; i++ {
		resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
		switch resp.StatusCode {
		case 200:
			ok++
		case 402:
			var e errorBody
			if json.Unmarshal(body, &e) != nil || e.Error.Code != "budget_exceeded" || resp.Header.Get("X-Caracal-Budget-Remaining") == "" {
				t.Fatalf("402 without the budget_exceeded shape: %s %v", body, resp.Header)
			}
			denied++
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if ok == 0 || denied == 0 {
		t.Fatalf("%d ok, %d denied: the budget did not stop the agent", ok, denied)
	}
	evs := s.events(t, s.topic, ok)
	var spent int64
	for _, raw := range evs {
		var e event.Metering
		if err := event.DecodeMetering(raw, &e); err != nil {
			t.Fatal(err)
		}
		spent += e.CostMicros
	}
	if len(evs) != ok || spent > 300 {
		t.Fatalf("%d events for %d forwarded requests, %d micro-units spent of 300", len(evs), ok, spent)
	}
	if d := s.events(t, s.decision, 1); len(d) != 1 || !strings.Contains(string(d[0]), `"reason":"budget_exceeded"`) {
		t.Fatalf("no budget_exceeded decision record: %q", d)
	}
}

func TestGatewayRevocationByNotify(t *testing.T) {
	s := newStack(t, 5_000_000)
	if resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// Requests keep flowing while the key is revoked; once the notification
	// is applied (the cache TTL is an hour), every request is refused.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Not s.post: t.Fatal must not be called from this goroutine.
			req, _ := http.NewRequest("POST", s.base+"/openai/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+s.key)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
			}
		}
	}()
	prefix := s.key[:16]
	applied := s.rg.listenerApplied()
	if _, err := s.db.Exec(context.Background(), `UPDATE api_keys SET revoked_at = now() WHERE prefix = $1`, prefix); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.rg.listenerApplied() == applied && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if s.rg.listenerApplied() == applied {
		t.Fatal("the revocation notification never arrived")
	}
	// 401 key_revoked, or 429 once the revoked key's failures passed the
	// failed-authentication burst.
	resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
	if resp.StatusCode != 401 && resp.StatusCode != 429 {
		t.Fatalf("revoked key still accepted: %d %s", resp.StatusCode, body)
	}
}

// TestGatewayBudgetRaceAcrossReplicas: two gateways, 64 concurrent clients
// spending one agent's budget under a tighter parent budget. The total
// charged never passes the parent's limit (the estimate covers the mock's
// actual cost, so the documented overshoot is 0 here).
func TestGatewayBudgetRaceAcrossReplicas(t *testing.T) {
	const parentLimit = 3_000
	s := newStackLimits(t, parentLimit, 1_000_000)
	rg2, err := Start(context.Background(), s.cfg, s.pool)
	if err != nil {
		t.Fatal(err)
	}
	defer rg2.Stop(20 * time.Second) //nolint:errcheck
	bases := []string{s.base, "http://" + rg2.Addr}
	var mu sync.Mutex
	counts := map[int]int{}
	var other []string
	var wg sync.WaitGroup
	for c := 0; c < 64; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				req, _ := http.NewRequest("POST", bases[(c+i)%2]+"/openai/chat/completions", strings.NewReader(chatBody))
				req.Header.Set("Authorization", "Bearer "+s.key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					mu.Lock()
					counts[-1]++
					mu.Unlock()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				counts[resp.StatusCode]++
				if resp.StatusCode != 200 && resp.StatusCode != 402 && len(other) < 3 {
					other = append(other, fmt.Sprintf("%d %s", resp.StatusCode, body))
				}
				mu.Unlock()
				if resp.StatusCode == 402 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if counts[-1] != 0 || counts[200] == 0 || counts[402] == 0 || len(counts) != 2 {
		t.Fatalf("outcomes %v: want only 200s and 402s; first others: %q", counts, other)
	}
	evs := s.events(t, s.topic, counts[200])
	var spent int64
	for _, raw := range evs {
		var e event.Metering
		if err := event.DecodeMetering(raw, &e); err != nil {
			t.Fatal(err)
		}
		spent += e.CostMicros
	}
	if len(evs) != counts[200] || spent > parentLimit {
		t.Fatalf("%d events for %d forwarded requests; %d micro-units charged against a parent limit of %d",
			len(evs), counts[200], spent, parentLimit)
	}
	t.Logf("%v; %d of %d micro-units spent", counts, spent, parentLimit)
}

func (s *stack) postWith(t *testing.T, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", s.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// waitTables waits (bounded) until the gateway's route table has route name.
// waitNotified waits (10 s at most) until the gateway has applied a control
// notification after the count applied (s.rg.listenerApplied() before the change).
func (s *stack) waitNotified(t *testing.T, applied int64, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.rg.listenerApplied() == applied; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what + " never arrived")
		}
	}
}

func (s *stack) waitTables(t *testing.T, name string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if rt := s.rg.GW.routeTable(); rt != nil {
			for _, r := range rt.routes {
				if r.Name == name {
					return
				}
			}
		}
	}
	t.Fatalf("route %s never reached the gateway", name)
}

// TestGatewayAuthFailuresThrottled: failed authentication is limited per
// client address (429 after the burst), and audit records carry the key's
// visible prefix, never its secret.
func TestGatewayAuthFailuresThrottled(t *testing.T) {
	s := newStack(t, 5_000_000)
	const badSecret = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
	bad := s.key[:17] + badSecret
	statuses := map[int]int{}
	for i := 0; i < authFailBurst+5; i++ {
		resp, _ := s.post(t, "/openai/chat/completions", bad, chatBody)
		statuses[resp.StatusCode]++
	}
	if statuses[401] < authFailBurst-1 || statuses[429] == 0 || statuses[401]+statuses[429] != authFailBurst+5 {
		t.Fatalf("outcomes %v: want %d×401 then 429s", statuses, authFailBurst)
	}
	resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
	var e errorBody
	if resp.StatusCode != 429 || json.Unmarshal(body, &e) != nil || e.Error.Code != "auth_rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a throttled address was served: %d %s", resp.StatusCode, body)
	}
	recs := s.events(t, s.cfg.Kafka.Topics.Audit, authFailBurst)
	if len(recs) < authFailBurst {
		t.Fatalf("%d audit records for %d failures", len(recs), authFailBurst)
	}
	for _, r := range recs {
		if strings.Contains(string(r), badSecret) || strings.Contains(string(r), s.key[17:]) {
			t.Fatalf("an audit record carries a secret: %s", r)
		}
		if !strings.Contains(string(r), `"key_prefix":"`+s.key[:16]+`"`) {
			t.Fatalf("audit record without the key prefix: %s", r)
		}
	}
}

// markBudgetReady gives the test gateway its own budget-ready key and sets
// it, as `caracal reconcile` or the metrics consumer would.
func markBudgetReady(t testing.TB, cfg *config.Config) {
	t.Helper()
	cfg.Redis.BudgetReadyKey = testenv.Name("cr:test:ready:")
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Do(ctx, rc.B().Set().Key(cfg.Redis.BudgetReadyKey).Value("1").Ex(time.Hour).Build()).Error(); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayFailsClosedWithoutBudgetTotals: when the budget-ready key is
// gone (Redis lost its data and no reconcile ran yet), the gateway reports
// not ready and refuses requests with 503; once it is back, it serves.
func TestGatewayFailsClosedWithoutBudgetTotals(t *testing.T) {
	s := newStack(t, 5_000_000)
	rc, err := budget.NewClient(s.cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Do(ctx, rc.B().Del().Key(s.cfg.Redis.BudgetReadyKey).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	notReady := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !notReady; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + s.rg.AdminAddr + "/readyz")
		if err == nil {
			notReady = resp.StatusCode == 503
			resp.Body.Close()
		}
	}
	if !notReady {
		t.Fatal("/readyz stayed ready without the budget totals")
	}
	resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
	var e errorBody
	if resp.StatusCode != 503 || json.Unmarshal(body, &e) != nil || e.Error.Code != "budget_unavailable" {
		t.Fatalf("served without budget totals: %d %s", resp.StatusCode, body)
	}
	if err := rc.Do(ctx, rc.B().Set().Key(s.cfg.Redis.BudgetReadyKey).Value("1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t)
	if resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody); resp.StatusCode != 200 {
		t.Fatalf("after the totals came back: %d %s", resp.StatusCode, body)
	}
}

// TestGatewayServesRightAfterStart: a gateway knows the budget totals are
// complete before Start returns, so its very first request is served (a
// replica joining a fleet must not answer 503 budget_unavailable until its
// first readiness poll).
func TestGatewayServesRightAfterStart(t *testing.T) {
	s := newStack(t, 1_000_000)
	for i := 0; i < 3; i++ {
		rg, err := Start(context.Background(), s.cfg, s.pool)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", "http://"+rg.Addr+"/openai/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+s.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := rg.Stop(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("start %d: first request answered %d %s", i, resp.StatusCode, body)
		}
	}
}
