package spool

import (
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

var (
	corruptTotal = metrics.NewCounter("caracal_spool_corrupt_records_total")
	fullTotal    = metrics.NewCounter("caracal_spool_full_total")
	writeErrors  = metrics.NewCounter("caracal_spool_write_errors_total")

	openMu     sync.Mutex
	openSpools []*Spool

	_ = metrics.NewGauge("caracal_spool_records", func() float64 { r, _, _ := sum(); return float64(r) })
	_ = metrics.NewGauge("caracal_spool_bytes", func() float64 { _, b, _ := sum(); return float64(b) })
	_ = metrics.NewGauge("caracal_spool_oldest_age_seconds", func() float64 {
		_, _, o := sum()
		if o.IsZero() {
			return 0
		}
		return time.Since(o).Seconds()
	})
)

// sum adds up every open spool of the process (one in a gateway).
func sum() (records, bytes int64, oldest time.Time) {
	openMu.Lock()
	defer openMu.Unlock()
	for _, s := range openSpools {
		r, b, o := s.Stats()
		records += r
		bytes += b
		if !o.IsZero() && (oldest.IsZero() || o.Before(oldest)) {
			oldest = o
		}
	}
	return records, bytes, oldest
}

func register(s *Spool) {
	openMu.Lock()
	openSpools = append(openSpools, s)
	openMu.Unlock()
}

func unregister(s *Spool) {
	openMu.Lock()
	for i, x := range openSpools {
		if x == s {
			openSpools = append(openSpools[:i], openSpools[i+1:]...)
			break
		}
	}
	openMu.Unlock()
}
