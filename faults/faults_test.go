package faults

import (
	"testing"
	"time"
)

// warm is the load before the fault; after is the load once the service is
// back.
const warm, after = 5 * time.Second, 15 * time.Second

// TestKafkaKill9: the broker is killed -9 under load and restarted after the
// outage. Events go to the gateway's spool meanwhile and drain when it is
// back: every request the upstream served is in the ledger once.
//
// The runbook's "Spool growth" diagnostics: caracal_spool_records rises and
// caracal_producer_brokers_down is 1 during the outage; the spool is empty
// again after it.
func TestKafkaKill9(t *testing.T) {
	needFaults(t)
	s := newStack(t, false)
	var spooled, down float64
	var grew, wasDown bool
	sum := s.load(warm+outage()+after, func() {
		time.Sleep(warm)
		s.k.kill9()
		start := time.Now()
		spooled, grew = s.waitMetric("caracal_spool_records", outage(), func(v float64) bool { return v > 0 })
		down, wasDown = s.waitMetric("caracal_producer_brokers_down", outage(), func(v float64) bool { return v == 1 })
		time.Sleep(outage() - time.Since(start))
		s.k.up()
	})
	t.Logf("during the outage: caracal_spool_records %.0f, caracal_producer_brokers_down %.0f", spooled, down)
	if !grew || !wasDown {
		t.Errorf("during the outage caracal_spool_records = %.0f, caracal_producer_brokers_down = %.0f; want > 0 and 1", spooled, down)
	}
	if v, ok := s.waitMetric("caracal_spool_records", 2*time.Minute, func(v float64) bool { return v == 0 }); !ok {
		t.Errorf("caracal_spool_records = %.0f after the outage, want 0 (drained)", v)
	}
	s.check(sum, exact)
}

// TestKafkaKill9Strict: the same on a strict route (intents in the spool).
func TestKafkaKill9Strict(t *testing.T) {
	needFaults(t)
	s := newStack(t, true)
	sum := s.load(warm+outage()+after, func() {
		time.Sleep(warm)
		s.k.kill9()
		time.Sleep(outage())
		s.k.up()
	})
	s.check(sum, exact)
}

// TestPostgresStop: PostgreSQL stops for the outage; the gateway serves from
// its control-data cache, the ledger writer retries its batch.
func TestPostgresStop(t *testing.T) {
	needFaults(t)
	s := newStack(t, false)
	sum := s.load(warm+outage()+after, func() {
		time.Sleep(warm)
		s.pg.stop()
		time.Sleep(outage())
		s.pg.up()
	})
	s.check(sum, exact)
}

// TestRedisRestartEmpty: Redis is killed and comes back empty; the gateway
// fails closed while it is gone, the aggregator rebuilds the totals from the
// ledger when it finds the ready key missing.
//
// The runbook's check: /readyz names the failing budget store meanwhile.
// Leases held at the loss add at most what they held (docs/budget.md,
// overshoot case 4): one lease of the one gateway.
func TestRedisRestartEmpty(t *testing.T) {
	needFaults(t)
	s := newStack(t, false)
	s.overshoot = leaseSize
	var notReady, readyAgain bool
	unavailable, _ := s.metric(`caracal_decisions_total{reason="budget_unavailable"}`)
	sum := s.load(warm+5*time.Second+after, func() {
		time.Sleep(warm)
		s.r.kill9()
		notReady = s.waitReadyz(false, 10*time.Second)
		time.Sleep(5 * time.Second)
		s.r.up()
		readyAgain = s.waitReadyz(true, after)
	})
	if !notReady {
		t.Error("/readyz did not report the budget store down while Redis was gone")
	}
	if !readyAgain {
		t.Error("/readyz did not report ready again after the totals were rebuilt")
	}
	// HighErrorRate's first step names the code.
	if v, _ := s.metric(`caracal_decisions_total{reason="budget_unavailable"}`); v-unavailable < 1 {
		t.Errorf("caracal_decisions_total{reason=\"budget_unavailable\"} rose by %.0f during the outage", v-unavailable)
	}
	s.check(sum, exact)
}
