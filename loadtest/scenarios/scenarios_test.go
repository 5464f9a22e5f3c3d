package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/loadtest"
)

func TestThresholds(t *testing.T) {
	th := Thresholds{MaxErrorRate: 0.01, MaxP99: 10 * time.Millisecond, Ledger: true}
	for _, tc := range []struct {
		name string
		sum  loadtest.Summary
		want string
	}{
		{"pass", loadtest.Summary{Attempted: 100, OK: 100, LedgerRows: 100, Latency: loadtest.Latency{P99: 9_000}}, ""},
		{"ledger not checked", loadtest.Summary{Attempted: 100, OK: 100, LedgerRows: -1}, ""},
		{"error rate", loadtest.Summary{Attempted: 100, OK: 98, ErrorRate: 0.02, LedgerRows: 98}, "error rate"},
		{"p99", loadtest.Summary{Attempted: 100, OK: 100, LedgerRows: 100, Latency: loadtest.Latency{P99: 11_000}}, "p99"},
		{"ledger short", loadtest.Summary{Attempted: 100, OK: 100, LedgerRows: 99}, "ledger rows 99"},
		{"ledger doubled", loadtest.Summary{Attempted: 100, OK: 100, LedgerRows: 101}, "ledger rows 101"},
		{"nothing sent", loadtest.Summary{LedgerRows: -1}, "no request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(th.Check(&tc.sum), "; ")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("Check = %q, want it to mention %q", got, tc.want)
			}
		})
	}
}

func TestTiers(t *testing.T) {
	for _, name := range []string{"1k", "10k", "100k"} {
		s, err := ByName(name)
		if err != nil || s.Rate <= 0 || s.Duration <= 0 || s.Connections <= 0 || !s.Thresholds.Ledger {
			t.Errorf("tier %s: %+v %v", name, s, err)
		}
	}
	if _, err := ByName("5k"); err == nil {
		t.Error("unknown tier accepted")
	}
}
