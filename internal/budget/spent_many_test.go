package budget

import (
	"context"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

// TestSpentManyMatchesSpent: for agents of two trees, one without spend,
// SpentMany returns what Spent returns for each, in every window, also when
// the reads are split into several round trips.
func TestSpentManyMatchesSpent(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, b := newTree(nil, nil, nil, nil), newTree(nil, nil, nil, nil)
	earlier := t0.Add(-26 * time.Hour)
	if err := s.ApplyBatch(ctx, "g", "t", 0, []Spend{a.spend(a.child, 500, 0, "", t0, 1), a.spend(a.sibling, 70, 0, "", earlier, 2),
		a.spend(a.parent, 3, 0, "", t0, 3)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyBatch(ctx, "g", "t", 1, []Spend{b.spend(b.sibling, 1_000_001, 0, "", t0, 1)}); err != nil {
		t.Fatal(err)
	}
	var refs []AgentRef
	var agents []*control.Agent
	for _, tr := range []*tree{a, b} {
		for _, ag := range []*control.Agent{tr.root, tr.parent, tr.child, tr.sibling} {
			refs, agents = append(refs, AgentRef{Agent: ag.ID, Root: ag.Root}), append(agents, ag)
		}
	}
	defer func(n int) { spentManyChunk = n }(spentManyChunk)
	for _, chunk := range []int{2048, 3, 1} {
		spentManyChunk = chunk
		for _, w := range []control.Window{control.Hourly, control.Daily, control.Weekly, control.Monthly} {
			for _, rolling := range []bool{false, true} {
				got, err := s.SpentMany(ctx, refs, w, rolling, t0)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(refs) {
					t.Fatalf("%d values for %d agents", len(got), len(refs))
				}
				for i, ag := range agents {
					if want := mustSpent(t, s, ag, w, rolling, t0); got[i] != want {
						t.Fatalf("chunk %d, %v rolling=%v, agent %d: SpentMany %d, Spent %d", chunk, w, rolling, i, got[i], want)
					}
				}
			}
		}
	}
	// Spot values: the root of a holds all of its tree today; b's sibling
	// its own spend; a's child nothing of its sibling's.
	got, err := s.SpentMany(ctx, []AgentRef{{a.root.ID, a.root.Root}, {b.sibling.ID, b.root.ID}, {a.child.ID, a.root.ID}}, control.Daily, false, t0)
	if err != nil || got[0] != 503 || got[1] != 1_000_001 || got[2] != 500 {
		t.Fatalf("daily: %v %v, want [503 1000001 500]", got, err)
	}
	if got, err := s.SpentMany(ctx, nil, control.Daily, false, t0); err != nil || len(got) != 0 {
		t.Fatalf("no agents: %v %v", got, err)
	}
}
