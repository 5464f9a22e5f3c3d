package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/gateway"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

var sinkInt int

// serveUpstream starts the fixed fasthttp upstream on loopback.
func serveUpstream(b testing.TB) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &fasthttp.Server{Handler: Upstream, NoDefaultDate: true}
	go s.Serve(ln)                     //nolint:errcheck
	b.Cleanup(func() { s.Shutdown() }) //nolint:errcheck
	return ln.Addr().String()
}

// gatewayStack is a gateway on loopback with the whole path configured:
// route "openai" to the fixed upstream, an agent with a large daily budget
// under a parent with one, an API key, prices, and metering to Kafka (the
// real broker when CARACAL_TEST_KAFKA_BROKERS is set).
type gatewayStack struct {
	addr     string
	key      string
	upstream string
	cfg      *config.Config
}

func newGatewayStack(b testing.TB) *gatewayStack {
	b.Helper()
	ctx := context.Background()
	cfg := testenv.Config(b)
	cfg.Database.URL = testenv.PGURL(b)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(b)
	cfg.Redis.Addrs = []string{testenv.RedisAddr(b)}
	cfg.Kafka.Topics.Metering = testenv.Name("b.metering.")
	cfg.Kafka.Topics.Decisions = testenv.Name("b.decisions.")
	cfg.Kafka.Topics.Audit = testenv.Name("b.audit.")
	cfg.Gateway.Listen, cfg.Gateway.AdminListen, cfg.Gateway.Plaintext = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.PolicyCacheTTL = config.Duration(time.Hour)
	createTopics(b, cfg.Kafka.Brokers, cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit)
	pool, err := store.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	up := serveUpstream(b)
	b.Setenv("CARACAL_BENCH_UPSTREAM_KEY", "sk-bench")
	org, bot := testenv.Name("org-"), testenv.Name("bot-")
	steps := []func() error{
		func() error { _, err := store.CreateAgent(ctx, pool, store.NewAgent{Name: org}); return err },
		func() error {
			_, err := store.CreateAgent(ctx, pool, store.NewAgent{Name: bot, Parent: org})
			return err
		},
		func() error {
			_, err := store.SetPolicy(ctx, pool, store.PolicySpec{Agent: org, LimitMicros: 1e15, Window: "daily", Active: true, Reason: "bench"})
			return err
		},
		func() error {
			_, err := store.SetPolicy(ctx, pool, store.PolicySpec{Agent: bot, LimitMicros: 1e14, Window: "daily", Active: true, Reason: "bench"})
			return err
		},
		func() error {
			_, err := store.SetRoute(ctx, pool, store.RouteSpec{Name: "openai", Prefix: "/openai", UpstreamURLs: []string{"http://" + up + "/v1"},
				CredentialRef: "env:CARACAL_BENCH_UPSTREAM_KEY", Provider: "openai", Pricing: "tokens", StripPrefix: true})
			return err
		},
		func() error {
			_, err := store.SetPrice(ctx, pool, store.PriceSpec{Resource: "openai", Model: "gpt-bench", Unit: "input_mtok", PriceMicros: 1_000_000, Currency: "USD"})
			return err
		},
		func() error {
			_, err := store.SetPrice(ctx, pool, store.PriceSpec{Resource: "openai", Model: "gpt-bench", Unit: "output_mtok", PriceMicros: 2_000_000, Currency: "USD"})
			return err
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			b.Fatal(err)
		}
	}
	k, err := store.CreateKey(ctx, pool, store.NewKey{Agent: bot})
	if err != nil {
		b.Fatal(err)
	}
	cfg.Redis.BudgetReadyKey = testenv.Name("cr:bench:ready:")
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		b.Fatal(err)
	}
	err = rc.Do(ctx, rc.B().Set().Key(cfg.Redis.BudgetReadyKey).Value("1").Ex(time.Hour).Build()).Error()
	rc.Close()
	if err != nil {
		b.Fatal(err)
	}
	rg, err := gateway.Start(ctx, cfg, pool)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := rg.Stop(20 * time.Second); err != nil {
			b.Errorf("stop: %v", err)
		}
	})
	waitReady(b, rg.AdminAddr)
	return &gatewayStack{addr: rg.Addr, key: k.Key, upstream: up, cfg: cfg}
}

func createTopics(b testing.TB, brokers []string, topics ...string) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(context.Background(), 1, 1, nil, topics...); err != nil {
		cl.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, topics...) //nolint:errcheck // best effort
		cl.Close()
	})
}

func waitReady(b testing.TB, admin string) {
	b.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("gateway never ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chatRequest prepares a POST of ChatBody to url with key (none when empty).
func chatRequest(url, key string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.SetBodyString(ChatBody)
	return req
}
