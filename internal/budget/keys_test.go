package budget

import (
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

func TestBucketOf(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name string
		g    Gran
		a, b string
		same bool
	}{
		{"minute edge", Minute, "2026-03-01T10:00:59Z", "2026-03-01T10:01:00Z", false},
		{"hour inside", Hour, "2026-03-01T10:00:00Z", "2026-03-01T10:59:59Z", true},
		{"day edge", Day, "2026-03-01T23:59:59Z", "2026-03-02T00:00:00Z", false},
		{"week Sun to Mon", Week, "2026-03-01T23:59:59Z", "2026-03-02T00:00:00Z", false},
		{"week Mon to Sun", Week, "2026-03-02T00:00:00Z", "2026-03-08T23:59:59Z", true},
		{"week across new year", Week, "2025-12-29T00:00:00Z", "2026-01-04T23:59:59Z", true},
		{"week before epoch", Week, "1969-12-29T00:00:00Z", "1970-01-04T23:59:59Z", true},
		{"month edge", Month, "2026-01-31T23:59:59Z", "2026-02-01T00:00:00Z", false},
		{"month inside", Month, "2026-02-01T00:00:00Z", "2026-02-28T23:59:59Z", true},
		{"non-UTC input", Hour, "2026-03-01T10:30:00+02:00", "2026-03-01T08:00:00Z", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BucketOf(tt.g, ts(tt.a)) == BucketOf(tt.g, ts(tt.b)); got != tt.same {
				t.Fatalf("same bucket = %v, want %v", got, tt.same)
			}
		})
	}
	if d := BucketOf(Week, ts("2026-03-09T00:00:00Z")) - BucketOf(Week, ts("2026-03-02T00:00:00Z")); d != 1 {
		t.Fatalf("consecutive Mondays are %d weeks apart", d)
	}
}

func TestSpanCoversWindow(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 30, 15, 0, time.UTC)
	tests := []struct {
		w    control.Window
		unit time.Duration
		full time.Duration
	}{
		{control.Hourly, time.Minute, time.Hour},
		{control.Daily, time.Hour, 24 * time.Hour},
		{control.Weekly, 24 * time.Hour, 7 * 24 * time.Hour},
		{control.Monthly, 24 * time.Hour, 30 * 24 * time.Hour},
	}
	for _, tt := range tests {
		sp := spanOf(tt.w, true, now)
		// The oldest bucket must start at or before now-full: never forget
		// spend of the window early.
		oldest := sp.newest - int64(sp.n) + 1
		if BucketOf(sp.g, now.Add(-tt.full)) < oldest {
			t.Fatalf("%v rolling: spend at now-%v falls out of the window", tt.w, tt.full)
		}
		if BucketOf(sp.g, now.Add(-tt.full-tt.unit)) >= oldest {
			t.Fatalf("%v rolling: counts more than one extra bucket", tt.w)
		}
	}
}
