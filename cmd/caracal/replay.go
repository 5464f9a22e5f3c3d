package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/consumers/recovery"
)

func init() { extraCommands = append(extraCommands, newReplayCmd) }

func newReplayCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "replay",
		Short: "Re-consume the metering topic into the spend aggregates",
	}
	c.AddCommand(newReplayStartCmd(a))
	return c
}

func newReplayStartCmd(a *app) *cobra.Command {
	var (
		g        recoveryGroups
		snapID   string
		ts       string
		timeout  time.Duration
		readyKey string
	)
	c := &cobra.Command{
		Use:   "start --from-snapshot ID | --timestamp T",
		Short: "Run the MetricsAggregator from a snapshot's offsets (or a point in time) up to the topic's end",
		Long: `--from-snapshot ID (or snapshot-latest): starts the MetricsAggregator group at
the snapshot's offsets (restore the snapshot first: caracal snapshot restore)
and consumes up to the end offsets seen at the start, so the aggregates reach
the state of an undisturbed run.
--timestamp T (RFC 3339): rebuilds the totals from the ledger below the
offsets at T (a reconcile at T), then consumes from there.
Stop the deployed MetricsAggregator first; start it again afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (snapID == "") == (ts == "") {
				return fmt.Errorf("give exactly one of --from-snapshot and --timestamp")
			}
			ctx := cmd.Context()
			env, err := a.openRecovery(ctx, true)
			if err != nil {
				return err
			}
			defer env.close()
			cfg, pool, st, adm := env.cfg, env.pool, env.st, env.adm
			g.defaults(cfg)
			var start map[int32]int64
			if snapID != "" {
				s, err := recovery.GetSnapshot(ctx, pool, snapID)
				if err != nil {
					return err
				}
				start = s.Resume()
				fmt.Fprintf(a.stderr, "replaying from snapshot %s\n", s.ID)
			} else {
				t, err := time.Parse(time.RFC3339, ts)
				if err != nil {
					return fmt.Errorf("cannot parse --timestamp: %w", err)
				}
				if start, err = recovery.OffsetsAt(ctx, adm, cfg.Kafka.Topics.Metering, t); err != nil {
					return err
				}
				rep, err := recovery.Reconcile(ctx, pool, st, adm, recovery.ReconcileOptions{Topic: cfg.Kafka.Topics.Metering,
					Group: g.aggregator, LedgerGroup: g.ledger, Resume: start, ReadyKey: readyKey, Kafka: cfg})
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "totals rebuilt from %d ledger entries before %s; replaying from there\n", rep.Entries, t.Format(time.RFC3339))
			}
			err = recovery.Replay(ctx, cfg, st, adm, recovery.ReplayOptions{Topic: cfg.Kafka.Topics.Metering, Group: g.aggregator,
				DLQ: cfg.Kafka.Topics.DLQ, Start: start, Timeout: timeout, Progress: a.recordProgress("replayed"),
				LedgerPool: pool, LedgerGroup: g.ledger})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stderr, "replay complete: the MetricsAggregator can be started again")
			return nil
		},
	}
	g.flags(c)
	c.Flags().StringVar(&snapID, "from-snapshot", "", "snapshot id, or snapshot-latest")
	c.Flags().StringVar(&ts, "timestamp", "", "replay from this time (RFC 3339)")
	c.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long")
	c.Flags().StringVar(&readyKey, "ready-key", recovery.DefaultReadyKey, "Redis key that tells gateways the totals are complete")
	return c
}

// recordProgress shows "what done/total records" on a terminal.
func (a *app) recordProgress(what string) func(done, total int64) {
	f, ok := a.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	last := int64(-1)
	return func(done, total int64) {
		if done == last {
			return
		}
		last = done
		fmt.Fprintf(f, "\r%s %d/%d records", what, done, total)
		if done >= total {
			fmt.Fprintln(f)
		}
	}
}
