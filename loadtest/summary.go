package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
)

// Latency holds percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

// Summary is the outcome of a run.
type Summary struct {
	URL         string  `json:"url"`
	Rate        float64 `json:"rate"`
	Duration    float64 `json:"duration_s"`
	Connections int     `json:"connections"`
	// Attempted requests were scheduled (sent, or refused as overload);
	// Completed got an answer or a transport error; OK answered 2xx.
	Attempted int64 `json:"attempted"`
	Completed int64 `json:"completed"`
	OK        int64 `json:"ok"`
	// Errors by class: connect, timeout, overload, other, status_NNN.
	Errors       map[string]int64 `json:"errors"`
	ErrorRate    float64          `json:"error_rate"`
	Elapsed      float64          `json:"elapsed_s"`
	AchievedRate float64          `json:"achieved_rate"`
	// Latency of the answered requests, from their scheduled send time.
	Latency Latency `json:"latency"`
	// Service is the time from the actual send to the answer: Latency less
	// the generator's own lateness and queueing for a connection.
	Service Latency `json:"service"`
	// Accepted is OK; LedgerRows is filled by a scenario's ledger check (-1: not checked).
	LedgerRows int64 `json:"ledger_rows"`

	hist Histogram
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func (r *run) summary(elapsed time.Duration) *Summary {
	var all recorder
	for _, w := range r.workers {
		all.merge(w)
	}
	all.merge(&r.overflow)
	all.errs[ClassOverload] += r.overload.Load()
	s := &Summary{URL: r.cfg.URL, Rate: r.cfg.Rate, Duration: r.cfg.Duration.Seconds(), Connections: r.cfg.Connections,
		Attempted: r.attempted.Load(), Completed: r.completed.Load(), OK: all.ok, Errors: map[string]int64{},
		Elapsed: elapsed.Seconds(), LedgerRows: -1, hist: all.hist}
	for c, n := range all.errs {
		if n > 0 {
			s.Errors[Class(c).String()] = n
		}
	}
	for code, n := range all.status {
		if n > 0 {
			s.Errors["status_"+strconv.Itoa(code)] = n
		}
	}
	if s.Attempted > 0 {
		s.ErrorRate = float64(s.Attempted-s.OK) / float64(s.Attempted)
	}
	if elapsed > 0 {
		s.AchievedRate = float64(s.Completed) / elapsed.Seconds()
	}
	s.Latency = latencyOf(&s.hist)
	s.Service = latencyOf(&all.service)
	return s
}

func latencyOf(h *Histogram) Latency {
	return Latency{P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Max: us(h.Max()), Mean: us(h.Mean())}
}

// Histogram returns the latencies of the answered requests.
func (s *Summary) Histogram() *Histogram { return &s.hist }

// WriteText prints the human summary.
func (s *Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "target      %s\n", s.URL)
	fmt.Fprintf(w, "schedule    %.0f req/s for %.1fs on %d connections (open loop)\n", s.Rate, s.Duration, s.Connections)
	fmt.Fprintf(w, "requests    attempted %d  completed %d  ok %d  in %.2fs (%.0f req/s)\n",
		s.Attempted, s.Completed, s.OK, s.Elapsed, s.AchievedRate)
	fmt.Fprintf(w, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s (from the scheduled send time)\n",
		fmtUs(s.Latency.P50), fmtUs(s.Latency.P90), fmtUs(s.Latency.P99), fmtUs(s.Latency.P999), fmtUs(s.Latency.Max), fmtUs(s.Latency.Mean))
	fmt.Fprintf(w, "service     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s (from the actual send)\n",
		fmtUs(s.Service.P50), fmtUs(s.Service.P90), fmtUs(s.Service.P99), fmtUs(s.Service.P999), fmtUs(s.Service.Max))
	fmt.Fprintf(w, "errors      %.4f%%", 100*s.ErrorRate)
	keys := make([]string, 0, len(s.Errors))
	for k := range s.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s=%d", k, s.Errors[k])
	}
	fmt.Fprintln(w)
	if s.LedgerRows >= 0 {
		fmt.Fprintf(w, "ledger      %d rows for %d accepted requests\n", s.LedgerRows, s.OK)
	}
}

func fmtUs(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "µs"
}
