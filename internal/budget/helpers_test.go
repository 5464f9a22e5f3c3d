package budget

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func newUUID() event.UUID {
	var u event.UUID
	if _, err := rand.Read(u[:]); err != nil {
		panic(err)
	}
	return u
}

func redisClient(t testing.TB, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("cannot connect to redis: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func newStore(t testing.TB) *Store {
	t.Helper()
	return NewStore(redisClient(t, testenv.RedisAddr(t)))
}

func pol(limit int64, w control.Window, rolling bool) control.Policy {
	return control.Policy{ID: newUUID(), LimitMicros: limit, Window: w, Rolling: rolling}
}

// tree is a small delegation tree: root -> parent -> child, sibling.
type tree struct {
	root, parent, child, sibling *control.Agent
	policies                     map[event.UUID][]control.Policy
}

func newTree(rootPols, parentPols, childPols, siblingPols []control.Policy) *tree {
	r, p := newUUID(), newUUID()
	mk := func(id event.UUID, anc []event.UUID, pols []control.Policy) *control.Agent {
		return &control.Agent{ID: id, Root: r, Ancestors: anc, Active: true, Policies: pols}
	}
	tr := &tree{
		root:    mk(r, nil, rootPols),
		parent:  mk(p, []event.UUID{r}, parentPols),
		child:   mk(newUUID(), []event.UUID{p, r}, childPols),
		sibling: mk(newUUID(), []event.UUID{p, r}, siblingPols),
	}
	tr.policies = map[event.UUID][]control.Policy{r: rootPols, p: parentPols, tr.child.ID: childPols, tr.sibling.ID: siblingPols}
	return tr
}

func (tr *tree) chain(a *control.Agent) []Link {
	links := []Link{{Agent: a.ID, Policies: a.Policies}}
	for _, id := range a.Ancestors {
		links = append(links, Link{Agent: id, Policies: tr.policies[id]})
	}
	return links
}

func (tr *tree) lookup(_ context.Context, id event.UUID) ([]control.Policy, error) {
	return tr.policies[id], nil
}

func (tr *tree) spend(a *control.Agent, cost, reserved int64, owner string, at time.Time, off int64) Spend {
	return Spend{Agent: a.ID, Ancestors: a.Ancestors, Root: a.Root, CostMicros: cost, ReservedMicros: reserved,
		Owner: owner, TimeUnixUs: at.UnixMicro(), Offset: off}
}

func mustSpent(t testing.TB, s *Store, a *control.Agent, w control.Window, rolling bool, now time.Time) int64 {
	t.Helper()
	v, err := s.Spent(context.Background(), a.ID, a.Root, w, rolling, now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustReserved(t testing.TB, s *Store, a *control.Agent) int64 {
	t.Helper()
	v, err := s.Reserved(context.Background(), a.ID, a.Root)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
