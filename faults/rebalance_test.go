package faults

import (
	"testing"
	"time"
)

// TestConsumerRebalance: under steady load a second ledger writer and a
// second metrics aggregator join the consumer groups (the partitions are
// shared between the two), then the first pair is stopped mid-load (its
// batches in flight abandoned uncommitted, its partitions moved to the
// second pair). The ledger writer's offsets live with its rows and the
// aggregator's fences with its totals, so every event is in the ledger once
// and counted once.
func TestConsumerRebalance(t *testing.T) {
	needFaults(t)
	s := newStack(t, false)
	var joined, moved bool
	var stopped int
	sum := s.load(warm+warm+outage(), func() {
		time.Sleep(warm)
		joinAt := time.Now()
		sp := s.startSecondPair()
		joined = sp.waitAssigned(1, warm)
		t.Logf("second pair joined: ledger writer assigned %d, aggregator %d partitions", sp.ledger.count(), sp.metrics.count())
		time.Sleep(time.Until(joinAt.Add(warm)))
		stopped = s.stopFirstPair()
		moved = sp.waitAssigned(3, outage())
		t.Logf("first pair stopped: second ledger writer assigned %d, aggregator %d partitions", sp.ledger.count(), sp.metrics.count())
	})
	if !joined {
		t.Error("the second pair was not assigned a partition while the first was running")
	}
	if stopped != 2 {
		t.Errorf("stopped %d runners of the first pair, want 2", stopped)
	}
	if !moved {
		t.Error("the first pair's partitions did not move to the second pair")
	}
	s.check(sum, exact)
}
