package recovery

import (
	"context"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/caracal-gw/caracal/consumers/ledger"
)

// signerKeys is one test key pair for every ledger of this package.
var signerKeys = func() [2]string {
	s, v, err := ledger.GenerateKey("test-ledger")
	if err != nil {
		panic(err)
	}
	return [2]string{s, v}
}()

func (e *env) seal() note.Verifier {
	s, err := note.NewSigner(signerKeys[0])
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := note.NewVerifier(signerKeys[1])
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ledger.NewSealer(e.pool, ledger.SealerOptions{Signer: s, CheckpointEvery: 1 << 30, CheckpointInterval: time.Hour}).SealAll(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) latestRoot() (int64, []byte) {
	var size int64
	var root []byte
	if err := e.pool.QueryRow(context.Background(), `SELECT tree_size, root_hash FROM merkle_checkpoints ORDER BY tree_size DESC LIMIT 1`).Scan(&size, &root); err != nil {
		e.t.Fatal(err)
	}
	return size, root
}

// TestSnapshotRestoreReplay: snapshot, more traffic, Redis loses the tree,
// restore the snapshot (verified against the ledger), replay from its
// offsets: the totals equal the undisturbed run's and the ledger root is
// unchanged and verifies.
func TestSnapshotRestoreReplay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produce(90)
	e.runLedger()
	e.runAggregator(false)
	v := e.seal()
	snap, err := CreateSnapshot(ctx, e.pool, e.adm, SnapshotOptions{Topic: e.topic, Group: e.aggGroup, LedgerGroup: e.ledGroup, Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Entries != 90 || snap.LedgerSize != 90 || snap.TreeSize != 90 || len(snap.Spend) == 0 {
		t.Fatalf("snapshot: entries %d ledger %d tree %d buckets %d", snap.Entries, snap.LedgerSize, snap.TreeSize, len(snap.Spend))
	}
	// The undisturbed run continues.
	e.produce(60)
	e.runLedger()
	e.runAggregator(false)
	e.seal()
	now := time.Now()
	undisturbed := e.spent(now)
	size, root := e.latestRoot()

	// Redis loses the tree; restore and replay.
	if err := e.store.Reset(ctx, e.root); err != nil {
		t.Fatal(err)
	}
	got, err := GetSnapshot(ctx, e.pool, LatestID)
	if err != nil || got.ID != snap.ID {
		t.Fatalf("snapshot-latest = %v, %v; want %s", got, err, snap.ID)
	}
	if err := VerifySnapshot(ctx, e.pool, got, v, nil); err != nil {
		t.Fatal(err)
	}
	if err := Restore(ctx, e.pool, e.store, e.adm, got, RestoreOptions{ReadyKey: e.readyKey}); err != nil {
		t.Fatal(err)
	}
	// Restored: the totals of the snapshot (the first 90 events).
	if r := e.spent(now)[e.root.String()+"/monthly/rolling"]; r != snap.SpendMicros {
		t.Fatalf("restored root monthly = %d, snapshot holds %d", r, snap.SpendMicros)
	}
	var lastProgress, lastTotal int64
	err = Replay(ctx, e.cfg, e.store, e.adm, ReplayOptions{Topic: e.topic, Group: e.aggGroup, DLQ: e.dlq, Start: got.Resume(), Timeout: time.Minute,
		Progress: func(d, n int64) { lastProgress, lastTotal = d, n }})
	if err != nil {
		t.Fatal(err)
	}
	if lastTotal != 60 || lastProgress != 60 {
		t.Fatalf("progress %d/%d, want 60/60", lastProgress, lastTotal)
	}
	equalTotals(t, "after restore and replay", e.spent(now), undisturbed)
	if s2, r2 := e.latestRoot(); s2 != size || string(r2) != string(root) {
		t.Fatalf("ledger root changed: %d %x -> %d %x", size, root, s2, r2)
	}
	rep, err := ledger.Verify(ctx, e.pool, v, 0, -1, nil)
	if err != nil || rep.Problem != nil {
		t.Fatalf("merkle verify after recovery: %v %v", err, rep.Problem)
	}
}

// TestRestoreRefusesTamperedLedger: restore verifies the snapshot's
// checkpoint against the ledger first.
func TestRestoreRefusesTamperedLedger(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produce(30)
	e.runLedger()
	e.runAggregator(false)
	v := e.seal()
	snap, err := CreateSnapshot(ctx, e.pool, e.adm, SnapshotOptions{Topic: e.topic, Group: e.aggGroup, LedgerGroup: e.ledGroup, Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySnapshot(ctx, e.pool, snap, v, nil); err != nil {
		t.Fatalf("an intact ledger failed: %v", err)
	}
	_, otherKey, err := ledger.GenerateKey("test-ledger")
	if err != nil {
		t.Fatal(err)
	}
	ov, err := note.NewVerifier(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySnapshot(ctx, e.pool, snap, ov, nil); err == nil {
		t.Fatal("a checkpoint verified with the wrong key")
	}
	if _, err := e.pool.Exec(ctx, `UPDATE ledger SET cost_micros = cost_micros + 1 WHERE seq = 7`); err != nil {
		t.Fatal(err)
	}
	if err := VerifySnapshot(ctx, e.pool, snap, v, nil); err == nil {
		t.Fatal("a tampered ledger passed the snapshot verification")
	}
}

func TestPrune(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produce(6)
	e.runLedger()
	e.runAggregator(false)
	for i := range 4 {
		if _, err := CreateSnapshot(ctx, e.pool, e.adm, SnapshotOptions{Topic: e.topic, Group: e.aggGroup, LedgerGroup: e.ledGroup,
			Now: time.Now().Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := Prune(ctx, e.pool, 2); err != nil || n != 2 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	list, err := ListSnapshots(ctx, e.pool)
	if err != nil || len(list) != 2 || !list[0].CreatedAt.After(list[1].CreatedAt) {
		t.Fatalf("list after prune: %+v %v", list, err)
	}
}

// TestScheduleKeepsRetention: the consumer's scheduled snapshots keep the
// newest retain.
func TestScheduleKeepsRetention(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produce(6)
	e.runLedger()
	e.runAggregator(false)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		Schedule(sctx, e.pool, e.adm, SnapshotOptions{Topic: e.topic, Group: e.aggGroup, LedgerGroup: e.ledGroup, Wait: 30 * time.Second}, //nolint:errcheck
			100*time.Millisecond, 2, nil)
		close(done)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stop()
	var first []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the schedule did not take and prune snapshots within 60s")
		}
		list, err := ListSnapshots(ctx, e.pool)
		if err != nil {
			t.Fatal(err)
		}
		// A tick takes its snapshot, then prunes: retention + 1 in between.
		if len(list) > 3 {
			t.Fatalf("%d snapshots kept, retention 2", len(list))
		}
		if len(list) == 2 && first == nil {
			first = []string{list[0].ID, list[1].ID}
		}
		if first != nil && len(list) == 2 && list[0].ID != first[0] && list[0].ID != first[1] && list[1].ID != first[1] {
			break // a third and fourth were taken, the oldest pruned
		}
	}
	// Stopped (even in the middle of a tick), the schedule leaves at most
	// the retention behind.
	stop()
	list, err := ListSnapshots(ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) > 2 {
		t.Fatalf("%d snapshots left after the schedule stopped, retention 2", len(list))
	}
}
