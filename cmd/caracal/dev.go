package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/gateway"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/loadtest/mockupstream"
)

func init() { extraCommands = append(extraCommands, newDevCmd) }

type devFlags struct {
	listen, adminListen, mockListen, stateDir string
	kafkaPort                                 int
}

func newDevCmd(a *app) *cobra.Command {
	var f devFlags
	c := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process for a laptop: gateway, consumers, an embedded Kafka (kfake) and a mock OpenAI-compatible upstream",
		Long: `dev runs the whole stack in one process against local PostgreSQL and Redis
(scripts/services.sh up pg redis): it migrates the schema, creates a demo agent with a
budget, an API key and a route to the mock upstream, starts an in-process kfake broker
(no durability: for trying things out only), the gateway in plaintext, and the ledger,
metrics and audit consumers. It prints a request to send and how to see its event.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.dev(cmd.Context(), &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "gateway address (plaintext in dev)")
	fl.StringVar(&f.adminListen, "admin-listen", "127.0.0.1:9090", "admin address (/metrics, /healthz, /readyz)")
	fl.StringVar(&f.mockListen, "mock-listen", "127.0.0.1:8089", "mock upstream address")
	fl.IntVar(&f.kafkaPort, "kafka-port", 19092, "port of the embedded kfake broker on 127.0.0.1")
	fl.StringVar(&f.stateDir, "state-dir", filepath.Join(os.TempDir(), "caracal-dev"), "where dev keeps its ledger signing key")
	return c
}

const devUpstreamKeyEnv = "CARACAL_DEV_UPSTREAM_KEY"

func (a *app) dev(ctx context.Context, f *devFlags) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	pool, err := a.db(ctx)
	if err != nil {
		return fmt.Errorf("%w (start PostgreSQL with: scripts/services.sh up pg redis)", err)
	}
	if _, err := store.MigrateUp(ctx, pool); err != nil {
		return err
	}

	t := cfg.Kafka.Topics
	kf, err := kfake.NewCluster(kfake.Ports(f.kafkaPort), kfake.SeedTopics(3, t.Metering, t.Decisions, t.Audit, t.DLQ))
	if err != nil {
		return fmt.Errorf("cannot start the embedded Kafka on port %d: %w", f.kafkaPort, err)
	}
	defer kf.Close()
	cfg.Kafka.Brokers = kf.ListenAddrs()

	mock := mockupstream.New(mockupstream.Options{OutputTokens: 24, Chunks: 4, ChunkDelay: 50 * time.Millisecond})
	mln, err := net.Listen("tcp", f.mockListen)
	if err != nil {
		return fmt.Errorf("cannot listen on --mock-listen %s: %w", f.mockListen, err)
	}
	go mock.Serve(mln) //nolint:errcheck // ends at Close below
	defer mock.Close()

	key, err := seedDemo(ctx, pool, "http://"+mln.Addr().String()+"/v1")
	if err != nil {
		return err
	}
	os.Setenv(devUpstreamKeyEnv, "sk-dev-mock-upstream") //nolint:errcheck

	signer, err := devSignerKey(f.stateDir)
	if err != nil {
		return err
	}

	cfg.Gateway.Listen, cfg.Gateway.AdminListen, cfg.Gateway.Plaintext = f.listen, f.adminListen, true
	rg, err := gateway.Start(ctx, cfg, pool)
	if err != nil {
		return err
	}

	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, which := range []string{"ledger", "metrics", "audit"} {
		cf := &consumeFlags{signerKeyFile: signer, checkpointEvery: 1000, checkpointInterval: 2 * time.Second,
			sealBatch: 20000, verifyInterval: time.Minute, verifySample: 100}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.consume(cctx, which, cf); err != nil && cctx.Err() == nil {
				errs <- fmt.Errorf("consumer %s: %w", which, err)
				cancel()
			}
		}()
	}

	fmt.Fprintf(a.stdout, `
Caracal dev stack is up (Ctrl-C to stop):
  gateway        http://%s   (plaintext: dev only)
  admin          http://%s/metrics  /healthz  /readyz
  mock upstream  http://%s   (OpenAI-compatible)
  kafka (kfake)  %s
  agent          demo-agent (parent demo-org), daily budget 2.00 USD

Send a first request through the gateway:

  curl -s http://%s/openai/chat/completions \
    -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'

See its metering event, then the ledger and the spend:

  bin/caracal events tail --set kafka.brokers=%s --max 10
  bin/caracal ledger summary --agent demo-agent
`, rg.Addr, rg.AdminAddr, mln.Addr(), strings.Join(cfg.Kafka.Brokers, ","), rg.Addr, key, strings.Join(cfg.Kafka.Brokers, ","))

	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	cancel()
	stopErr := rg.Stop(cfg.Gateway.ShutdownTimeout.D())
	wg.Wait()
	return errors.Join(err, stopErr)
}

// seedDemo creates (once) the demo agents, budgets, route and prices, and a
// fresh API key for this run, whose secret it returns.
func seedDemo(ctx context.Context, db store.Execer, upstream string) (string, error) {
	if _, err := store.ResolveAgent(ctx, db, "demo-org"); errors.Is(err, store.ErrNotFound) {
		if _, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "demo-org"}); err != nil {
			return "", err
		}
	}
	if _, err := store.ResolveAgent(ctx, db, "demo-agent"); errors.Is(err, store.ErrNotFound) {
		if _, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "demo-agent", Parent: "demo-org", RateLimitRPS: 50, RateLimitBurst: 100}); err != nil {
			return "", err
		}
	}
	steps := []func() error{
		func() error {
			_, err := store.SetPolicy(ctx, db, store.PolicySpec{Agent: "demo-org", LimitMicros: 10_000_000, Currency: "USD", Window: "daily", Active: true, Reason: "caracal dev demo"})
			return err
		},
		func() error {
			_, err := store.SetPolicy(ctx, db, store.PolicySpec{Agent: "demo-agent", LimitMicros: 2_000_000, Currency: "USD", Window: "daily", Active: true, Reason: "caracal dev demo"})
			return err
		},
		func() error {
			_, err := store.SetRoute(ctx, db, store.RouteSpec{Name: "openai", Prefix: "/openai", UpstreamURLs: []string{upstream},
				CredentialRef: "env:" + devUpstreamKeyEnv, Provider: "openai", Pricing: "tokens", StripPrefix: true})
			return err
		},
		func() error {
			_, err := store.SetPrice(ctx, db, store.PriceSpec{Resource: "openai", Model: "gpt-4o-mini", Unit: "input_mtok", PriceMicros: 150_000, Currency: "USD"})
			return err
		},
		func() error {
			_, err := store.SetPrice(ctx, db, store.PriceSpec{Resource: "openai", Model: "gpt-4o-mini", Unit: "output_mtok", PriceMicros: 600_000, Currency: "USD"})
			return err
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return "", fmt.Errorf("cannot create the demo data: %w", err)
		}
	}
	k, err := store.CreateKey(ctx, db, store.NewKey{Agent: "demo-agent", Name: "caracal dev"})
	if err != nil {
		return "", err
	}
	return k.Key, nil
}

// devSignerKey returns the path of the dev ledger signing key, creating it
// once.
func devSignerKey(dir string) (string, error) {
	path := filepath.Join(dir, "ledger-signer.key")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot create --state-dir: %w", err)
	}
	s, v, err := ledger.GenerateKey("caracal-dev-ledger")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(dir, "ledger-verifier.key"), []byte(v+"\n"), 0o644)
}
