// Package ctest holds the Kafka helpers of the consumer integration tests.
package ctest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/config"
)

// Topics creates unique topics with 3 partitions and replication factor 1
// and returns a producer that honours Record.Partition.
func Topics(t *testing.T, cfg *config.Config, names ...string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := kadm.NewClient(cl).DeleteTopics(ctx, names...); err != nil {
			t.Logf("cannot delete test topics: %v", err)
		}
		cl.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).CreateTopics(ctx, 3, 1, nil, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil {
			t.Fatalf("cannot create topic %s: %v", r.Topic, r.Err)
		}
	}
	return cl
}

// Produce writes recs synchronously.
func Produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("cannot produce: %v", err)
	}
}

// Consume runs a runner for h until done reports true (checked every 50 ms,
// for at most 60 s), then stops it.
func Consume(t *testing.T, cfg *config.Config, h runner.Handler, opts runner.Options, done func() bool) {
	t.Helper()
	opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	r, err := runner.New(cfg, h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("runner: %v", err)
		}
		r.Close()
	}()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if done() {
			return
		}
	}
	t.Fatal("the consumer did not finish within 60 s")
}

// EndOffsets sums the end offsets of topics.
func EndOffsets(t *testing.T, cl *kgo.Client, topics ...string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

// CommittedOffsets sums the Kafka committed offsets of group.
func CommittedOffsets(t *testing.T, cl *kgo.Client, group string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	off, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	off.Each(func(o kadm.OffsetResponse) { sum += o.At })
	return sum
}

// RewindGroup commits offset 0 for every partition of topic in group, as an
// operator replaying the topic would.
func RewindGroup(t *testing.T, cl *kgo.Client, group, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var os kadm.Offsets
	for p := int32(0); p < 3; p++ {
		os.AddOffset(topic, p, 0, -1)
	}
	res, err := kadm.NewClient(cl).CommitOffsets(ctx, group, os)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("cannot rewind group %s: %v", group, err)
	}
}
