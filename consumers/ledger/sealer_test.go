package ledger

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/caracal-gw/caracal/consumers/runner"
)

// promValue reads one sample of the process's metrics by its exact name
// (with labels); ok is false when it is not exported.
func promValue(t *testing.T, name string) (v float64, ok bool) {
	t.Helper()
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, false)
	for _, line := range strings.Split(buf.String(), "\n") {
		if rest, found := strings.CutPrefix(line, name+" "); found {
			f, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f, true
		}
	}
	return 0, false
}

// A checkpoint is signed when CheckpointEvery entries were sealed since the
// last one, or when CheckpointInterval passed and some were; every seal
// step is observed by caracal_merkle_batch_size and _seconds.
func TestCheckpointEveryNEntriesOrInterval(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	w := NewWriter(f.pool, f.group)
	w.rows = benchRows(23)
	if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: 23}}}); err != nil {
		t.Fatal(err)
	}
	sizes := func() string {
		var s string
		if err := f.pool.QueryRow(ctx, `SELECT coalesce(string_agg(tree_size::text, ',' ORDER BY tree_size), '')
			FROM merkle_checkpoints`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	count0, _ := promValue(t, "caracal_merkle_batch_size_count")
	sum0, _ := promValue(t, "caracal_merkle_batch_size_sum")
	secs0, _ := promValue(t, "caracal_merkle_batch_seconds_count")

	// An hour-long interval: only the count rule (and the first checkpoint
	// of an empty log) signs. Steps of 5 reach 5, 10, 15, 20, 23.
	s := NewSealer(f.pool, SealerOptions{Signer: f.signer, CheckpointEvery: 10, CheckpointInterval: time.Hour, BatchSize: 5})
	steps := 0
	for ; steps < 20; steps++ {
		n, err := s.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if steps != 5 {
		t.Fatalf("%d seal steps of at most 5 for 23 entries, want 5", steps)
	}
	if got := sizes(); got != "5,15" {
		t.Fatalf("checkpoints at %q, want \"5,15\" (the first step, then after 10 more entries)", got)
	}
	count1, ok1 := promValue(t, "caracal_merkle_batch_size_count")
	sum1, ok2 := promValue(t, "caracal_merkle_batch_size_sum")
	secs1, ok3 := promValue(t, "caracal_merkle_batch_seconds_count")
	if !ok1 || !ok2 || !ok3 || count1-count0 != 5 || sum1-sum0 != 23 || secs1-secs0 != 5 {
		t.Fatalf("caracal_merkle_batch_size count +%v sum +%v, caracal_merkle_batch_seconds count +%v; want +5, +23, +5 (exported: %v %v %v)",
			count1-count0, sum1-sum0, secs1-secs0, ok1, ok2, ok3)
	}

	// 8 entries since the last checkpoint, fewer than 10: once the
	// interval has passed the next step signs them, with nothing to seal.
	s = NewSealer(f.pool, SealerOptions{Signer: f.signer, CheckpointEvery: 10, CheckpointInterval: time.Nanosecond, BatchSize: 5})
	if n, err := s.Seal(ctx); err != nil || n != 0 {
		t.Fatalf("seal: %d entries, %v", n, err)
	}
	if got := sizes(); got != "5,15,23" {
		t.Fatalf("checkpoints at %q after the interval, want \"5,15,23\"", got)
	}
	if rep := f.verify(); rep.Problem != nil || rep.Checkpoints != 3 || rep.Uncovered != 0 {
		t.Fatalf("verify: %+v %v", rep, fmt.Sprint(rep.Problem))
	}
}
