package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/caracal-gw/caracal/internal/event"
)

// MaxDelegationDepth is the deepest an agent may sit below its root (the
// schema's depth check).
const MaxDelegationDepth = 7

var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// NewAgent is what creating an agent takes.
type NewAgent struct {
	Name           string
	Parent         string // name or id; empty for a root agent
	RateLimitRPS   int
	RateLimitBurst int
	ReplayRequired bool
}

// AgentRow is an agent as the administration commands show it.
type AgentRow struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	ParentID       string    `json:"parent_id,omitempty"`
	Parent         string    `json:"parent,omitempty"`
	RootID         string    `json:"root_id"`
	Depth          int       `json:"depth"`
	Status         string    `json:"status"`
	RateLimitRPS   int       `json:"rate_limit_rps"`
	RateLimitBurst int       `json:"rate_limit_burst"`
	ReplayRequired bool      `json:"replay_required"`
	CreatedAt      time.Time `json:"created_at"`
}

// CreateAgent inserts an agent and returns it.
func CreateAgent(ctx context.Context, q Execer, a NewAgent) (AgentRow, error) {
	if !agentNameRE.MatchString(a.Name) {
		return AgentRow{}, fmt.Errorf("invalid agent name %q: want 1-128 of A-Z a-z 0-9 . _ : - starting with a letter or digit", a.Name)
	}
	if a.RateLimitRPS < 0 || a.RateLimitBurst < 0 {
		return AgentRow{}, fmt.Errorf("rate limit and burst must not be negative")
	}
	if a.RateLimitBurst > 0 && a.RateLimitRPS == 0 {
		return AgentRow{}, fmt.Errorf("a rate-limit burst needs a rate limit (requests per second)")
	}
	if a.RateLimitRPS > 0 && a.RateLimitBurst == 0 {
		a.RateLimitBurst = a.RateLimitRPS
	}
	var parent pgtype.UUID
	if a.Parent != "" {
		id, err := ResolveAgent(ctx, q, a.Parent)
		if errors.Is(err, ErrNotFound) {
			return AgentRow{}, fmt.Errorf("parent agent %q not found", a.Parent)
		}
		if err != nil {
			return AgentRow{}, err
		}
		parent = pgUUID(id)
	}
	var id pgtype.UUID
	err := q.QueryRow(ctx, `INSERT INTO agents (name, parent_id, rate_limit_rps, rate_limit_burst, replay_required)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		a.Name, parent, a.RateLimitRPS, a.RateLimitBurst, a.ReplayRequired).Scan(&id)
	if err != nil {
		switch pe := pgErr(err); {
		case isUnique(err):
			return AgentRow{}, fmt.Errorf("agent %q already exists", a.Name)
		case pe != nil && pe.ConstraintName == "agents_depth_check":
			return AgentRow{}, fmt.Errorf("cannot create agent %q: delegation is at most %d levels below a root agent", a.Name, MaxDelegationDepth)
		}
		return AgentRow{}, dbError(fmt.Sprintf("create agent %q", a.Name), err)
	}
	return GetAgent(ctx, q, uuidText(id))
}

const agentSelect = `SELECT a.id, a.name, a.parent_id, COALESCE(p.name, ''), a.root_id, a.depth, a.status,
	a.rate_limit_rps, a.rate_limit_burst, a.replay_required, a.created_at
	FROM agents a LEFT JOIN agents p ON p.id = a.parent_id`

func scanAgentRow(row pgx.Row) (AgentRow, error) {
	var r AgentRow
	var id, parent, root pgtype.UUID
	err := row.Scan(&id, &r.Name, &parent, &r.Parent, &root, &r.Depth, &r.Status,
		&r.RateLimitRPS, &r.RateLimitBurst, &r.ReplayRequired, &r.CreatedAt)
	r.ID, r.ParentID, r.RootID = uuidText(id), uuidText(parent), uuidText(root)
	return r, err
}

// GetAgent returns the agent named ref, or whose id ref is.
func GetAgent(ctx context.Context, q Querier, ref string) (AgentRow, error) {
	id, err := ResolveAgent(ctx, q, ref)
	if err != nil {
		return AgentRow{}, err
	}
	r, err := scanAgentRow(q.QueryRow(ctx, agentSelect+` WHERE a.id = $1`, pgUUID(id)))
	if err != nil {
		return AgentRow{}, fmt.Errorf("cannot read agent %q: %w", ref, err)
	}
	return r, nil
}

// ListAgents returns every agent ordered by name.
func ListAgents(ctx context.Context, q Querier) ([]AgentRow, error) {
	rows, err := q.Query(ctx, agentSelect+` ORDER BY a.name`)
	if err != nil {
		return nil, fmt.Errorf("cannot list agents: %w", err)
	}
	defer rows.Close()
	out := []AgentRow{}
	for rows.Next() {
		r, err := scanAgentRow(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot list agents: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list agents: %w", err)
	}
	return out, nil
}

// SetAgentStatus enables (active) or disables an agent.
func SetAgentStatus(ctx context.Context, q Execer, ref string, active bool) (AgentRow, error) {
	id, err := ResolveAgent(ctx, q, ref)
	if err != nil {
		return AgentRow{}, err
	}
	status := "disabled"
	if active {
		status = "active"
	}
	if _, err := q.Exec(ctx, `UPDATE agents SET status = $2 WHERE id = $1`, pgUUID(id), status); err != nil {
		return AgentRow{}, dbError(fmt.Sprintf("set agent %q %s", ref, status), err)
	}
	return GetAgent(ctx, q, id.String())
}

// agentID resolves ref and words a missing agent as one clear line.
func agentID(ctx context.Context, q Querier, ref string) (event.UUID, error) {
	if ref == "" {
		return event.UUID{}, fmt.Errorf("an agent is required (--agent NAME or ID)")
	}
	return ResolveAgent(ctx, q, ref)
}
