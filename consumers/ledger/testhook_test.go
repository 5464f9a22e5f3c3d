package ledger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/consumers/runner"
)

// The test-only pause hook: off when the variable is unset or not an
// absolute path; when set, the first batch stops before COMMIT with a
// marker naming its offsets and nothing of it visible; a writer stopped
// there commits nothing, and a writer without the hook then stores every
// event once.
func TestPauseBeforeCommitHook(t *testing.T) {
	if NewWriter(nil, "g").pause != nil {
		t.Fatalf("hook enabled without %s", TestPauseBeforeCommitEnv)
	}
	t.Setenv(TestPauseBeforeCommitEnv, "relative/marker")
	if NewWriter(nil, "g").pause != nil {
		t.Fatal("hook enabled by a relative path")
	}
	f := newFixture(t)
	const n = 90
	f.produce(f.events(n)...)
	marker := filepath.Join(t.TempDir(), "paused")
	t.Setenv(TestPauseBeforeCommitEnv, marker)
	w := NewWriter(f.pool, f.group)
	os.Unsetenv(TestPauseBeforeCommitEnv) //nolint:errcheck // restored by t.Setenv's cleanup
	// No shutdown grace: the paused batch is cancelled when the runner
	// stops (with the default it would be cancelled 10 s later, the same).
	r, err := runner.New(f.cfg, w, runner.Options{Name: "ledger", Group: f.group, Topics: []string{f.topic}, DLQTopic: f.dlq,
		MaxPollRecords: f.cfg.Kafka.Consumer.MaxPollRecords, ShutdownGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var data []byte
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if data, err = os.ReadFile(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("no marker within 60 s: the writer did not pause")
		}
	}
	var rows int64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var p int32
		var first, next, k int64
		if _, err := fmt.Sscan(line, &p, &first, &next, &k); err != nil || k <= 0 || next <= first {
			t.Errorf("marker line %q: %v", line, err)
		}
		rows += k
	}
	if rows == 0 {
		t.Error("the marker names no rows")
	}
	if got, stored := f.count(), f.storedTotal(); got != 0 || stored != 0 {
		t.Errorf("while paused before COMMIT: %d rows and stored offsets %d visible, want none", got, stored)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runner: %v", err)
	}
	r.Close()
	if got, stored := f.count(), f.storedTotal(); got != 0 || stored != 0 {
		t.Errorf("after stopping the paused writer: %d rows and stored offsets %d, want none", got, stored)
	}
	f.consume(NewWriter(f.pool, f.group), n)
	if got := f.q(`SELECT count(DISTINCT event_id) FROM ledger`); got != n {
		t.Fatalf("%d distinct events, want %d", got, n)
	}
}
