package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/testenv"
)

func TestKafkaCreateTopicsIsIdempotent(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	base := testenv.Name("caracal-t-")
	topics := []string{base + ".metering", base + ".decisions", base + ".audit", base + ".dlq"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
			t.Logf("cannot delete test topics: %v", err)
		}
		cl.Close()
	})
	args := []string{
		"--set", "kafka.brokers=" + strings.Join(brokers, ","),
		"--set", "kafka.topics.metering=" + topics[0], "--set", "kafka.topics.decisions=" + topics[1],
		"--set", "kafka.topics.audit=" + topics[2], "--set", "kafka.topics.dlq=" + topics[3],
		"kafka", "create-topics", "--replication-factor", "1", "--min-insync-replicas", "1",
		"--partitions", "2", "--retention", "2h", "--output", "json",
	}
	for i, want := range []string{"created", "exists"} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		var out, errb strings.Builder
		err := run(ctx, args, &out, &errb)
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		var res []topicResult
		if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
			t.Fatalf("run %d: %q: %v", i+1, out.String(), err)
		}
		if len(res) != 4 {
			t.Fatalf("run %d: %+v", i+1, res)
		}
		for j, r := range res {
			if r.Topic != topics[j] || r.Status != want || r.Partitions != 2 || r.ReplicationFactor != 1 ||
				r.MinInsyncReplicas != 1 || r.RetentionMs != (2*time.Hour).Milliseconds() {
				t.Fatalf("run %d: topic %+v, want %s", i+1, r, want)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range topics {
		if d, ok := details[name]; !ok || d.Err != nil || len(d.Partitions) != 2 {
			t.Fatalf("topic %s on the broker: %+v", name, d)
		}
	}
}

func TestKafkaCreateTopicsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--partitions", "0"}, "--partitions must"},
		{[]string{"--replication-factor", "0"}, "--replication-factor must"},
		{[]string{"--replication-factor", "1", "--min-insync-replicas", "2"}, "--min-insync-replicas must"},
		{[]string{"--retention", "0s"}, "--retention must"},
		{[]string{"--partitions", "x"}, `invalid argument "x" for "--partitions"`},
	} {
		var out, errb strings.Builder
		err := run(context.Background(), append([]string{"kafka", "create-topics"}, tc.args...), &out, &errb)
		if err == nil || strings.ContainsAny(err.Error(), "\n") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create-topics %v: error %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
}
