package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/recovery"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
)

func init() { extraCommands = append(extraCommands, newReconcileCmd) }

// recoveryGroups are the consumer groups recovery works with.
type recoveryGroups struct {
	aggregator, ledger string
}

func (g *recoveryGroups) flags(c *cobra.Command) {
	c.Flags().StringVar(&g.aggregator, "aggregator-group", "", "MetricsAggregator group (default <kafka.consumer.groupPrefix>-metrics)")
	c.Flags().StringVar(&g.ledger, "ledger-group", "", "LedgerWriter group (default <kafka.consumer.groupPrefix>-ledger)")
}

func (g *recoveryGroups) defaults(cfg *config.Config) {
	if g.aggregator == "" {
		g.aggregator = cfg.Kafka.Consumer.GroupPrefix + "-metrics"
	}
	if g.ledger == "" {
		g.ledger = cfg.Kafka.Consumer.GroupPrefix + "-ledger"
	}
}

// storeAndAdmin connects the budget store and a Kafka administration
// client, what the recovery commands need beside the pool; close releases
// both.
func storeAndAdmin(cfg *config.Config) (*budget.Store, *kadm.Client, func(), error) {
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		return nil, nil, nil, err
	}
	adm, closeAdm, err := kafkaAdmin(cfg)
	if err != nil {
		rc.Close()
		return nil, nil, nil, err
	}
	return budget.NewStore(rc), adm, func() { closeAdm(); rc.Close() }, nil
}

// recoveryEnv is what a recovery command opens: the configuration, the
// database and a Kafka admin client, plus the budget store when asked.
type recoveryEnv struct {
	cfg   *config.Config
	pool  *pgxpool.Pool
	st    *budget.Store // nil unless asked for
	adm   *kadm.Client
	close func()
}

func (a *app) openRecovery(ctx context.Context, withStore bool) (*recoveryEnv, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	pool, err := a.db(ctx)
	if err != nil {
		return nil, err
	}
	e := &recoveryEnv{cfg: cfg, pool: pool}
	if withStore {
		e.st, e.adm, e.close, err = storeAndAdmin(cfg)
	} else {
		e.adm, e.close, err = kafkaAdmin(cfg)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// kafkaAdmin connects an administration client.
func kafkaAdmin(cfg *config.Config) (*kadm.Client, func(), error) {
	opts, err := kafkaAdminOpts(cfg.Kafka)
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create a Kafka client: %w", err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}

func newReconcileCmd(a *app) *cobra.Command {
	var (
		groups   recoveryGroups
		root     string
		wait     time.Duration
		readyKey string
	)
	c := &cobra.Command{
		Use:   "reconcile",
		Short: "Rebuild the Redis spend totals of every tree (or --root) from the ledger",
		Long: `Rebuilds the committed spend buckets in Redis from the ledger: the entries
below the offsets the MetricsAggregator resumes from (its committed offsets in
Kafka), summed per agent and ancestor and bucket; then sets each tree's fences
just below those offsets so the aggregator resumes without counting twice, and
sets the ready key gateways check. Stop the MetricsAggregator first
(kubectl scale deploy/caracal-metrics --replicas=0), or let it reconcile by
itself: it does when it finds the ready key missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			env, err := a.openRecovery(ctx, true)
			if err != nil {
				return err
			}
			defer env.close()
			cfg, pool, st, adm := env.cfg, env.pool, env.st, env.adm
			groups.defaults(cfg)
			opt := recovery.ReconcileOptions{Topic: cfg.Kafka.Topics.Metering, Group: groups.aggregator, LedgerGroup: groups.ledger,
				Wait: wait, ReadyKey: readyKey, Progress: a.treeProgress("reconciled"), Kafka: cfg}
			if root != "" {
				id, err := a.agentRef(ctx, root)
				if err != nil {
					return err
				}
				opt.Roots = []event.UUID{*id}
			}
			rep, err := recovery.Reconcile(ctx, pool, st, adm, opt)
			if err != nil {
				return err
			}
			var rows [][]string
			parts := make([]int, 0, len(rep.Resume))
			for p := range rep.Resume {
				parts = append(parts, int(p))
			}
			sort.Ints(parts)
			for _, p := range parts {
				rows = append(rows, []string{strconv.Itoa(p), strconv.FormatInt(rep.Resume[int32(p)], 10)})
			}
			fmt.Fprintf(a.stderr, "%d trees, %d buckets from %d ledger entries (%d micro-units); %d leases that lost their record reserved again for %d events not applied yet\n",
				rep.Roots, rep.Buckets, rep.Entries, rep.Micros, rep.PendingLeases, rep.Pending)
			return a.print(rep, []string{"PARTITION", "AGGREGATOR RESUMES AT"}, rows)
		},
	}
	groups.flags(c)
	c.Flags().StringVar(&root, "root", "", "only this tree (root agent name or id)")
	c.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the ledger to reach the aggregator's offsets")
	c.Flags().StringVar(&readyKey, "ready-key", recovery.DefaultReadyKey, "Redis key that tells gateways the totals are complete")
	return c
}

// treeProgress shows "what i/n trees" on a terminal.
func (a *app) treeProgress(what string) func(done, total int) {
	f, ok := a.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	return func(done, total int) {
		fmt.Fprintf(f, "\r%s %d/%d trees", what, done, total)
		if done >= total {
			fmt.Fprintln(f)
		}
	}
}
