package aggregate

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// SpendMetric is the per-agent spend gauge: the committed spend of an agent
// (its own and its descendants', as budgets count it) in the current
// calendar day or month (UTC), label window="day" or "month".
const SpendMetric = "caracal_agent_spend_micros"

var (
	spendRefreshErrors = metrics.NewCounter("caracal_agent_spend_refresh_errors_total")
	spendRefreshedAt   atomicGauge
	_                  = metrics.NewGauge("caracal_agent_spend_refreshed_timestamp_seconds", spendRefreshedAt.get)
	spendAgents        atomicGauge
	_                  = metrics.NewGauge("caracal_agent_spend_agents", spendAgents.get)

	// published is the set the process's /metrics shows (the running
	// SpendGauges'); it is replaced whole by each refresh, so agents that
	// fell out of the top disappear and a scrape never sees two sets.
	published atomic.Pointer[metrics.Set]
)

func init() {
	metrics.RegisterMetricsWriter(func(w io.Writer) {
		if s := published.Load(); s != nil {
			s.WritePrometheus(w)
		}
	})
}

// SpendAgent is an agent the gauges may export.
type SpendAgent struct {
	Name        string
	Agent, Root event.UUID
}

// SpendGauges exports caracal_agent_spend_micros{agent,window} for at most
// MaxAgents agents: those with the largest spend in the current calendar
// month (ties by name; agents without spend this month are left out), read
// from the spend buckets in Redis (budget.Store.SpentMany, the buckets the
// aggregator writes and budgets check) every Interval.
type SpendGauges struct {
	Store *budget.Store
	// Agents lists the agents to consider; ListAgents reads them from the
	// agents table.
	Agents    func(ctx context.Context) ([]SpendAgent, error)
	MaxAgents int
	Interval  time.Duration
	Logger    *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time

	set atomic.Pointer[metrics.Set]
}

// ListAgents returns a SpendGauges.Agents reading every agent of pool.
func ListAgents(pool *pgxpool.Pool) func(ctx context.Context) ([]SpendAgent, error) {
	return func(ctx context.Context) ([]SpendAgent, error) {
		rows, err := pool.Query(ctx, `SELECT name, id::text, root_id::text FROM agents`)
		if err != nil {
			return nil, fmt.Errorf("cannot list agents: %w", err)
		}
		defer rows.Close()
		var out []SpendAgent
		for rows.Next() {
			var a SpendAgent
			var id, root string
			if err := rows.Scan(&a.Name, &id, &root); err != nil {
				return nil, fmt.Errorf("cannot list agents: %w", err)
			}
			var err1, err2 error
			a.Agent, err1 = event.ParseUUID([]byte(id))
			a.Root, err2 = event.ParseUUID([]byte(root))
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("cannot list agents: bad id of %s", a.Name)
			}
			out = append(out, a)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("cannot list agents: %w", err)
		}
		return out, nil
	}
}

// Set returns the gauges of the last refresh (nil before the first).
func (g *SpendGauges) Set() *metrics.Set { return g.set.Load() }

// Refresh reads the spend again and replaces the gauges.
func (g *SpendGauges) Refresh(ctx context.Context) error {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	t := now()
	set := metrics.NewSet()
	n := 0
	if g.MaxAgents > 0 {
		agents, err := g.Agents(ctx)
		if err != nil {
			return err
		}
		refs := make([]budget.AgentRef, len(agents))
		for i, a := range agents {
			refs[i] = budget.AgentRef{Agent: a.Agent, Root: a.Root}
		}
		month, err := g.Store.SpentMany(ctx, refs, control.Monthly, false, t)
		if err != nil {
			return err
		}
		top := make([]int, 0, len(agents))
		for i := range agents {
			if month[i] > 0 {
				top = append(top, i)
			}
		}
		slices.SortFunc(top, func(a, b int) int {
			if c := cmp.Compare(month[b], month[a]); c != 0 {
				return c
			}
			return cmp.Compare(agents[a].Name, agents[b].Name)
		})
		top = top[:min(len(top), g.MaxAgents)]
		refs = refs[:0]
		for _, i := range top {
			refs = append(refs, budget.AgentRef{Agent: agents[i].Agent, Root: agents[i].Root})
		}
		day, err := g.Store.SpentMany(ctx, refs, control.Daily, false, t)
		if err != nil {
			return err
		}
		for j, i := range top {
			m, d := float64(month[i]), float64(day[j])
			// Agent names are [A-Za-z0-9._:-] (the schema's check): no
			// quoting needed in a label value.
			set.NewGauge(fmt.Sprintf(`%s{agent=%q,window="day"}`, SpendMetric, agents[i].Name), func() float64 { return d })
			set.NewGauge(fmt.Sprintf(`%s{agent=%q,window="month"}`, SpendMetric, agents[i].Name), func() float64 { return m })
		}
		n = len(top)
	}
	old := g.set.Swap(set)
	published.CompareAndSwap(old, set)
	spendAgents.set(float64(n))
	spendRefreshedAt.set(float64(t.Unix()))
	return nil
}

// Run publishes the gauges on the process's /metrics and refreshes them at
// once and then every Interval until ctx is done; a failed refresh keeps
// the previous values (caracal_agent_spend_refresh_errors_total counts it,
// caracal_agent_spend_refreshed_timestamp_seconds shows their age). On
// return the gauges are withdrawn.
func (g *SpendGauges) Run(ctx context.Context) error {
	log := g.Logger
	if log == nil {
		log = slog.Default()
	}
	empty := metrics.NewSet()
	g.set.Store(empty)
	published.Store(empty)
	defer func() { published.CompareAndSwap(g.set.Load(), nil) }()
	interval := g.Interval
	if interval <= 0 {
		interval = 15 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := g.Refresh(ctx); err != nil && ctx.Err() == nil {
			spendRefreshErrors.Inc()
			log.Warn("cannot refresh the per-agent spend gauges", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
