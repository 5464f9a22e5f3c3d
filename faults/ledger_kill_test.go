package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/consumers/ledger"
)

// ledgerProc runs `caracal consume ledger` (no sealing: the test's sealer
// seals) against the stack's services, with env added to its environment.
func (s *stack) ledgerProc(env ...string) *proc {
	p := &proc{t: s.t, name: "ledger", log: filepath.Join(s.t.TempDir(), "ledger.log"), env: env,
		argv: []string{caracalBinary(s.t), "consume", "ledger",
			"--group", "faults-ledger", "--no-seal", "--set", "database.url=" + s.cfg.Database.URL, "--set", "kafka.brokers=" + s.k.addr()}}
	p.start()
	s.t.Cleanup(func() { p.signal(syscall.SIGTERM) })
	return p
}

// batchSpan is one partition of the batch the writer paused: source
// offsets [first, next) holding rows ledger rows.
type batchSpan struct {
	partition   int32
	first, next int64
	rows        int64
}

// waitPaused waits (bounded) for the writer's test hook marker
// (ledger.TestPauseBeforeCommitEnv) and returns the paused batch's spans.
func waitPaused(t *testing.T, marker string, within time.Duration) []batchSpan {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		data, err := os.ReadFile(marker)
		if err != nil {
			continue
		}
		var spans []batchSpan
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var sp batchSpan
			if _, err := fmt.Sscan(line, &sp.partition, &sp.first, &sp.next, &sp.rows); err != nil {
				t.Fatalf("marker %s: bad line %q: %v", marker, line, err)
			}
			spans = append(spans, sp)
		}
		if len(spans) == 0 {
			t.Fatalf("marker %s names no partition", marker)
		}
		return spans
	}
	t.Fatalf("the ledger writer did not pause before COMMIT within %v (no marker %s)", within, marker)
	return nil
}

// batchState returns, per span, the ledger rows with source offsets in it,
// their distinct event ids, and the writer's stored next offset of the
// partition (-1 when none).
func (s *stack) batchState(spans []batchSpan) (rows, ids, stored []int64) {
	ctx := context.Background()
	for _, sp := range spans {
		var n, d int64
		if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT event_id) FROM ledger
			WHERE src_partition = $1 AND src_offset >= $2 AND src_offset < $3`, sp.partition, sp.first, sp.next).Scan(&n, &d); err != nil {
			s.t.Fatal(err)
		}
		next := int64(-1)
		err := s.pool.QueryRow(ctx, `SELECT next_offset FROM consumer_offsets WHERE group_id = 'faults-ledger' AND topic = $1 AND partition = $2`,
			s.cfg.Kafka.Topics.Metering, sp.partition).Scan(&next)
		if err != nil && !strings.Contains(err.Error(), "no rows") {
			s.t.Fatal(err)
		}
		rows, ids, stored = append(rows, n), append(ids, d), append(stored, next)
	}
	return rows, ids, stored
}

// checkBatchAbsent fails if any row of the paused batch is committed or
// its offsets were stored past its first record.
func (s *stack) checkBatchAbsent(spans []batchSpan, when string) {
	rows, _, stored := s.batchState(spans)
	for i, sp := range spans {
		if rows[i] != 0 {
			s.t.Errorf("%s: %d rows of the paused batch committed (partition %d offsets %d..%d)", when, rows[i], sp.partition, sp.first, sp.next-1)
		}
		if stored[i] > sp.first {
			s.t.Errorf("%s: partition %d stored offset %d is past the paused batch's first record %d", when, sp.partition, stored[i], sp.first)
		}
	}
}

// TestLedgerWriterKill9: the ledger writer (`caracal consume ledger`) is
// killed -9 exactly between the COPY of a batch and its COMMIT, under load:
// the test hook ledger.TestPauseBeforeCommitEnv pauses its first batch
// there and writes a marker; the test waits for the marker, checks that
// nothing of the batch is visible, kills the writer, checks again, and
// restarts it without the hook. Its offsets live in the same transaction
// as its rows, so after the restart every event is in the ledger exactly
// once (the suite's checks: counts, Redis totals, merkle verify), the
// paused batch's records included, and the stored offsets are past it.
func TestLedgerWriterKill9(t *testing.T) {
	needFaults(t)
	s := newStackWith(t, stackOptions{externalLedger: true})
	marker := filepath.Join(t.TempDir(), "ledger-paused")
	var spans []batchSpan
	sum := s.load(warm+after, func() {
		// The writer starts after the warm-up: its first batch holds the
		// events of the warm-up (several hundred, all partitions).
		time.Sleep(warm)
		lw := s.ledgerProc(ledger.TestPauseBeforeCommitEnv + "=" + marker)
		spans = waitPaused(t, marker, 2*time.Minute)
		t.Logf("writer paused before COMMIT: %+v", spans)
		s.checkBatchAbsent(spans, "paused before COMMIT")
		lw.kill9()
		s.checkBatchAbsent(spans, "after kill -9")
		s.ledgerProc()
	})
	s.check(sum, exact)
	rows, ids, stored := s.batchState(spans)
	for i, sp := range spans {
		if rows[i] != sp.rows || ids[i] != sp.rows {
			t.Errorf("partition %d offsets %d..%d: %d rows (%d distinct ids) after the restart, want the %d of the paused batch once",
				sp.partition, sp.first, sp.next-1, rows[i], ids[i], sp.rows)
		}
		if stored[i] < sp.next {
			t.Errorf("partition %d: stored offset %d after the restart, not past the paused batch (next %d)", sp.partition, stored[i], sp.next)
		}
	}
}
