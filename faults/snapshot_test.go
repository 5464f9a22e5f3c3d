package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

// TestSnapshotRestoreReplay: the guide's snapshot recovery with the
// runbook's commands. `caracal snapshot create` runs mid-load; after the
// load every count is checked (the undisturbed run); then every consumer
// stops, Redis is killed and comes back empty, and `caracal snapshot
// restore --snapshot-id snapshot-latest` and `caracal replay start
// --from-snapshot snapshot-latest` must end in exactly the undisturbed
// state: the same totals in every window of every agent, the same ledger
// root, and `caracal merkle verify` passes.
func TestSnapshotRestoreReplay(t *testing.T) {
	needFaults(t)
	s := newStack(t, false)
	var created string
	sum := s.load(warm+after, func() {
		time.Sleep(warm)
		created = s.caracal("snapshot", "create", "--wait", "1m")
	})
	t.Logf("caracal snapshot create (mid-load): %s", strings.TrimSpace(created))
	s.check(sum, exact)
	if t.Failed() {
		return
	}
	now := time.Now()
	undisturbed := s.allTotals(now)
	size, root := s.latestCheckpoint()

	s.cancel()
	s.wg.Wait()
	s.r.kill9()
	s.r.up()
	if got := s.allTotals(now); got["org/daily/rolling"] != 0 {
		t.Fatalf("Redis kept the totals across its restart: %v", got)
	}
	if list := s.caracal("snapshot", "list"); strings.Count(strings.TrimSpace(list), "\n") < 1 {
		t.Fatalf("caracal snapshot list shows no snapshot:\n%s", list)
	}
	t.Logf("caracal snapshot restore: %s", strings.TrimSpace(s.caracal("snapshot", "restore", "--snapshot-id", "snapshot-latest", "--public-key", s.vkey)))
	restored := s.allTotals(now)
	if r, u := restored["org/daily/rolling"], undisturbed["org/daily/rolling"]; r == 0 || r >= u {
		t.Fatalf("restored org daily total %d: want the snapshot's, above 0 and below the undisturbed %d", r, u)
	}
	t.Logf("caracal replay start: %s", strings.TrimSpace(s.caracal("replay", "start", "--from-snapshot", "snapshot-latest", "--timeout", "2m")))
	got := s.allTotals(now)
	for k, want := range undisturbed {
		if got[k] != want {
			t.Errorf("after restore and replay: %s = %d, undisturbed %d", k, got[k], want)
		}
	}
	if s2, r2 := s.latestCheckpoint(); s2 != size || r2 != root {
		t.Errorf("ledger root changed: %d %x -> %d %x", size, root, s2, r2)
	}
	t.Logf("caracal merkle verify: %s", strings.TrimSpace(s.caracal("merkle", "verify", "--public-key", s.vkey)))

	// MerkleVerificationFailure: an edited entry makes `caracal merkle
	// verify` fail and name it.
	if _, err := s.pool.Exec(context.Background(), `UPDATE ledger SET cost_micros = cost_micros + 1 WHERE seq = 100`); err != nil {
		t.Fatal(err)
	}
	out := s.caracalFails("merkle", "verify", "--public-key", s.vkey)
	t.Logf("caracal merkle verify after an edit: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "entry 100 ") {
		t.Errorf("caracal merkle verify does not name the edited entry 100:\n%s", out)
	}
}

// allTotals reads every window of the bot and the org from Redis.
func (s *stack) allTotals(now time.Time) map[string]int64 {
	out := map[string]int64{}
	for _, a := range []struct {
		name string
		id   [16]byte
	}{{"org", s.org}, {"bot", s.bot}} {
		for _, w := range []control.Window{control.Hourly, control.Daily, control.Weekly, control.Monthly} {
			for _, rolling := range []bool{false, true} {
				v, err := s.rc.Spent(context.Background(), a.id, s.org, w, rolling, now)
				if err != nil {
					s.t.Fatal(err)
				}
				out[a.name+"/"+w.String()+"/"+map[bool]string{true: "rolling", false: "calendar"}[rolling]] = v
			}
		}
	}
	return out
}

func (s *stack) latestCheckpoint() (int64, string) {
	var size int64
	var root []byte
	if err := s.pool.QueryRow(context.Background(), `SELECT tree_size, root_hash FROM merkle_checkpoints ORDER BY tree_size DESC LIMIT 1`).Scan(&size, &root); err != nil {
		s.t.Fatal(err)
	}
	return size, string(root)
}
