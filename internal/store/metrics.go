package store

import (
	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RegisterPoolMetrics exports the pool's connection counts (the guide's
// "Database connection count") into set:
// caracal_db_connections{state="in_use|idle|total|max"} and the acquire
// counters.
func RegisterPoolMetrics(set *metrics.Set, pool *pgxpool.Pool) {
	stat := func(f func(*pgxpool.Stat) float64) func() float64 {
		return func() float64 { return f(pool.Stat()) }
	}
	set.NewGauge(`caracal_db_connections{state="in_use"}`, stat(func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }))
	set.NewGauge(`caracal_db_connections{state="idle"}`, stat(func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }))
	set.NewGauge(`caracal_db_connections{state="total"}`, stat(func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }))
	set.NewGauge(`caracal_db_connections{state="max"}`, stat(func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }))
	set.NewGauge(`caracal_db_acquires_total`, stat(func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }))
	set.NewGauge(`caracal_db_acquire_wait_seconds_total`, stat(func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() }))
	set.NewGauge(`caracal_db_empty_acquires_total`, stat(func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }))
}
