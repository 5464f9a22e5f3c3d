package gateway

import (
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics are declared once with their label values baked into the names,
// so updating them on the hot path allocates nothing.
var (
	requestsOK     = metrics.NewCounter(`caracal_requests_total{status="ok"}`)
	requestsDenied = metrics.NewCounter(`caracal_requests_total{status="denied"}`)
	requestsError  = metrics.NewCounter(`caracal_requests_total{status="error"}`)
	// caracal_request_duration_seconds is a histogram (p50/p95/p99 with
	// histogram_quantile over its vmrange buckets).
	requestDuration = metrics.NewHistogram(`caracal_request_duration_seconds`)
	shedTotal       = metrics.NewCounter(`caracal_requests_shed_total`)
	forwarded       = metrics.NewCounter(`caracal_requests_forwarded_total`)
	authFailures    = metrics.NewCounter(`caracal_auth_failures_total`)
	meteredMicros   = metrics.NewCounter(`caracal_metered_micros_total`)
	brokenRoutes    = metrics.NewCounter(`caracal_routes_unusable_total`)
	// Requests of fail-open routes forwarded without spool room for their
	// metering event (admitMetering).
	meteringFailOpen = metrics.NewCounter(`caracal_metering_fail_open_total`)

	decisions [numCodes]*metrics.Counter
)

func init() {
	for c := Code(1); c < numCodes; c++ {
		decisions[c] = metrics.NewCounter(`caracal_decisions_total{reason="` + c.String() + `"}`)
	}
}

// observe counts a finished request by outcome: ok (2xx/3xx), denied (4xx:
// the gateway or upstream refused it) or error (5xx).
func (g *Gateway) observe(status int, elapsed time.Duration) {
	switch {
	case status < 400:
		requestsOK.Inc()
	case status < 500:
		requestsDenied.Inc()
	default:
		requestsError.Inc()
	}
	requestDuration.Update(elapsed.Seconds())
}

// registerGauges registers this gateway's gauges in its own set (several
// gateways may share a process in tests and in `caracal dev`).
func (g *Gateway) registerGauges() {
	g.gauges = metrics.NewSet()
	g.gauges.NewGauge(`caracal_requests_in_flight`, func() float64 { return float64(g.inflight.Load()) })
	g.gauges.NewGauge(`caracal_producer_buffered_records`, func() float64 { r, _ := g.producer.Buffered(); return float64(r) })
	g.gauges.NewGauge(`caracal_producer_buffered_bytes`, func() float64 { _, b := g.producer.Buffered(); return float64(b) })
	g.gauges.NewGauge(`caracal_producer_failed_records`, func() float64 { return float64(g.producer.Failed.Load()) })
	b := g.budget
	for name, v := range map[string]*atomic.Uint64{
		"caracal_budget_takes_total":             &b.Takes,
		"caracal_budget_lease_refills_total":     &b.Refills,
		"caracal_budget_redis_round_trips_total": &b.RoundTrips,
		"caracal_budget_exhausted_total":         &b.Exhausted,
		"caracal_budget_unavailable_total":       &b.Unavailable,
		"caracal_budget_redis_errors_total":      &b.Errors,
		"caracal_budget_lease_releases_total":    &b.Releases,
	} {
		g.gauges.NewGauge(name, func() float64 { return float64(v.Load()) })
	}
	metrics.RegisterSet(g.gauges)
}
