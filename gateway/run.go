package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caracal-gw/caracal/gateway/cache"
	"github.com/caracal-gw/caracal/gateway/connlimit"
	"github.com/caracal-gw/caracal/gateway/guard"
	"github.com/caracal-gw/caracal/gateway/meter"
	"github.com/caracal-gw/caracal/gateway/replay"
	"github.com/caracal-gw/caracal/gateway/ssrf"
	"github.com/caracal-gw/caracal/gateway/tlsconf"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/rawconn"
	"github.com/caracal-gw/caracal/internal/store"
)

// Running is a started gateway with everything it owns.
type Running struct {
	GW        *Gateway
	Addr      string
	AdminAddr string
	stop      []func(context.Context) error
	listener  *cache.Listener
	// TLS reloads the certificate (Reload on SIGHUP); nil in plaintext.
	TLS  *tlsconf.Server
	errc chan error
}

// Start builds the gateway's collaborators from cfg and serves it.
func Start(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool) (*Running, error) {
	return StartWith(ctx, cfg, pool, StartOptions{})
}

// StartOptions are hooks for tests.
type StartOptions struct {
	// TargetDial resolves and dials client-chosen targets.
	TargetDial ssrf.Options
	// SpoolDir is the disk spool's directory (spool.go: default
	// gateway.spoolDir, else $TMPDIR/caracal-spool-<host>-<port>).
	SpoolDir string
}

// StartWith is Start with hooks.
func StartWith(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, so StartOptions) (*Running, error) {
	rg := &Running{errc: make(chan error, 2)}
	fail := func(err error) (*Running, error) {
		rg.Stop(5 * time.Second) //nolint:errcheck
		return nil, err
	}
	c, err := cache.New(cache.DBSource{Q: pool}, cache.Options{
		MaxEntries: cfg.PolicyCacheMaxSize, TTL: cfg.PolicyCacheTTL.D(), LoadTimeout: cfg.DBPoolTimeout.D(),
	})
	if err != nil {
		return fail(err)
	}
	rg.stop = append(rg.stop, func(context.Context) error { c.Close(); return nil })
	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	listenURL := cfg.Database.URL
	if cfg.Database.DirectURL != "" {
		listenURL = cfg.Database.DirectURL
	}
	lst := cache.NewListener(listenURL, c)
	rg.listener = lst
	ldone := make(chan struct{})
	go func() { lst.Run(lctx); close(ldone) }()
	rg.stop = append(rg.stop, func(context.Context) error { lcancel(); <-ldone; return nil })
	if err := c.Reload(ctx); err != nil {
		return fail(err)
	}

	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		return fail(err)
	}
	rg.stop = append(rg.stop, func(context.Context) error { rc.Close(); return nil })
	leaser, err := budget.NewLeaser(budget.NewStore(rc), budget.LeaserOptions{
		LeaseSize: cfg.Gateway.LeaseSize,
		LeaseTTL:  cfg.Gateway.LeaseTTL.D(),
		Policies: func(_ context.Context, id event.UUID) ([]control.Policy, error) {
			a, err := c.Agent(id)
			if err != nil || a == nil {
				return nil, fmt.Errorf("cannot load the policies of agent %s: %v", id, err)
			}
			return a.Policies, nil
		},
	})
	if err != nil {
		return fail(err)
	}
	// Fail closed while Redis is down or its totals are incomplete; drop
	// every lease when the totals were rebuilt (budget.WatchReady).
	var redisOK atomic.Bool
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	pdone := budget.StartReadyWatch(pctx, rc, cfg.Redis.BudgetReadyKey, time.Second, leaser, &redisOK)
	rg.stop = append(rg.stop, func(context.Context) error { pcancel(); <-pdone; return nil })
	rp, err := replay.New(rc, replay.Config{Window: cfg.Gateway.ReplayWindow.D()})
	if err != nil {
		return fail(err)
	}
	prod, err := meter.NewProducer(cfg)
	if err != nil {
		return fail(err)
	}
	// The disk spool (issue 6, spool.go); stopped after the producer.
	sp, tempSpool, err := openSpoolTemp(cfg, so.SpoolDir)
	if err != nil {
		prod.Close(ctx) //nolint:errcheck
		return fail(err)
	}
	rg.stop = append(rg.stop, func(context.Context) error { return closeSpool(sp, tempSpool) })
	if err := prod.UseSpool(sp, meter.SpoolOptions{}); err != nil {
		prod.Close(ctx) //nolint:errcheck
		return fail(err)
	}
	gw, err := New(cfg, Deps{
		Cache: c, Listener: lst, Producer: prod, Budget: leaser, Replay: rp, BudgetReady: redisOK.Load, TargetDial: so.TargetDial,
	})
	if err != nil {
		return fail(err)
	}
	rg.GW = gw
	sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
	sdone := make(chan struct{})
	go func() {
		defer close(sdone)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case now := <-t.C:
				gw.Sweep(now)
			}
		}
	}()
	rg.stop = append(rg.stop, func(context.Context) error { scancel(); <-sdone; return nil })
	store.RegisterPoolMetrics(gw.gauges, pool)
	// Stopped in reverse: the gateway drains and returns its leases, then the
	// producer flushes every event.
	rg.stop = append(rg.stop, func(ctx context.Context) error { return prod.Close(ctx) })

	adminLn, err := net.Listen("tcp", cfg.Gateway.AdminListen)
	if err != nil {
		return fail(fmt.Errorf("cannot listen on gateway.adminListen %s: %w", cfg.Gateway.AdminListen, err))
	}
	rg.AdminAddr = adminLn.Addr().String()
	admin := &http.Server{Handler: AdminHandler(gw.Ready(), cfg.Gateway.AdminToken, cfg.Gateway.EnablePprof), ReadHeaderTimeout: 5 * time.Second}
	go func() { rg.errc <- ignoreClosed(admin.Serve(adminLn)) }()
	rg.stop = append(rg.stop, admin.Shutdown)

	ln, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		return fail(fmt.Errorf("cannot listen on gateway.listen %s: %w", cfg.Gateway.Listen, err))
	}
	rg.Addr = ln.Addr().String()
	if cfg.Gateway.RawSocketIO {
		// Client connections read and write with raw system calls (internal/rawconn).
		ln = rawconn.Listener(ln)
	}
	// --- connection caps (issue 8, gateway/connlimit): per client address and
	// in total, enforced at accept before TLS and the guard.
	ln = connlimit.Wrap(ln, connlimit.Options{PerAddr: cfg.Gateway.MaxConnsPerAddr, Total: cfg.Gateway.MaxConns})
	// --- end connection caps
	srv := gw.Server()
	lim := guard.Limits{MaxHeadSize: cfg.Gateway.MaxHeaderBytes, MaxBodySize: cfg.Gateway.MaxRequestBody}
	guard.ServerLimits(lim, srv)
	if !cfg.Gateway.Plaintext {
		if cfg.Gateway.CertFile == "" {
			ln.Close()
			return fail(errors.New("config key gateway.certFile: TLS needs a certificate and key (or gateway.plaintext: true)"))
		}
		ts, err := tlsconf.New(tlsconf.Options{CertFile: cfg.Gateway.CertFile, KeyFile: cfg.Gateway.KeyFile, ClientCAFile: cfg.Gateway.ClientCAFile})
		if err != nil {
			ln.Close()
			return fail(fmt.Errorf("config key gateway.certFile: %w", err))
		}
		rg.TLS = ts
		rg.stop = append(rg.stop, func(context.Context) error { return ts.Close() })
		ln = tls.NewListener(ln, ts.Config())
	}
	// The smuggling guard reads each request head before fasthttp does.
	ln = guard.Listener(ln, lim)
	go func() { rg.errc <- srv.Serve(ln) }()
	rg.stop = append(rg.stop, gw.Shutdown)
	return rg, nil
}

// Stop shuts everything down in reverse order within timeout.
func (rg *Running) Stop(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for i := len(rg.stop) - 1; i >= 0; i-- {
		if err := rg.stop[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// listenerApplied counts control-data notifications applied (tests).
func (rg *Running) listenerApplied() int64 { return rg.listener.Applied.Load() }
