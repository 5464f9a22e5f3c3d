package budget

import (
	"context"
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
)

func TestResetAndSetTotals(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	tr := newTree(nil, nil, nil, nil)
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{tr.spend(tr.child, 500, 0, "", t0, 10)}); err != nil {
		t.Fatal(err)
	}
	g := tr.reserve(t, s, "gw1", tr.chain(tr.sibling), 70, 1, t0)
	if g.Granted != 70 {
		t.Fatalf("grant = %+v", g)
	}
	if err := s.Reset(ctx, tr.root.ID); err != nil {
		t.Fatal(err)
	}
	if got := mustSpent(t, s, tr.parent, control.Daily, false, t0); got != 0 {
		t.Fatalf("spent after reset = %d", got)
	}
	if f, err := s.Fence(ctx, tr.root.ID, "g", "t", 0); err != nil || f != -1 {
		t.Fatalf("fence after reset = %d, %v", f, err)
	}
	if r := mustReserved(t, s, tr.parent); r != 70 {
		t.Fatalf("reset dropped a running gateway's reservation: %d", r)
	}
	var totals []BucketTotal
	for _, a := range []*control.Agent{tr.child, tr.parent, tr.root} {
		for _, gr := range Grans {
			totals = append(totals, BucketTotal{Agent: a.ID, Gran: gr, Bucket: BucketOf(gr, t0), Micros: 450})
		}
	}
	if err := s.SetTotals(ctx, tr.root.ID, totals); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFence(ctx, tr.root.ID, "g", "t", 0, 10); err != nil {
		t.Fatal(err)
	}
	// The aggregator resumes after the fence: offset 10 again changes nothing.
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{tr.spend(tr.child, 500, 0, "", t0, 10), tr.spend(tr.child, 5, 0, "", t0, 11)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		w       control.Window
		rolling bool
	}{{control.Hourly, false}, {control.Hourly, true}, {control.Daily, true}, {control.Weekly, false}, {control.Monthly, true}} {
		if got := mustSpent(t, s, tr.root, c.w, c.rolling, t0); got != 455 {
			t.Fatalf("%v rolling=%v after reconcile = %d, want 455", c.w, c.rolling, got)
		}
	}
}
