package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caracal-gw/caracal/internal/event"
)

// Filter selects ledger entries. Zero fields do not filter.
type Filter struct {
	// Agent is an agent id; Subtree includes its descendants.
	Agent    *event.UUID
	Subtree  bool
	From, To time.Time // [From, To) by event time
	Route    string
	Model    string
	Limit    int
}

// where returns the SQL condition on ledger (alias l) and its arguments.
func (f *Filter) where() (string, []any) {
	cond, args := "true", []any{}
	add := func(sql string, v any) {
		args = append(args, v)
		cond += " AND " + fmt.Sprintf(sql, "$"+strconv.Itoa(len(args)))
	}
	if f.Agent != nil {
		if f.Subtree {
			add(`l.agent_id IN (WITH RECURSIVE sub AS (SELECT %[1]s::uuid AS id UNION SELECT a.id FROM agents a JOIN sub ON a.parent_id = sub.id) SELECT id FROM sub)`, [16]byte(*f.Agent))
		} else {
			add(`l.agent_id = %s`, [16]byte(*f.Agent))
		}
	}
	if !f.From.IsZero() {
		add(`l.ts >= %s`, f.From)
	}
	if !f.To.IsZero() {
		add(`l.ts < %s`, f.To)
	}
	if f.Route != "" {
		add(`l.route = %s`, f.Route)
	}
	if f.Model != "" {
		add(`l.model = %s`, f.Model)
	}
	return cond, args
}

// Row is one ledger entry as queries return it.
type Row struct {
	Seq            int64     `json:"seq"`
	EventID        string    `json:"event_id"`
	Time           time.Time `json:"time"`
	Agent          string    `json:"agent_id"`
	AgentName      string    `json:"agent"`
	Route          string    `json:"route"`
	Model          string    `json:"model"`
	InputTokens    int64     `json:"input_tokens"`
	OutputTokens   int64     `json:"output_tokens"`
	CostMicros     int64     `json:"cost_micros"`
	ReservedMicros int64     `json:"reserved_micros"`
	Currency       string    `json:"currency"`
	Status         int       `json:"status"`
}

// Query lists entries matching f, newest first.
func Query(ctx context.Context, pool *pgxpool.Pool, f Filter) ([]Row, error) {
	cond, args := f.where()
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := pool.Query(ctx, `SELECT l.seq, l.event_id, l.ts, l.agent_id, coalesce(a.name, ''), l.route, l.model,
		l.input_tokens, l.output_tokens, l.cost_micros, l.reserved_micros, l.currency, l.status
		FROM ledger l LEFT JOIN agents a ON a.id = l.agent_id WHERE `+cond+` ORDER BY l.seq DESC LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query the ledger: %w", err)
	}
	var out []Row
	var r Row
	var id, agent [16]byte
	_, err = pgx.ForEachRow(rows, []any{&r.Seq, &id, &r.Time, &agent, &r.AgentName, &r.Route, &r.Model,
		&r.InputTokens, &r.OutputTokens, &r.CostMicros, &r.ReservedMicros, &r.Currency, &r.Status}, func() error {
		r.EventID, r.Agent = event.ID(id).String(), event.UUID(agent).String()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query the ledger: %w", err)
	}
	return out, nil
}

// SummaryRow is the spend of one agent: its own, and with its descendants.
type SummaryRow struct {
	Agent       string `json:"agent_id"`
	AgentName   string `json:"agent"`
	Currency    string `json:"currency"`
	Entries     int64  `json:"entries"`
	OwnMicros   int64  `json:"own_micros"`
	TotalMicros int64  `json:"total_micros"`
}

// Summary sums the entries matching f (Agent and Subtree ignored) per agent
// and rolls them up to every ancestor. With f.Agent set, it lists that
// agent and its direct children.
func Summary(ctx context.Context, pool *pgxpool.Pool, f Filter) ([]SummaryRow, error) {
	agent := f.Agent
	f.Agent = nil
	cond, args := f.where()
	sel := "true"
	if agent != nil {
		args = append(args, [16]byte(*agent))
		n := "$" + strconv.Itoa(len(args))
		sel = "t.ancestor = " + n + " OR ag.parent_id = " + n
	}
	rows, err := pool.Query(ctx, `WITH RECURSIVE own AS (
		SELECT l.agent_id, l.currency, sum(l.cost_micros) AS cost, count(*) AS n FROM ledger l WHERE `+cond+`
		GROUP BY l.agent_id, l.currency
	), anc AS (
		SELECT id AS agent, id AS ancestor FROM agents
		UNION ALL
		SELECT anc.agent, a.parent_id FROM anc JOIN agents a ON a.id = anc.ancestor WHERE a.parent_id IS NOT NULL
	), tree AS (
		SELECT * FROM anc
		UNION ALL
		SELECT DISTINCT o.agent_id, o.agent_id FROM own o WHERE NOT EXISTS (SELECT 1 FROM agents WHERE id = o.agent_id)
	)
	SELECT t.ancestor, coalesce(ag.name, ''), o.currency,
		coalesce(sum(o.n) FILTER (WHERE t.agent = t.ancestor), 0)::bigint,
		coalesce(sum(o.cost) FILTER (WHERE t.agent = t.ancestor), 0)::bigint, sum(o.cost)::bigint
	FROM own o JOIN tree t ON t.agent = o.agent_id LEFT JOIN agents ag ON ag.id = t.ancestor
	WHERE `+sel+`
	GROUP BY t.ancestor, ag.name, o.currency ORDER BY 6 DESC, 2`, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot summarise the ledger: %w", err)
	}
	var out []SummaryRow
	var r SummaryRow
	var id [16]byte
	_, err = pgx.ForEachRow(rows, []any{&id, &r.AgentName, &r.Currency, &r.Entries, &r.OwnMicros, &r.TotalMicros}, func() error {
		r.Agent = event.UUID(id).String()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot summarise the ledger: %w", err)
	}
	return out, nil
}
