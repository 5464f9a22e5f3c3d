package budget

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// Spent returns the committed spend of agent (its own and its descendants')
// in window w at now, summed exactly as Reserve sums it.
func (s *Store) Spent(ctx context.Context, agent, root event.UUID, w control.Window, rolling bool, now time.Time) (int64, error) {
	sp := spanOf(w, rolling, now)
	pfx := prefix(root)
	keys := make([]string, 0, sp.n)
	for b := sp.newest - int64(sp.n) + 1; b <= sp.newest; b++ {
		keys = append(keys, bucketKey(pfx, agent, sp.g, b))
	}
	vals, err := s.c.Do(ctx, s.c.B().Mget().Key(keys...).Build()).ToArray()
	if err != nil {
		return 0, fmt.Errorf("cannot read spend of agent %s: %w", agent, err)
	}
	var sum int64
	for i := range vals {
		if vals[i].IsNil() {
			continue
		}
		v, err := vals[i].AsInt64()
		if err != nil {
			return 0, fmt.Errorf("cannot read spend of agent %s: %w", agent, err)
		}
		sum += v
	}
	return sum, nil
}

// Reserved returns the headroom reserved by outstanding leases of agent and
// its descendants.
func (s *Store) Reserved(ctx context.Context, agent, root event.UUID) (int64, error) {
	v, err := s.c.Do(ctx, s.c.B().Get().Key(reservedKey(prefix(root), agent)).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read reserved budget of agent %s: %w", agent, err)
	}
	return v, nil
}

// Fence returns the highest applied offset of (group, topic, partition) for
// root, or -1.
func (s *Store) Fence(ctx context.Context, root event.UUID, group, topic string, partition int32) (int64, error) {
	v, err := s.c.Do(ctx, s.c.B().Get().Key(fenceKey(prefix(root), group, topic, partition)).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read offset fence of root %s: %w", root, err)
	}
	return v, nil
}

// BucketTotal is the committed spend of an agent in one bucket, as a
// reconcile computes it from the ledger (the agent's own spend plus its
// descendants', at every granularity in Grans).
type BucketTotal struct {
	Agent  event.UUID
	Gran   Gran
	Bucket int64
	Micros int64
}

// SetTotals overwrites committed buckets of the tree of root with totals
// (each with its granularity's expiry). A reconcile runs Reset first, then
// SetTotals with the ledger sums of every bucket still in use, then moves
// the fences with SetFence to the offsets the ledger covers.
func (s *Store) SetTotals(ctx context.Context, root event.UUID, totals []BucketTotal) error {
	pfx := prefix(root)
	cmds := make(rueidis.Commands, 0, len(totals))
	for _, t := range totals {
		if t.Micros < 0 || t.Micros > MaxLimitMicros {
			return fmt.Errorf("cannot set spend of agent %s: %d out of range", t.Agent, t.Micros)
		}
		cmds = append(cmds, s.c.B().Set().Key(bucketKey(pfx, t.Agent, t.Gran, t.Bucket)).Value(itoa(t.Micros)).ExSeconds(t.Gran.ttlSeconds()).Build())
	}
	for _, r := range s.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("cannot set spend totals of root %s: %w", root, err)
		}
	}
	return nil
}

// SetFence stores the applied offset of (group, topic, partition) for root.
func (s *Store) SetFence(ctx context.Context, root event.UUID, group, topic string, partition int32, offset int64) error {
	k := fenceKey(prefix(root), group, topic, partition)
	if err := s.c.Do(ctx, s.c.B().Set().Key(k).Value(itoa(offset)).ExSeconds(7776000).Build()).Error(); err != nil {
		return fmt.Errorf("cannot set offset fence of root %s: %w", root, err)
	}
	return nil
}

// Reset deletes the committed buckets and offset fences of the tree of root
// (reservations and leases stay: they belong to running gateways).
func (s *Store) Reset(ctx context.Context, root event.UUID) error {
	pfx := prefix(root)
	for _, pat := range []string{pfx + "s:*", pfx + "f:*"} {
		if err := s.deleteMatching(ctx, pat); err != nil {
			return fmt.Errorf("cannot reset spend of root %s: %w", root, err)
		}
	}
	return nil
}

func (s *Store) deleteMatching(ctx context.Context, pattern string) error {
	for _, node := range s.c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return err
			}
			if len(e.Elements) > 0 {
				if err := s.c.Do(ctx, s.c.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
					return err
				}
			}
			if e.Cursor == 0 {
				break
			}
			cursor = e.Cursor
		}
	}
	return nil
}

// PendingLease is what one lease (an agent's, of one gateway process)
// charged in events the aggregator has not applied yet.
type PendingLease struct {
	// Chain is the agent, then its ancestors up to the root.
	Chain  []event.UUID
	Owner  string
	Micros int64
}

// RestorePending gives back their reservation to leases of the tree of root
// that lost their record (Redis lost its data): a reconcile reads the
// metering events above the offsets it rebuilt the totals to and restores,
// per lease, what they charged, so that headroom is not granted twice
// until the aggregator applies them (each applied event takes its charge
// off the restored lease, as it would have off the lost one). A restored
// lease is released: reclaimed after drain if charges never come. Leases
// that still have a record keep it. It returns how many were restored.
func (s *Store) RestorePending(ctx context.Context, root event.UUID, leases []PendingLease, drain time.Duration) (int, error) {
	pfx := prefix(root)
	args := []string{pfx, itoa(drain.Milliseconds()), itoa(int64(len(leases)))}
	for _, l := range leases {
		if len(l.Chain) == 0 || l.Owner == "" || strings.ContainsAny(l.Owner, " \t\n") || l.Micros < 0 || l.Micros > MaxLimitMicros {
			return 0, fmt.Errorf("cannot restore a pending lease of root %s: bad lease %+v", root, l)
		}
		ids := make([]string, len(l.Chain))
		for i, a := range l.Chain {
			ids[i] = a.String()
		}
		args = append(args, leaseMember(l.Chain[0], l.Owner), strings.Join(ids, " "), itoa(l.Micros))
	}
	n, err := restorePendingScript.Exec(ctx, s.c, []string{leasesKey(pfx)}, args).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("cannot restore the pending leases of root %s: %w", root, err)
	}
	return int(n), nil
}
