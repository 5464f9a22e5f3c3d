package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() { extraCommands = append(extraCommands, newKafkaCmd) }

// topicResult is one line of `kafka create-topics`.
type topicResult struct {
	Topic             string `json:"topic"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int16  `json:"replication_factor"`
	MinInsyncReplicas int    `json:"min_insync_replicas"`
	RetentionMs       int64  `json:"retention_ms"`
	Status            string `json:"status"` // created or exists
}

func newKafkaCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "kafka", Short: "Kafka administration"}
	var partitions, rf, minISR int
	var retention time.Duration
	create := &cobra.Command{
		Use:   "create-topics",
		Short: "Create the metering, decisions, audit and dead-letter topics (existing ones are left as they are)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			t := cfg.Kafka.Topics
			fl := cmd.Flags()
			if !fl.Changed("partitions") {
				partitions = t.Partitions
			}
			if !fl.Changed("replication-factor") {
				rf = t.ReplicationFactor
			}
			if !fl.Changed("min-insync-replicas") {
				minISR = t.MinInsyncReplicas
			}
			if !fl.Changed("retention") {
				retention = t.Retention.D()
			}
			switch {
			case partitions < 1 || partitions > 1<<20:
				return fmt.Errorf("--partitions must be at least 1, not %d", partitions)
			case rf < 1 || rf > 32767:
				return fmt.Errorf("--replication-factor must be at least 1, not %d", rf)
			case minISR < 1 || minISR > rf:
				return fmt.Errorf("--min-insync-replicas must be from 1 to the replication factor %d, not %d", rf, minISR)
			case retention < time.Millisecond:
				return fmt.Errorf("--retention must be at least 1ms, not %s", retention)
			}
			opts, err := kafkaAdminOpts(cfg.Kafka)
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return fmt.Errorf("cannot create the Kafka client: %w", err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), kafkaAdminTimeout)
			defer cancel()
			want := topicResult{Partitions: int32(partitions), ReplicationFactor: int16(rf),
				MinInsyncReplicas: minISR, RetentionMs: retention.Milliseconds()}
			out, err := createTopics(ctx, kadm.NewClient(cl), want, t.Metering, t.Decisions, t.Audit, t.DLQ)
			if err != nil {
				return fmt.Errorf("cannot create topics on %v: %w", cfg.Kafka.Brokers, err)
			}
			rows := make([][]string, 0, len(out))
			for _, r := range out {
				rows = append(rows, []string{r.Topic, r.Status, strconv.Itoa(int(r.Partitions)), strconv.Itoa(int(r.ReplicationFactor)),
					strconv.Itoa(r.MinInsyncReplicas), (time.Duration(r.RetentionMs) * time.Millisecond).String()})
			}
			return a.print(out, []string{"TOPIC", "STATUS", "PARTITIONS", "REPLICATION", "MIN ISR", "RETENTION"}, rows)
		},
	}
	f := create.Flags()
	f.IntVar(&partitions, "partitions", 0, "partitions per topic (default: kafka.topics.partitions)")
	f.IntVar(&rf, "replication-factor", 0, "replicas per partition (default: kafka.topics.replicationFactor)")
	f.IntVar(&minISR, "min-insync-replicas", 0, "min.insync.replicas (default: kafka.topics.minInsyncReplicas)")
	f.DurationVar(&retention, "retention", 0, "retention.ms as a duration, e.g. 168h (default: kafka.topics.retention)")
	c.AddCommand(create)
	return c
}

// kafkaAdminTimeout bounds an administration call when brokers do not answer.
const kafkaAdminTimeout = 60 * time.Second

// createTopics creates topics as want says; a topic that already exists is
// reported with its actual partitions, replication factor and settings.
func createTopics(ctx context.Context, adm *kadm.Client, want topicResult, topics ...string) ([]topicResult, error) {
	isr, ret := strconv.Itoa(want.MinInsyncReplicas), strconv.FormatInt(want.RetentionMs, 10)
	resp, err := adm.CreateTopics(ctx, want.Partitions, want.ReplicationFactor,
		map[string]*string{"min.insync.replicas": &isr, "retention.ms": &ret}, topics...)
	if err != nil {
		return nil, err
	}
	out := make([]topicResult, 0, len(topics))
	var existing []string
	for _, name := range topics {
		r := want
		r.Topic, r.Status = name, "created"
		tr, ok := resp[name]
		switch {
		case !ok:
			return nil, fmt.Errorf("topic %s: no answer from the broker", name)
		case errors.Is(tr.Err, kerr.TopicAlreadyExists):
			r.Status = "exists"
			existing = append(existing, name)
		case tr.Err != nil:
			msg := tr.Err.Error()
			if tr.ErrMessage != "" {
				msg += ": " + tr.ErrMessage
			}
			return nil, fmt.Errorf("topic %s: %s", name, msg)
		}
		out = append(out, r)
	}
	if len(existing) == 0 {
		return out, nil
	}
	return out, describeExisting(ctx, adm, out, existing)
}

// describeExisting fills the actual layout and settings of existing topics.
func describeExisting(ctx context.Context, adm *kadm.Client, out []topicResult, existing []string) error {
	details, err := adm.ListTopics(ctx, existing...)
	if err != nil {
		return fmt.Errorf("cannot describe existing topics: %w", err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return fmt.Errorf("cannot describe existing topics: %w", err)
	}
	for i := range out {
		r := &out[i]
		if r.Status != "exists" {
			continue
		}
		if d, ok := details[r.Topic]; ok && d.Err == nil {
			r.Partitions = int32(len(d.Partitions))
			for _, p := range d.Partitions {
				r.ReplicationFactor = int16(len(p.Replicas))
				break
			}
		}
		rc, err := configs.On(r.Topic, nil)
		if err != nil || rc.Err != nil {
			continue
		}
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			switch c.Key {
			case "min.insync.replicas":
				r.MinInsyncReplicas, _ = strconv.Atoi(*c.Value)
			case "retention.ms":
				r.RetentionMs, _ = strconv.ParseInt(*c.Value, 10, 64)
			}
		}
	}
	return nil
}
