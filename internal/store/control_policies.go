package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/caracal-gw/caracal/internal/control"
)

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// PolicySpec is a budget limit to set.
type PolicySpec struct {
	Agent       string // name or id
	LimitMicros int64
	Currency    string // default USD
	Window      string // hourly|daily|weekly|monthly
	Rolling     bool
	Active      bool
	Reason      string // required
}

// PolicyRow is a policy, or one version of it in the history.
type PolicyRow struct {
	ID          string    `json:"id"`
	Agent       string    `json:"agent"`
	AgentID     string    `json:"agent_id"`
	LimitMicros int64     `json:"limit_micros"`
	Currency    string    `json:"currency"`
	Window      string    `json:"window"`
	WindowKind  string    `json:"window_kind"`
	Active      bool      `json:"active"`
	Version     int       `json:"version"`
	Reason      string    `json:"change_reason"`
	ChangedBy   string    `json:"changed_by"`
	ChangedAt   time.Time `json:"changed_at"`
}

func normCurrency(c string) (string, error) {
	if c == "" {
		return "USD", nil
	}
	u := strings.ToUpper(c)
	if !currencyRE.MatchString(u) {
		return "", fmt.Errorf("invalid currency %q: want a 3-letter ISO 4217 code such as USD", c)
	}
	return u, nil
}

// SetPolicy creates or changes the agent's policy for (window, kind); every
// change is a new version in the history with its reason.
func SetPolicy(ctx context.Context, q Execer, p PolicySpec) (PolicyRow, error) {
	if strings.TrimSpace(p.Reason) == "" {
		return PolicyRow{}, fmt.Errorf("a change reason is required (--reason)")
	}
	if p.LimitMicros < 0 {
		return PolicyRow{}, fmt.Errorf("the limit must not be negative")
	}
	if _, ok := control.ParseWindow(p.Window); !ok {
		return PolicyRow{}, fmt.Errorf("invalid window %q: want hourly, daily, weekly or monthly", p.Window)
	}
	cur, err := normCurrency(p.Currency)
	if err != nil {
		return PolicyRow{}, err
	}
	id, err := agentID(ctx, q, p.Agent)
	if err != nil {
		return PolicyRow{}, err
	}
	kind := "calendar"
	if p.Rolling {
		kind = "rolling"
	}
	var pid pgtype.UUID
	err = q.QueryRow(ctx, `INSERT INTO policies (agent_id, limit_micros, currency, window_size, window_kind, active, change_reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (agent_id, window_size, window_kind) DO UPDATE SET limit_micros = EXCLUDED.limit_micros,
			currency = EXCLUDED.currency, active = EXCLUDED.active, change_reason = EXCLUDED.change_reason,
			changed_by = current_user
		RETURNING id`, pgUUID(id), p.LimitMicros, cur, p.Window, kind, p.Active, p.Reason).Scan(&pid)
	if err != nil {
		return PolicyRow{}, dbError(fmt.Sprintf("set the %s policy of agent %q", p.Window, p.Agent), err)
	}
	return scanPolicyRow(q.QueryRow(ctx, policySelect+` WHERE p.id = $1`, pid))
}

const policySelect = `SELECT p.id, a.name, p.agent_id, p.limit_micros, p.currency, p.window_size, p.window_kind,
	p.active, p.version, p.change_reason, p.changed_by, p.updated_at
	FROM policies p JOIN agents a ON a.id = p.agent_id`

const historySelect = `SELECT v.policy_id, a.name, v.agent_id, v.limit_micros, v.currency, v.window_size, v.window_kind,
	v.active, v.version, v.change_reason, v.changed_by, v.changed_at
	FROM policy_versions v JOIN agents a ON a.id = v.agent_id`

func scanPolicyRow(row pgx.Row) (PolicyRow, error) {
	var r PolicyRow
	var id, agent pgtype.UUID
	err := row.Scan(&id, &r.Agent, &agent, &r.LimitMicros, &r.Currency, &r.Window, &r.WindowKind,
		&r.Active, &r.Version, &r.Reason, &r.ChangedBy, &r.ChangedAt)
	r.ID, r.AgentID = uuidText(id), uuidText(agent)
	return r, err
}

// ListPolicies returns the policies of one agent (or of all when agent is
// empty).
func ListPolicies(ctx context.Context, q Querier, agent string) ([]PolicyRow, error) {
	sql, args := policySelect+` ORDER BY a.name, p.window_size, p.window_kind`, []any(nil)
	if agent != "" {
		id, err := agentID(ctx, q, agent)
		if err != nil {
			return nil, err
		}
		sql, args = policySelect+` WHERE p.agent_id = $1 ORDER BY p.window_size, p.window_kind`, []any{pgUUID(id)}
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot list policies: %w", err)
	}
	return collect(rows, scanPolicyRow, "list policies")
}

// PolicyHistory returns every version of every policy of an agent, oldest
// first.
func PolicyHistory(ctx context.Context, q Querier, agent string) ([]PolicyRow, error) {
	id, err := agentID(ctx, q, agent)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, historySelect+` WHERE v.agent_id = $1 ORDER BY v.changed_at, v.policy_id, v.version`, pgUUID(id))
	if err != nil {
		return nil, fmt.Errorf("cannot read the policy history: %w", err)
	}
	return collect(rows, scanPolicyRow, "read the policy history")
}
