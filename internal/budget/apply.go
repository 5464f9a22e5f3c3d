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

// rootBatch is the spends of one root above a known fence, summed per key.
type rootBatch struct {
	root   event.UUID
	spends []*Spend
}

// exec sums the spends with an offset above after into one script call.
func (rb *rootBatch) exec(group, topic string, partition int32, after int64) (rueidis.LuaExec, bool, error) {
	pfx := prefix(rb.root)
	type bucket struct {
		agent event.UUID
		g     Gran
		b     int64
	}
	type inc struct {
		bucket
		v int64
	}
	var incs []inc
	at := map[bucket]int{}
	var members []string
	charged := map[string]int64{}
	lo, hi, last := int64(-1), int64(-1), after
	for _, sp := range rb.spends {
		if sp.Offset <= last {
			continue // at or below the fence, or a duplicate offset
		}
		last = sp.Offset
		if lo < 0 {
			lo = sp.Offset
		}
		hi = sp.Offset
		if sp.CostMicros != 0 {
			t := time.UnixMicro(sp.TimeUnixUs)
			for ai := -1; ai < len(sp.Ancestors); ai++ {
				a := sp.Agent
				if ai >= 0 {
					a = sp.Ancestors[ai]
				}
				for _, g := range Grans {
					k := bucket{a, g, BucketOf(g, t)}
					i, ok := at[k]
					if !ok {
						i = len(incs)
						at[k] = i
						incs = append(incs, inc{bucket: k})
					}
					incs[i].v += sp.CostMicros
				}
			}
		}
		if sp.Owner != "" && sp.ReservedMicros > 0 {
			m := leaseMember(sp.Agent, sp.Owner)
			if _, ok := charged[m]; !ok {
				members = append(members, m)
			}
			charged[m] += sp.ReservedMicros
		}
	}
	if hi < 0 {
		return rueidis.LuaExec{}, false, nil
	}
	for _, m := range members {
		if charged[m] > MaxLimitMicros {
			return rueidis.LuaExec{}, false, fmt.Errorf("cannot apply spends of root %s: %d charged to one lease in one batch", rb.root, charged[m])
		}
	}
	args := make([]string, 0, 6+3*len(incs)+2*len(members))
	args = append(args, pfx, leasesKey(pfx), itoa(lo), itoa(hi), itoa(int64(len(incs))))
	for _, in := range incs {
		args = append(args, bucketKey(pfx, in.agent, in.g, in.b), itoa(in.v), itoa(in.g.ttlSeconds()))
	}
	args = append(args, itoa(int64(len(members))))
	for _, m := range members {
		args = append(args, m, itoa(charged[m]))
	}
	return rueidis.LuaExec{Keys: []string{fenceKey(pfx, group, topic, partition)}, Args: args}, true, nil
}

// ApplyBatch commits spends of one (group, topic, partition): per root, one
// atomic script adds every spend with an offset above the root's fence to
// the buckets of the agent and each ancestor, releases the reservations
// they charged, and moves the fence. The scripts of all roots go in one
// pipeline. Applying the same spends again changes nothing, so a failed
// call may be retried whole. spends is reordered.
func (s *Store) ApplyBatch(ctx context.Context, group, topic string, partition int32, spends []Spend) error {
	for i := range spends {
		sp := &spends[i]
		if sp.CostMicros < -MaxLimitMicros || sp.CostMicros > MaxLimitMicros || sp.ReservedMicros < 0 || sp.ReservedMicros > MaxLimitMicros {
			return fmt.Errorf("cannot apply spend at offset %d: amount out of range", sp.Offset)
		}
	}
	slices.SortStableFunc(spends, func(a, b Spend) int { return cmpInt(a.Offset, b.Offset) })
	var batches []*rootBatch
	byRoot := map[event.UUID]*rootBatch{}
	for i := range spends {
		rb := byRoot[spends[i].Root]
		if rb == nil {
			rb = &rootBatch{root: spends[i].Root}
			byRoot[rb.root] = rb
			batches = append(batches, rb)
		}
		rb.spends = append(rb.spends, &spends[i])
	}
	after := make([]int64, len(batches))
	for i := range after {
		after[i] = -1
	}
	// A batch straddling its fence runs again without the applied part:
	// the second round always applies or skips.
	for round := 0; len(batches) > 0 && round < 3; round++ {
		var execs []rueidis.LuaExec
		var pending []*rootBatch
		var pendingAfter []int64
		for i, rb := range batches {
			e, ok, err := rb.exec(group, topic, partition, after[i])
			if err != nil {
				return err
			}
			if ok {
				execs = append(execs, e)
				pending = append(pending, rb)
				pendingAfter = append(pendingAfter, after[i])
			}
		}
		if len(execs) == 0 {
			return nil
		}
		batches, after = batches[:0], after[:0]
		var errs []error
		for i, r := range applyScript.ExecMulti(ctx, s.c, execs...) {
			v, err := r.AsIntSlice()
			if err == nil && len(v) != 2 {
				err = fmt.Errorf("unexpected reply of %d values", len(v))
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("cannot apply spends of root %s: %w", pending[i].root, err))
				continue
			}
			if v[0] == 1 && v[1] > pendingAfter[i] {
				batches = append(batches, pending[i])
				after = append(after, v[1])
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	if len(batches) > 0 {
		return fmt.Errorf("cannot apply spends of root %s: its fence keeps moving", batches[0].root)
	}
	return nil
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
