// Package recovery rebuilds what a failure can lose: the Redis spend totals
// from the ledger (Reconcile), and snapshots of the ledger head, the spend
// totals and every consumer group's offsets, restored and replayed from.
package recovery

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/caracal-gw/caracal/internal/budget"
)

// DefaultReadyKey is the Redis key that says the spend totals are complete.
// Reconcile deletes it first and sets it last; a Redis that lost its data
// lost it too, so gateways that check it fail closed (503) until the totals
// are rebuilt.
const DefaultReadyKey = "cr:budget:ready"

// MarkReady sets the ready key to a new generation (reconcile, restore, or
// the first aggregator of a new installation through its AutoReconciler):
// gateways that see the value change drop their leases and reserve again
// against the rebuilt totals (budget.WatchReady).
func MarkReady(ctx context.Context, c rueidis.Client, key string) error {
	if err := c.Do(ctx, c.B().Set().Key(key).Value(budget.NewGeneration()).Build()).Error(); err != nil {
		return fmt.Errorf("cannot set %s: %w", key, err)
	}
	return nil
}

// ClearReady deletes the ready key.
func ClearReady(ctx context.Context, c rueidis.Client, key string) error {
	if err := c.Do(ctx, c.B().Del().Key(key).Build()).Error(); err != nil {
		return fmt.Errorf("cannot delete %s: %w", key, err)
	}
	return nil
}

// IsReady reports whether the ready key is set.
func IsReady(ctx context.Context, c rueidis.Client, key string) (bool, error) {
	n, err := c.Do(ctx, c.B().Exists().Key(key).Build()).AsInt64()
	if err != nil {
		return false, fmt.Errorf("cannot read %s: %w", key, err)
	}
	return n == 1, nil
}
