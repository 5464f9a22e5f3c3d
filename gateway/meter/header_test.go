package meter

import (
	"testing"

	"github.com/caracal-gw/caracal/consumers/aggregate"
)

// TestSpooledHeaderMatchesTheAggregator: the drain's mark is the one the
// metrics aggregator checks against the ledger; if they drifted apart,
// duplicates from the spool would be counted twice again.
func TestSpooledHeaderMatchesTheAggregator(t *testing.T) {
	if SpooledHeader != aggregate.SpooledHeader || SpooledValue != aggregate.SpooledValue {
		t.Fatalf("gateway marks spooled records %s=%s, the aggregator looks for %s=%s",
			SpooledHeader, SpooledValue, aggregate.SpooledHeader, aggregate.SpooledValue)
	}
}
