// Package gateway is Caracal's proxy: a fasthttp server that authenticates
// agents, checks their policies and budgets, forwards their calls and meters
// them to Kafka. See handler.go for the request path.
package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/gateway/auth"
	"github.com/caracal-gw/caracal/gateway/cache"
	"github.com/caracal-gw/caracal/gateway/meter"
	"github.com/caracal-gw/caracal/gateway/proxy"
	"github.com/caracal-gw/caracal/gateway/replay"
	"github.com/caracal-gw/caracal/gateway/ssrf"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// Deps are the gateway's collaborators, built by the caller (cmd/caracal).
type Deps struct {
	Cache    *cache.Cache
	Listener *cache.Listener
	Producer *meter.Producer
	Budget   *budget.Leaser
	Replay   *replay.Checker
	// TargetDial overrides how client-chosen targets are resolved and dialled
	// (tests); zero: the system resolver and dialer.
	TargetDial ssrf.Options
	// BudgetReady reports whether the budget store answers (a Redis ping
	// loop run by the caller).
	BudgetReady func() bool
}

// Gateway serves agents' requests.
type Gateway struct {
	cfg         *config.Config
	cache       *cache.Cache
	listener    *cache.Listener
	producer    *meter.Producer
	budget      *budget.Leaser
	budgetReady func() bool
	replay      *replay.Checker
	keys        *auth.APIKeyVerifier
	jwt         atomic.Pointer[auth.JWTVerifier]
	// The issuers jwt was built from, and the stop of its JWKS refresh loop
	// (under mu); runCtx ends at Shutdown.
	jwtIssuers  []control.JWTIssuer
	jwtStop     context.CancelFunc
	runCtx      context.Context
	runStop     context.CancelFunc
	hygiene     *proxy.Hygiene
	rates       *rateLimiter
	authFails   *rateLimiter
	ids         *event.IDGen
	gatewayID   []byte
	inflight    atomic.Int64
	maxInflight int64
	gauges      *metrics.Set
	targets     *targets

	mu     sync.Mutex
	routes atomic.Pointer[routeTable]
	server *fasthttp.Server
}

// New builds a gateway; Serve starts it.
func New(cfg *config.Config, d Deps) (*Gateway, error) {
	h, err := proxy.NewHygiene(cfg.Gateway.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("config key gateway.trustedProxies: %w", err)
	}
	g := &Gateway{
		cfg: cfg, cache: d.Cache, listener: d.Listener, producer: d.Producer, budget: d.Budget, budgetReady: d.BudgetReady, replay: d.Replay,
		hygiene: h, rates: newRateLimiter(), authFails: newRateLimiter(), ids: event.NewIDGen(), targets: newTargets(d.TargetDial),
		gatewayID:   []byte(d.Budget.Owner()),
		maxInflight: int64(cfg.MaxConcurrentRequests),
	}
	g.runCtx, g.runStop = context.WithCancel(context.Background())
	g.keys = auth.NewAPIKeyVerifier(g.keyLookup, nil)
	g.registerGauges()
	return g, nil
}

// keyLookup backs the API-key verifier with the cache; an unavailable store
// was already answered with 503 before the verifier runs.
func (g *Gateway) keyLookup(prefix []byte) (control.APIKey, bool) {
	k, found, err := g.cache.APIKey(prefix)
	return k, found && err == nil
}

func (g *Gateway) certLookup(kind control.MTLSKind, value string) (event.UUID, bool) {
	rt := g.cache.Tables()
	if rt == nil {
		return event.UUID{}, false
	}
	for _, id := range rt.Identities {
		if id.Kind == kind && id.Value == value {
			return id.AgentID, true
		}
	}
	return event.UUID{}, false
}

// routeTable returns the compiled routes for the current control tables,
// rebuilding them when the tables changed.
func (g *Gateway) routeTable() *routeTable {
	t := g.cache.Tables()
	if t == nil {
		return nil
	}
	if rt := g.routes.Load(); rt != nil && rt.from == t {
		return rt
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rt := g.routes.Load(); rt != nil && rt.from == t {
		return rt
	}
	rt, err := g.buildRoutes(t)
	if err != nil {
		slog.Error("cannot apply the changed routes; keeping the previous ones", "err", err)
		return g.routes.Load()
	}
	g.applyJWTIssuers(t.Issuers)
	g.routes.Store(rt)
	return rt
}

// applyJWTIssuers builds a new JWT verifier when the issuers changed (other
// control-table changes keep the verifier, its fetched keys and its token
// cache) and runs its periodic JWKS refresh, stopping the previous one.
// Called under g.mu.
func (g *Gateway) applyJWTIssuers(issuers []control.JWTIssuer) {
	if g.jwt.Load() != nil && reflect.DeepEqual(issuers, g.jwtIssuers) {
		return
	}
	jv, err := auth.NewJWTVerifier(issuers, auth.JWTOptions{JWKSRefresh: g.cfg.Gateway.JWKSRefresh.D()})
	if err != nil {
		slog.Error("cannot apply the changed JWT issuers; keeping the previous ones", "err", err)
		return
	}
	if g.jwtStop != nil {
		g.jwtStop()
	}
	ctx, stop := context.WithCancel(g.runCtx)
	go jv.Run(ctx)
	g.jwt.Store(jv)
	g.jwtIssuers, g.jwtStop = issuers, stop
}

// Ready reports whether every dependency the request path trusts is usable.
func (g *Gateway) Ready() []Check {
	return []Check{
		{Name: "policy store", OK: func() bool { return g.listener.Ready() && g.cache.Tables() != nil }},
		{Name: "budget store", OK: g.budgetReady},
		{Name: "producer", OK: g.producer.HasRoom},
	}
}

// Server returns the fasthttp server with the gateway's limits.
func (g *Gateway) Server() *fasthttp.Server {
	c := g.cfg
	g.server = &fasthttp.Server{
		Handler:                       g.handle,
		Name:                          "caracal",
		ReadTimeout:                   c.RequestTimeout.D(),
		WriteTimeout:                  c.RequestTimeout.D(),
		IdleTimeout:                   c.Gateway.IdleTimeout.D(),
		MaxRequestBodySize:            c.Gateway.MaxRequestBody,
		ReadBufferSize:                c.Gateway.MaxHeaderBytes,
		Concurrency:                   c.MaxConcurrentRequests * 4,
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 false,
		CloseOnShutdown:               true,
		Logger:                        debugLogger{},
		StreamRequestBody:             false,
	}
	return g.server
}

// debugLogger sends fasthttp's per-connection messages (a client that
// closed early, a handshake that failed) to the debug log: at info level a
// scan or a flood of broken clients would drown the log.
type debugLogger struct{}

func (debugLogger) Printf(format string, args ...any) {
	if slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		slog.Debug(fmt.Sprintf(format, args...))
	}
}

// Serve serves ln (wrapped in TLS by the caller when configured) until
// Shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	if g.server == nil {
		g.Server()
	}
	return g.server.Serve(ln)
}

// ServeTLS serves ln with TLS config tc.
func (g *Gateway) ServeTLS(ln net.Listener, tc *tls.Config) error {
	return g.Serve(tls.NewListener(ln, tc))
}

// Shutdown stops accepting, waits for in-flight requests up to ctx's
// deadline, and returns the leases. The caller flushes the producer after.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	if g.server != nil {
		err = g.server.ShutdownWithContext(ctx)
	}
	for g.inflight.Load() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	g.runStop()
	if err2 := g.budget.Close(ctx); err == nil {
		err = err2
	}
	if g.gauges != nil {
		metrics.UnregisterSet(g.gauges, true)
	}
	return err
}

// Sweep forgets idle rate-limit state; run it every few seconds.
func (g *Gateway) Sweep(now time.Time) {
	g.rates.sweep(now)
	g.authFails.sweep(now)
}

// InFlight returns the requests being served.
func (g *Gateway) InFlight() int64 { return g.inflight.Load() }
