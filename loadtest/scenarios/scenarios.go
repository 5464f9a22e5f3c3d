// Package scenarios holds the load tiers of the deployment guide (1k, 10k and
// 100k events per second) with the thresholds that make a run fail: the
// error rate, the p99 latency from the scheduled send time, and — when a
// database is given — ledger rows == accepted requests (nothing lost, nothing
// doubled). loadtest/k6 mirrors these for k6 users; keep them in step.
package scenarios

import (
	"fmt"
	"time"

	"github.com/caracal-gw/caracal/loadtest"
)

// Thresholds fail a run.
type Thresholds struct {
	// MaxErrorRate is the largest share of attempted requests not answered 2xx.
	MaxErrorRate float64
	// MaxP99 bounds the p99 latency (from the scheduled send time).
	MaxP99 time.Duration
	// Ledger requires ledger rows == accepted (2xx) requests when checked.
	Ledger bool
}

// Scenario is one tier.
type Scenario struct {
	Name        string
	Rate        float64
	Duration    time.Duration
	Connections int
	Thresholds  Thresholds
}

// Tiers are the guide's three sizes. Each is bounded to Duration·Rate requests.
var Tiers = []Scenario{
	{Name: "1k", Rate: 1_000, Duration: 10 * time.Second, Connections: 16,
		Thresholds: Thresholds{MaxErrorRate: 0, MaxP99: 25 * time.Millisecond, Ledger: true}},
	{Name: "10k", Rate: 10_000, Duration: 10 * time.Second, Connections: 64,
		Thresholds: Thresholds{MaxErrorRate: 0, MaxP99: 100 * time.Millisecond, Ledger: true}},
	{Name: "100k", Rate: 100_000, Duration: 10 * time.Second, Connections: 256,
		Thresholds: Thresholds{MaxErrorRate: 0.001, MaxP99: 250 * time.Millisecond, Ledger: true}},
}

// ByName returns the tier called name.
func ByName(name string) (Scenario, error) {
	for _, s := range Tiers {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (want 1k, 10k or 100k)", name)
}

// Check returns the thresholds s breaks, one line each; none means pass.
// The ledger is compared only when s.LedgerRows was filled (>= 0).
func (t Thresholds) Check(s *loadtest.Summary) []string {
	var out []string
	if s.Attempted == 0 {
		out = append(out, "no request was sent")
	}
	if s.ErrorRate > t.MaxErrorRate {
		out = append(out, fmt.Sprintf("error rate %.4f%% > %.4f%% (%v)", 100*s.ErrorRate, 100*t.MaxErrorRate, s.Errors))
	}
	if p99 := time.Duration(s.Latency.P99 * 1e3); t.MaxP99 > 0 && p99 > t.MaxP99 {
		out = append(out, fmt.Sprintf("p99 %v > %v", p99, t.MaxP99))
	}
	if t.Ledger && s.LedgerRows >= 0 && s.LedgerRows != s.OK {
		out = append(out, fmt.Sprintf("ledger rows %d != accepted requests %d", s.LedgerRows, s.OK))
	}
	return out
}
