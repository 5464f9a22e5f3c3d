package budget

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/rueidis"

	"github.com/caracal-gw/caracal/internal/event"
)

// Spend is one metering event as the MetricsAggregator applies it.
type Spend struct {
	Agent event.UUID
	// Ancestors are the parent, grandparent, ... up to the root.
	Ancestors  []event.UUID
	Root       event.UUID
	CostMicros int64
	TimeUnixUs int64
	// ReservedMicros is what the request charged to its lease
	// (event.Metering.ReservedMicros); 0 when it used none.
	ReservedMicros int64
	// Owner is the lease owner (event.Metering.Gateway, which the gateway
	// sets to Leaser.Owner()); empty when no lease was used.
	Owner  string
	Offset int64
}

func (sp *Spend) appendArgs(args []string) []string {
	t := time.UnixMicro(sp.TimeUnixUs)
	m := ""
	if sp.Owner != "" && sp.ReservedMicros > 0 {
		m = leaseMember(sp.Agent, sp.Owner)
	}
	args = append(args, itoa(sp.Offset), itoa(sp.CostMicros), itoa(sp.ReservedMicros), m)
	for _, g := range Grans {
		args = append(args, itoa(BucketOf(g, t)))
	}
	args = append(args, itoa(int64(len(sp.Ancestors)+1)), sp.Agent.String())
	for _, a := range sp.Ancestors {
		args = append(args, a.String())
	}
	return args
}

// ApplyBatch commits spends of one (group, topic, partition): per root, one
// atomic script adds each spend with an offset above the root's fence to the
// buckets of the agent and every ancestor, releases the reservation it
// charged, and moves the fence. The scripts of all roots go in one pipeline.
// Applying the same spends again changes nothing.
func (s *Store) ApplyBatch(ctx context.Context, group, topic string, partition int32, spends []Spend) error {
	if len(spends) == 0 {
		return nil
	}
	for i := range spends {
		if c := spends[i].CostMicros; c < -MaxLimitMicros || c > MaxLimitMicros {
			return fmt.Errorf("cannot apply spend at offset %d: cost %d out of range", spends[i].Offset, c)
		}
	}
	byRoot := make(map[event.UUID][]*Spend)
	var roots []event.UUID
	for i := range spends {
		sp := &spends[i]
		if _, ok := byRoot[sp.Root]; !ok {
			roots = append(roots, sp.Root)
		}
		byRoot[sp.Root] = append(byRoot[sp.Root], sp)
	}
	execs := make([]rueidis.LuaExec, 0, len(roots))
	for _, root := range roots {
		list := byRoot[root]
		slices.SortStableFunc(list, func(a, b *Spend) int { return cmpInt(a.Offset, b.Offset) })
		pfx := prefix(root)
		args := []string{pfx, leasesKey(pfx), itoa(int64(len(list)))}
		for _, sp := range list {
			args = sp.appendArgs(args)
		}
		execs = append(execs, rueidis.LuaExec{Keys: []string{fenceKey(pfx, group, topic, partition)}, Args: args})
	}
	var errs []error
	for i, r := range applyScript.ExecMulti(ctx, s.c, execs...) {
		if err := r.Error(); err != nil {
			errs = append(errs, fmt.Errorf("cannot apply spends of root %s: %w", roots[i], err))
		}
	}
	return errors.Join(errs...)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
