package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/recovery"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// TestRecoveryCommands runs the guide's recovery commands end to end on an
// empty pipeline: reconcile, snapshot create/list/restore (with
// snapshot-latest as the id) and replay start --from-snapshot.
func TestRecoveryCommands(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	brokers := testenv.KafkaBrokers(t)
	redisAddr := testenv.RedisAddr(t)
	topic, prefix, ready := testenv.Name("t.metering."), testenv.Name("grp"), testenv.Name("cr:test:ready:")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(context.Background(), 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// A new topic's partitions are served a moment after CreateTopics
	// returns: wait (bounded) until its offsets can be listed.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		offs, err := adm.ListStartOffsets(context.Background(), topic)
		if err == nil && offs.Error() == nil && len(offs[topic]) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s never served its partitions: %v %v", topic, err, offs.Error())
		}
	}
	set := []string{"--set", "kafka.brokers=" + strings.Join(brokers, ","), "--set", "kafka.topics.metering=" + topic,
		"--set", "kafka.consumer.groupPrefix=" + prefix, "--set", "redis.addrs=" + redisAddr}
	cmd := func(args ...string) string { return mustCLI(t, url, append(args, set...)...) }
	cmd("agent", "create", "acme")
	cmd("reconcile", "--ready-key", ready, "--wait", "5s")
	out := cmd("snapshot", "create", "--wait", "5s")
	if !strings.Contains(out, "snap-") {
		t.Fatalf("snapshot create: %q", out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out := cmd("snapshot", "list"); !strings.Contains(out, id) {
		t.Fatalf("snapshot list lacks %s: %q", id, out)
	}
	rc, err := budget.NewClient(config.Redis{Addrs: []string{redisAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := recovery.ClearReady(context.Background(), rc, ready); err != nil {
		t.Fatal(err)
	}
	cmd("snapshot", "restore", "--snapshot-id", "snapshot-latest", "--ready-key", ready)
	if ok, err := recovery.IsReady(context.Background(), rc, ready); err != nil || !ok {
		t.Fatalf("restore did not set the ready key: %v %v", ok, err)
	}
	cmd("replay", "start", "--from-snapshot", "snapshot-latest", "--timeout", "30s")
	if _, _, err := cli(t, url, append([]string{"snapshot", "restore", "--snapshot-id", "snap-19700101T000000Z"}, set...)...); err == nil {
		t.Fatal("restoring an unknown snapshot succeeded")
	}
}
