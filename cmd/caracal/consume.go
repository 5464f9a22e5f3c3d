package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/caracal-gw/caracal/consumers/recovery"
	"github.com/caracal-gw/caracal/internal/kafkaopt"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/caracal-gw/caracal/consumers/aggregate"
	"github.com/caracal-gw/caracal/consumers/audit"
	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
)

func init() { extraCommands = append(extraCommands, newConsumeCmd) }

// consumeFlags are the flags of `caracal consume`.
type consumeFlags struct {
	group, metricsListen string
	// ledger
	signerKeyFile      string
	noSeal             bool
	checkpointEvery    int64
	checkpointInterval time.Duration
	sealBatch          int
	verifyInterval     time.Duration
	verifySample       int
}

func newConsumeCmd(a *app) *cobra.Command {
	var cf consumeFlags
	c := &cobra.Command{
		Use:       "consume ledger|metrics|audit",
		Short:     "Run a consumer: the ledger writer (+ Merkle sealer), the metrics aggregator or the audit logger",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"ledger", "metrics", "audit"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.consume(cmd.Context(), args[0], &cf)
		},
	}
	f := c.Flags()
	f.StringVar(&cf.group, "group", "", "consumer group (default <kafka.consumer.groupPrefix>-<consumer>)")
	f.StringVar(&cf.metricsListen, "metrics-listen", "", "serve /metrics, /healthz and /readyz on this address")
	f.StringVar(&cf.signerKeyFile, "signer-key-file", "", "ledger: checkpoint signer key file (else env "+signerKeyEnv+")")
	f.BoolVar(&cf.noSeal, "no-seal", false, "ledger: write entries only; another replica seals")
	f.Int64Var(&cf.checkpointEvery, "checkpoint-every", 0, "ledger: sign a checkpoint after this many new entries (0: config ledger.checkpointEvery, default 10000)")
	f.DurationVar(&cf.checkpointInterval, "checkpoint-interval", 0, "ledger: or after this long when entries were added (0: config ledger.checkpointInterval, default 2s)")
	f.IntVar(&cf.sealBatch, "seal-batch", 20000, "ledger: entries sealed per transaction")
	f.DurationVar(&cf.verifyInterval, "verify-interval", time.Minute, "ledger: background verification every this long (0: off)")
	f.IntVar(&cf.verifySample, "verify-sample", 100, "ledger: entries checked per background verification")
	return c
}

// consumerParts is what one consumer runs besides its runner.
type consumerParts struct {
	handler runner.Handler
	topics  []string
	extra   []func(context.Context) error
	// batchMax bounds a batch across polls (0: one poll per batch).
	batchMax int
}

func (a *app) consume(ctx context.Context, which string, cf *consumeFlags) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if cf.group == "" {
		cf.group = cfg.Kafka.Consumer.GroupPrefix + "-" + which
	}
	parts, cleanup, err := a.consumerParts(ctx, cfg, which, cf)
	if err != nil {
		return err
	}
	defer cleanup()
	r, err := runner.New(cfg, parts.handler, runner.Options{Name: which, Group: cf.group, Topics: parts.topics,
		DLQTopic: cfg.Kafka.Topics.DLQ, MaxPollRecords: cfg.Kafka.Consumer.MaxPollRecords, BatchMaxRecords: parts.batchMax})
	if err != nil {
		return err
	}
	defer r.Close()
	if cf.metricsListen != "" {
		stop, err := serveMetrics(cf.metricsListen, r.Healthy)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintf(a.stderr, "caracal consume %s: group %s, topics %v\n", which, cf.group, parts.topics)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(parts.extra)+1)
	for i, run := range append(parts.extra, r.Run) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = run(ctx)
			cancel()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (a *app) consumerParts(ctx context.Context, cfg *config.Config, which string, cf *consumeFlags) (*consumerParts, func(), error) {
	nop := func() {}
	switch which {
	case "ledger":
		pool, err := a.db(ctx)
		if err != nil {
			return nil, nop, err
		}
		p := &consumerParts{handler: ledger.NewWriter(pool, cf.group), topics: []string{cfg.Kafka.Topics.Metering},
			batchMax: cfg.Ledger.BatchMaxRecords}
		if !cf.noSeal {
			s, v, err := ledger.LoadSigner(cf.signerKeyFile, signerKeyEnv)
			if err != nil {
				return nil, nop, err
			}
			opts, err := sealerOptions(cfg, cf)
			if err != nil {
				return nil, nop, err
			}
			opts.Signer = s
			sealer := ledger.NewSealer(pool, opts)
			p.extra = append(p.extra, sealer.Run)
			if cf.verifyInterval > 0 {
				p.extra = append(p.extra, func(ctx context.Context) error { return backgroundVerify(ctx, pool, v, cf) })
			}
		}
		return p, nop, nil
	case "audit":
		pool, err := a.db(ctx)
		if err != nil {
			return nil, nop, err
		}
		return &consumerParts{handler: audit.New(pool, cf.group), topics: []string{cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit}}, nop, nil
	case "metrics":
		pool, err := a.db(ctx)
		if err != nil {
			return nil, nop, err
		}
		rc, err := budget.NewClient(cfg.Redis)
		if err != nil {
			return nil, nop, err
		}
		adm, err := kgo.NewClient(kafkaopt.Client(cfg)...)
		if err != nil {
			rc.Close()
			return nil, nop, fmt.Errorf("cannot connect to Kafka: %w", err)
		}
		st := budget.NewStore(rc)
		agg := aggregate.New(st, cf.group)
		// Records the gateway's spool drain produced may repeat an event
		// id: the aggregator applies the copy the ledger kept, after the
		// ledger writer has passed them.
		ledgerGroup := cfg.Kafka.Consumer.GroupPrefix + "-ledger"
		agg.LedgerPool, agg.LedgerGroup = pool, ledgerGroup
		// When the totals are missing (a fresh install, Redis lost its
		// data), rebuild them from the ledger before applying a batch, then
		// set the ready key that lets gateways serve.
		ar := &recovery.AutoReconciler{Pool: pool, Store: st, Admin: kadm.NewClient(adm),
			Opt: recovery.ReconcileOptions{Topic: cfg.Kafka.Topics.Metering, Group: cf.group,
				LedgerGroup: ledgerGroup, Wait: 5 * time.Minute, ReadyKey: cfg.Redis.BudgetReadyKey, Kafka: cfg}}
		agg.Guard = ar.Guard
		p := &consumerParts{handler: agg, topics: []string{cfg.Kafka.Topics.Metering}, extra: []func(context.Context) error{ar.Run}}
		if n := cfg.Aggregator.SpendGaugeMaxAgents; n > 0 {
			// caracal_agent_spend_micros{agent,window} for the n agents with
			// the most spend this month (aggregator.spendGaugeMaxAgents),
			// read from the spend buckets every aggregator.spendGaugeInterval.
			sg := &aggregate.SpendGauges{Store: st, Agents: aggregate.ListAgents(pool), MaxAgents: n,
				Interval: cfg.Aggregator.SpendGaugeInterval.D()}
			p.extra = append(p.extra, sg.Run)
		}
		if sc := cfg.Snapshots; sc.Schedule > 0 {
			// Scheduled snapshots with retention (snapshots.schedule,
			// snapshots.retention); replicas skip a tick another just took.
			g := recoveryGroups{aggregator: cf.group}
			opt := snapshotOptions(cfg, &g, 5*time.Minute)
			p.extra = append(p.extra, func(ctx context.Context) error {
				return recovery.Schedule(ctx, pool, kadm.NewClient(adm), opt, sc.Schedule.D(), sc.Retention, slog.Default())
			})
		}
		return p, func() { adm.Close(); rc.Close() }, nil
	}
	return nil, nop, fmt.Errorf("unknown consumer %q: want ledger, metrics or audit", which)
}

// sealerOptions returns the sealer's settings: the checkpoint rule of the
// config (ledger.checkpointEvery, ledger.checkpointInterval), each replaced
// by its flag when the flag is given (non-zero).
func sealerOptions(cfg *config.Config, cf *consumeFlags) (ledger.SealerOptions, error) {
	switch {
	case cf.checkpointEvery < 0:
		return ledger.SealerOptions{}, fmt.Errorf("--checkpoint-every must be positive, not %d", cf.checkpointEvery)
	case cf.checkpointInterval < 0:
		return ledger.SealerOptions{}, fmt.Errorf("--checkpoint-interval must be positive, not %s", cf.checkpointInterval)
	}
	o := ledger.SealerOptions{CheckpointEvery: cfg.Ledger.CheckpointEvery,
		CheckpointInterval: cfg.Ledger.CheckpointInterval.D(), BatchSize: cf.sealBatch}
	if cf.checkpointEvery > 0 {
		o.CheckpointEvery = cf.checkpointEvery
	}
	if cf.checkpointInterval > 0 {
		o.CheckpointInterval = cf.checkpointInterval
	}
	return o, nil
}

// backgroundVerify samples sealed entries and the latest checkpoint; a
// problem increments caracal_merkle_verification_failures_total.
func backgroundVerify(ctx context.Context, pool *pgxpool.Pool, v note.Verifier, cf *consumeFlags) error {
	t := time.NewTicker(cf.verifyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p, err := ledger.VerifySample(ctx, pool, v, cf.verifySample)
		switch {
		case err != nil && ctx.Err() == nil:
			slog.Warn("background verification could not run", "err", err)
		case p != nil:
			slog.Error("LEDGER VERIFICATION FAILED", "problem", p.Error())
		}
	}
}

// serveMetrics serves the consumer's metrics and health on addr.
func serveMetrics(addr string, healthy func() bool) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on --metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { metrics.WritePrometheus(w, true) })
	health := func(w http.ResponseWriter, _ *http.Request) {
		if !healthy() {
			http.Error(w, "batches keep failing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux.HandleFunc("/healthz", health)
	mux.HandleFunc("/readyz", health)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	return func() { srv.Close() }, nil
}
