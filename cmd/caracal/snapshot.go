package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/consumers/recovery"
	"github.com/caracal-gw/caracal/internal/config"
)

func init() { extraCommands = append(extraCommands, newSnapshotCmd) }

func newSnapshotCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "snapshot",
		Short: "Snapshots of the ledger head, the spend totals and the consumer offsets: create, list, restore, schedule",
	}
	c.AddCommand(newSnapshotCreateCmd(a), newSnapshotListCmd(a), newSnapshotRestoreCmd(a), newSnapshotScheduleCmd(a))
	return c
}

func snapshotOptions(cfg *config.Config, g *recoveryGroups, wait time.Duration) recovery.SnapshotOptions {
	g.defaults(cfg)
	return recovery.SnapshotOptions{Topic: cfg.Kafka.Topics.Metering, Group: g.aggregator, LedgerGroup: g.ledger, Wait: wait,
		Topics: []string{cfg.Kafka.Topics.Metering, cfg.Kafka.Topics.Decisions, cfg.Kafka.Topics.Audit}}
}

func snapshotRow(s recovery.Snapshot) []string {
	return []string{s.ID, s.CreatedAt.UTC().Format(time.RFC3339), strconv.FormatInt(s.LedgerSize, 10), strconv.FormatInt(s.TreeSize, 10),
		strconv.FormatInt(s.Entries, 10), strconv.FormatInt(s.SpendMicros, 10), strconv.Itoa(len(s.Offsets))}
}

var snapshotHeader = []string{"ID", "CREATED", "LEDGER SIZE", "CHECKPOINT SIZE", "ENTRIES COUNTED", "SPEND MICROS", "OFFSETS"}

func newSnapshotCreateCmd(a *app) *cobra.Command {
	var g recoveryGroups
	var wait time.Duration
	c := &cobra.Command{
		Use:   "create",
		Short: "Record the ledger size and latest signed checkpoint, the spend per agent and bucket, and every consumer group's offsets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			env, err := a.openRecovery(ctx, false)
			if err != nil {
				return err
			}
			defer env.close()
			cfg, pool, adm := env.cfg, env.pool, env.adm
			s, err := recovery.CreateSnapshot(ctx, pool, adm, snapshotOptions(cfg, &g, wait))
			if err != nil {
				return err
			}
			return a.print(s, snapshotHeader, [][]string{snapshotRow(*s)})
		},
	}
	g.flags(c)
	c.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the ledger to reach the aggregator's offsets")
	return c
}

func newSnapshotListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List snapshots, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			list, err := recovery.ListSnapshots(cmd.Context(), pool)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(list))
			for _, s := range list {
				rows = append(rows, snapshotRow(s))
			}
			return a.print(list, snapshotHeader, rows)
		},
	}
}

func newSnapshotRestoreCmd(a *app) *cobra.Command {
	var id, key, readyKey string
	var allGroups bool
	c := &cobra.Command{
		Use:   "restore --snapshot-id ID",
		Short: "Verify the snapshot's checkpoint against the ledger, then put the Redis spend totals and the aggregator's offsets back",
		Long: `Verifies the snapshot's signed checkpoint with the verifier key, checks the
ledger still holds it and recomputes the ledger up to it; then resets every
tree in Redis to the snapshot's spend, sets the fences and commits the
snapshot's offsets for the MetricsAggregator group (stop the aggregator
first). Then run: caracal replay start --from-snapshot ID.
ID may be snapshot-latest.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := a.config()
			if err != nil {
				return err
			}
			pool, err := a.db(ctx)
			if err != nil {
				return err
			}
			s, err := recovery.GetSnapshot(ctx, pool, id)
			if err != nil {
				return err
			}
			if s.TreeSize > 0 {
				v, err := ledger.LoadVerifier(key)
				if err != nil {
					return err
				}
				if err := recovery.VerifySnapshot(ctx, pool, s, v, a.progress("verified")); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "snapshot %s: checkpoint of %d entries verified against the ledger\n", s.ID, s.TreeSize)
			}
			st, adm, closeAll, err := storeAndAdmin(cfg)
			if err != nil {
				return err
			}
			defer closeAll()
			err = recovery.Restore(ctx, pool, st, adm, s, recovery.RestoreOptions{ReadyKey: readyKey, AllGroups: allGroups,
				Progress: a.treeProgress("restored")})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "snapshot %s restored: %d spend buckets; aggregator group %s set to the snapshot's offsets\n", s.ID, len(s.Spend), s.AggregatorGroup)
			return a.print(s, snapshotHeader, [][]string{snapshotRow(*s)})
		},
	}
	c.Flags().StringVar(&id, "snapshot-id", "", "snapshot id, or snapshot-latest")
	c.MarkFlagRequired("snapshot-id") //nolint:errcheck
	verifierFlag(c, &key)
	c.Flags().StringVar(&readyKey, "ready-key", recovery.DefaultReadyKey, "Redis key that tells gateways the totals are complete")
	c.Flags().BoolVar(&allGroups, "all-groups", false, "also put back the Kafka offsets of every other group in the snapshot")
	return c
}

func newSnapshotScheduleCmd(a *app) *cobra.Command {
	var g recoveryGroups
	var interval time.Duration
	var retain int
	c := &cobra.Command{
		Use:   "schedule",
		Short: "Take a snapshot every --interval and keep the newest --retain (runs until stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 || retain <= 0 {
				return fmt.Errorf("--interval and --retain must be positive")
			}
			ctx := cmd.Context()
			env, err := a.openRecovery(ctx, false)
			if err != nil {
				return err
			}
			defer env.close()
			cfg, pool, adm := env.cfg, env.pool, env.adm
			return recovery.Schedule(ctx, pool, adm, snapshotOptions(cfg, &g, 2*time.Minute), interval, retain, slog.Default())
		},
	}
	g.flags(c)
	c.Flags().DurationVar(&interval, "interval", time.Hour, "time between snapshots")
	c.Flags().IntVar(&retain, "retain", 48, "snapshots kept")
	return c
}
