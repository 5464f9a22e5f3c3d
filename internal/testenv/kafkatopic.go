package testenv

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SetMaxMessageBytes sets topic's max.message.bytes and waits (bounded)
// until the broker applies it: a probe record with a value of each size in
// accept is accepted, one of each size in refuse is refused with
// MESSAGE_TOO_LARGE. Probes are random bytes (a compressed batch of repeated
// bytes would pass any limit) and are not metering events: readers that
// decode the topic skip them.
func SetMaxMessageBytes(t testing.TB, brokers []string, topic string, value int, accept, refuse []int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v := strconv.Itoa(value)
	res, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &v}}, topic)
	if err == nil {
		for _, r := range res {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		t.Fatalf("cannot set max.message.bytes=%d on %s: %v", value, topic, err)
	}
	produce := func(n int) error {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		return cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: b}).FirstErr()
	}
	for {
		var last error
		for _, n := range refuse {
			if err := produce(n); !errors.Is(err, kerr.MessageTooLarge) {
				last = fmt.Errorf("a %d-byte probe: %v, want MESSAGE_TOO_LARGE", n, err)
			}
		}
		for _, n := range accept {
			if err := produce(n); err != nil {
				last = fmt.Errorf("a %d-byte probe: %v, want accepted", n, err)
			}
		}
		if last == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("max.message.bytes=%d on %s never took effect (last probe: %v)", value, topic, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ReadTopic reads every committed record of topic up to its end offsets
// (bounded: fails the test after 30 s).
func ReadTopic(t testing.TB, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(c).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var out []*kgo.Record
	for int64(len(out)) < want && ctx.Err() == nil {
		out = append(out, c.PollFetches(ctx).Records()...)
	}
	if int64(len(out)) < want {
		t.Fatalf("%s: read %d of %d records", topic, len(out), want)
	}
	return out
}
