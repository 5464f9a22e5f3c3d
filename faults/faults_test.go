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
func TestKafkaKill9(t *testing.T) {
	needFaults(t)
	s := newStack(t, false)
	sum := s.load(warm+outage()+after, func() {
		time.Sleep(warm)
		s.k.kill9()
		time.Sleep(outage())
		s.k.up()
	})
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
func TestRedisRestartEmpty(t *testing.T) {
	needFaults(t)
	s := newStack(t, false)
	sum := s.load(warm+5*time.Second+after, func() {
		time.Sleep(warm)
		s.r.kill9()
		time.Sleep(5 * time.Second)
		s.r.up()
	})
	s.check(sum, exact)
}
