package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caracal-gw/caracal/consumers/runner"
)

// TestPauseBeforeCommitEnv names a TEST-ONLY fault hook of the writer, for
// the fault suite (faults/TestLedgerWriterKill9): when the variable holds an
// absolute path at process start, the first batch with rows the writer
// stores pauses after its COPY statements and its offsets, before COMMIT:
// the writer writes a marker file at that path (the batch's source offsets,
// "partition first next rows" per line), then blocks until the process is
// killed, its context ends, or testPauseMax passes (then it commits as
// usual). Off unless the variable is set; never set it in production: a
// writer that pauses holds the ledger counter's lock and stalls every
// writer. The consumer logs an error line at start when it is set.
const TestPauseBeforeCommitEnv = "CARACAL_TEST_LEDGER_PAUSE_BEFORE_COMMIT"

// testPauseMax bounds the pause of the test hook.
const testPauseMax = 2 * time.Minute

// testPause is the hook's state, shared by a writer and its fork (it fires
// once per process).
type testPause struct {
	path  string
	fired atomic.Bool
}

// readTestPause reads TestPauseBeforeCommitEnv (once, when the writer is
// made) and logs loudly when it is set.
func readTestPause() *testPause {
	v, ok := os.LookupEnv(TestPauseBeforeCommitEnv)
	if !ok {
		return nil
	}
	if v == "" || !filepath.IsAbs(v) {
		slog.Error("TEST HOOK IGNORED: " + TestPauseBeforeCommitEnv + " is set but not an absolute path; unset it")
		return nil
	}
	slog.Error("TEST HOOK ENABLED: "+TestPauseBeforeCommitEnv+" is set; the ledger writer will pause its first batch before COMMIT. "+
		"This is for the fault suite only: never set it in production", "marker", v)
	return &testPause{path: v}
}

// pauseBeforeCommit runs the hook if it is enabled and has not fired yet.
func (w *Writer) pauseBeforeCommit(ctx context.Context, b *runner.Batch) error {
	p := w.pause
	if p == nil || len(w.rows) == 0 || !p.fired.CompareAndSwap(false, true) {
		return nil
	}
	type span struct {
		first int64
		rows  int
	}
	spans := map[int32]*span{}
	for i := range w.rows {
		r := &w.rows[i]
		s := spans[r.partition]
		if s == nil {
			s = &span{first: r.offset}
			spans[r.partition] = s
		}
		s.first = min(s.first, r.offset)
		s.rows++
	}
	var sb strings.Builder
	for _, ps := range b.Next {
		for part, next := range ps {
			if s := spans[part]; s != nil {
				fmt.Fprintf(&sb, "%d %d %d %d\n", part, s.first, next, s.rows)
			}
		}
	}
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("test hook: cannot write the marker: %w", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("test hook: cannot write the marker: %w", err)
	}
	slog.Error("TEST HOOK: ledger batch paused before COMMIT", "marker", p.path, "rows", len(w.rows), "max", testPauseMax)
	t := time.NewTimer(testPauseMax)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		slog.Error("TEST HOOK: pause over, committing", "marker", p.path)
		return nil
	}
}
