package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/consumers/dlq"
)

func init() { extraCommands = append(extraCommands, newDLQCmd) }

func newDLQCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq",
		Short: "Replay the dead-letter topic (list its records with: caracal events tail --topic <kafka.topics.dlq>)",
	}
	c.AddCommand(newDLQReplayCmd(a))
	return c
}

func newDLQReplayCmd(a *app) *cobra.Command {
	var opt dlq.Options
	c := &cobra.Command{
		Use:   "replay",
		Short: "Re-produce the DLQ records into the topics they came from",
		Long: `Reads kafka.topics.dlq and re-produces each record's original key, value and
headers (without the DLQ headers) to its source topic, which must be one of
Caracal's topics (kafka.topics.metering, decisions, audit); a record from any
other topic, or without the consumers' DLQ headers, is refused and reported.
Use it once the consumers that rejected the records can read them (an
upgrade for a newer event version): replaying everything is the usual case.

Safe to run again: progress is kept per source topic in the consumer groups
<kafka.consumer.groupPrefix>-dlq-replay-metering, -decisions and -audit on the
DLQ topic, and committed only after the replayed records are acknowledged
(acks=all, idempotent producer). A second run replays nothing already
replayed; a run that crashes replays at most its last batch (up to 500
records) again. Run one replay at a time.

A run reads up to the DLQ's end offsets at its start. Several consumers read
the metering topic and each sends its own copy of a rejected record to the
DLQ: copies of the same source record (topic, partition, offset) are
replayed once per run. The ledger keeps one entry per event id whatever is
replayed; the MetricsAggregator counts every record it reads, so run
"caracal reconcile" after a replay (docs/runbook.md).

A record its consumer still rejects goes back to the DLQ (visible as DLQ
growth) carrying the header caracal-dlq-replayed; later runs report it as
"returned" and do not replay it again unless --force. --skip-undecodable
passes over, for good, the records this binary cannot decode (use the same
version as the consumers).

Output: one line per record handled (DLQ partition@offset, action, source
topic/partition@offset, event id or why it does not decode, the consumer's
error), progress on stderr, then a summary.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.Max < 0 {
				return fmt.Errorf("--max must not be negative")
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			opt.OnRecord = func(r dlq.Record) {
				if a.output == "json" {
					enc.Encode(r) //nolint:errcheck
					return
				}
				id := r.EventID
				if id == "" {
					id = "undecodable: " + r.DecodeErr
				}
				note := ""
				if r.Note != "" {
					note = " (" + r.Note + ")"
				}
				fmt.Fprintf(a.stdout, "%d@%d %s%s source=%s/%d@%d consumer=%s event=%s error=%q\n", r.Partition, r.Offset,
					r.Action, note, r.SourceTopic, r.SourcePartition, r.SourceOffset, r.Consumer, id, r.Error)
			}
			opt.Progress = func(read, total int64, replayed int) {
				verb := "replayed"
				if opt.DryRun {
					verb = "would replay"
				}
				fmt.Fprintf(a.stderr, "dlq replay: read %d/%d DLQ records, %s %d\n", read, total, verb, replayed)
			}
			rep, err := dlq.Replay(cmd.Context(), cfg, opt)
			if rep != nil {
				verb := "replayed"
				if opt.DryRun {
					verb = "dry run, would replay"
				}
				fmt.Fprintf(a.stderr, "dlq replay: %s %d; duplicates %d, returned %d, refused %d, undecodable skipped %d, not selected %d, already replayed %d\n",
					verb, rep.Replayed, rep.Duplicates, rep.Returned, rep.Refused, rep.Undecodable, rep.Skipped, rep.Done)
				if rep.Stopped != "" {
					fmt.Fprintf(a.stderr, "dlq replay: stopped: %s\n", rep.Stopped)
				}
				if !opt.DryRun && rep.Replayed > 0 {
					fmt.Fprintln(a.stderr, "dlq replay: run `caracal reconcile` (MetricsAggregator stopped) to take records read twice out of the budget totals")
				}
			}
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&opt.Max, "max", 0, "stop after replaying this many records (0: all)")
	f.StringVar(&opt.Topic, "topic", "", "replay only records from this source topic (name, or metering|decisions|audit); the others stay for a later run")
	f.BoolVar(&opt.DryRun, "dry-run", false, "list what would be replayed; produce and commit nothing")
	f.BoolVar(&opt.Force, "force", false, "also replay records that came back to the DLQ after a replay")
	f.BoolVar(&opt.SkipUndecodable, "skip-undecodable", false, "pass over (for good) records this binary cannot decode")
	f.StringVar(&opt.GroupPrefix, "group-prefix", "", "prefix of the progress groups (default kafka.consumer.groupPrefix)")
	f.StringVar(&opt.DLQ, "dlq-topic", "", "dead-letter topic (default kafka.topics.dlq)")
	f.DurationVar(&opt.Idle, "idle", 10*time.Second, "stop when no record arrives for this long before the end offsets")
	return c
}
