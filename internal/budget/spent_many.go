package budget

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// AgentRef names the spend buckets of one agent: the agent and the root of
// its delegation tree (the hash tag of its keys).
type AgentRef struct {
	Agent, Root event.UUID
}

// spentManyChunk bounds the commands of one pipelined round trip.
var spentManyChunk = 2048

// SpentMany returns the committed spend of each agent (its own and its
// descendants') in window w at now, summed exactly as Spent sums it, in the
// order of agents. The buckets are read with one GET each, pipelined, so
// agents of different trees (different hash slots on Redis Cluster) are
// read in a few round trips.
func (s *Store) SpentMany(ctx context.Context, agents []AgentRef, w control.Window, rolling bool, now time.Time) ([]int64, error) {
	sp := spanOf(w, rolling, now)
	out := make([]int64, len(agents))
	perChunk := max(1, spentManyChunk/sp.n)
	cmds := make(rueidis.Commands, 0, perChunk*sp.n)
	for lo := 0; lo < len(agents); lo += perChunk {
		hi := min(len(agents), lo+perChunk)
		cmds = cmds[:0]
		for _, a := range agents[lo:hi] {
			pfx := prefix(a.Root)
			for b := sp.newest - int64(sp.n) + 1; b <= sp.newest; b++ {
				cmds = append(cmds, s.c.B().Get().Key(bucketKey(pfx, a.Agent, sp.g, b)).Build())
			}
		}
		for i, r := range s.c.DoMulti(ctx, cmds...) {
			a := agents[lo+i/sp.n].Agent
			v, err := r.AsInt64()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("cannot read spend of agent %s: %w", a, err)
			}
			out[lo+i/sp.n] += v
		}
	}
	return out, nil
}
