package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/kafkaopt"
)

func init() { extraCommands = append(extraCommands, newEventsCmd) }

func newEventsCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "events", Short: "Inspect the records on Caracal's Kafka topics"}
	var max int
	var wait time.Duration
	var topic string
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print metering events (or another topic's records) from the beginning, decoded",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if max < 1 {
				return fmt.Errorf("--max must be at least 1")
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if topic == "" {
				topic = cfg.Kafka.Topics.Metering
			}
			cl, err := kgo.NewClient(append(kafkaopt.Client(cfg), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
			if err != nil {
				return fmt.Errorf("cannot connect to Kafka: %w", err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			n := 0
			for n < max && ctx.Err() == nil {
				fs := cl.PollRecords(ctx, max-n)
				fs.EachRecord(func(r *kgo.Record) {
					n++
					a.printRecord(topic, r)
				})
			}
			if n == 0 {
				fmt.Fprintf(a.stderr, "no records on %s within %s\n", topic, wait)
			}
			return nil
		},
	}
	tail.Flags().IntVar(&max, "max", 20, "stop after this many records")
	tail.Flags().DurationVar(&wait, "wait", 5*time.Second, "stop after this long")
	tail.Flags().StringVar(&topic, "topic", "", "topic (default kafka.topics.metering)")
	c.AddCommand(tail)
	return c
}

func (a *app) printRecord(topic string, r *kgo.Record) {
	var m event.Metering
	if err := event.DecodeMetering(r.Value, &m); err != nil {
		// Decisions and audit records, or anything else: print as is.
		fmt.Fprintf(a.stdout, "%s/%d@%d %s\n", topic, r.Partition, r.Offset, r.Value)
		return
	}
	if a.output == "json" {
		fmt.Fprintf(a.stdout, "%s\n", r.Value)
		return
	}
	fmt.Fprintf(a.stdout, "%s  agent=%s route=%s model=%s tokens=%d/%d cost=%d %s status=%d pricing=%s\n",
		time.UnixMicro(m.TimeUnixUs).UTC().Format(time.RFC3339Nano), m.Agent, m.Route, m.Model, m.InputTokens, m.OutputTokens,
		m.CostMicros, m.Currency[:], m.Status, m.Pricing)
}
