package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// AllowRow is one allow-list entry.
type AllowRow struct {
	Agent     string    `json:"agent"`
	AgentID   string    `json:"agent_id"`
	Kind      string    `json:"kind"`
	Pattern   string    `json:"pattern"`
	CreatedAt time.Time `json:"created_at"`
}

func checkAllow(kind, pattern string) error {
	switch kind {
	case "route", "model", "target":
	default:
		return fmt.Errorf("invalid allow-list kind %q: want route, model or target", kind)
	}
	if pattern == "" || strings.TrimSpace(pattern) != pattern {
		return fmt.Errorf("invalid %s pattern %q: it must be non-empty without surrounding spaces", kind, pattern)
	}
	if kind == "target" && strings.Contains(pattern, "/") {
		return fmt.Errorf("invalid target pattern %q: want a host name or *.suffix, not a URL", pattern)
	}
	if i := strings.IndexByte(pattern, '*'); i >= 0 {
		ok := (kind == "model" && i == len(pattern)-1) || (kind == "target" && strings.HasPrefix(pattern, "*.") && i == 0 && strings.Count(pattern, "*") == 1)
		if !ok {
			return fmt.Errorf("invalid %s pattern %q: '*' is allowed only at the end of a model or as *.suffix of a target", kind, pattern)
		}
	}
	return nil
}

// AddAllow adds pattern to an agent's allow-list of kind (route, model or
// target); adding it again is a no-op.
func AddAllow(ctx context.Context, q Execer, agent, kind, pattern string) error {
	if err := checkAllow(kind, pattern); err != nil {
		return err
	}
	id, err := agentID(ctx, q, agent)
	if err != nil {
		return err
	}
	if kind == "target" {
		pattern = strings.ToLower(pattern)
	}
	_, err = q.Exec(ctx, `INSERT INTO allow_lists (agent_id, kind, pattern) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		pgUUID(id), kind, pattern)
	if err != nil {
		return dbError(fmt.Sprintf("add %s %q to the allow-list of %q", kind, pattern, agent), err)
	}
	return nil
}

// RemoveAllow removes pattern from an agent's allow-list.
func RemoveAllow(ctx context.Context, q Execer, agent, kind, pattern string) error {
	if err := checkAllow(kind, pattern); err != nil {
		return err
	}
	id, err := agentID(ctx, q, agent)
	if err != nil {
		return err
	}
	if kind == "target" {
		pattern = strings.ToLower(pattern)
	}
	tag, err := q.Exec(ctx, `DELETE FROM allow_lists WHERE agent_id = $1 AND kind = $2 AND pattern = $3`, pgUUID(id), kind, pattern)
	if err != nil {
		return dbError(fmt.Sprintf("remove %s %q from the allow-list of %q", kind, pattern, agent), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %q is not on the allow-list of agent %q", kind, pattern, agent)
	}
	return nil
}

// ListAllow returns allow-list entries, filtered by agent and kind when
// they are not empty.
func ListAllow(ctx context.Context, q Querier, agent, kind string) ([]AllowRow, error) {
	var agentArg pgtype.UUID
	if agent != "" {
		id, err := agentID(ctx, q, agent)
		if err != nil {
			return nil, err
		}
		agentArg = pgUUID(id)
	}
	if kind != "" {
		if err := checkAllow(kind, "x"); err != nil {
			return nil, err
		}
	}
	rows, err := q.Query(ctx, `SELECT a.name, l.agent_id, l.kind, l.pattern, l.created_at
		FROM allow_lists l JOIN agents a ON a.id = l.agent_id
		WHERE ($1::uuid IS NULL OR l.agent_id = $1) AND ($2 = '' OR l.kind = $2)
		ORDER BY a.name, l.kind, l.pattern`, agentArg, kind)
	if err != nil {
		return nil, fmt.Errorf("cannot list allow-lists: %w", err)
	}
	return collect(rows, func(row pgx.Row) (AllowRow, error) {
		var r AllowRow
		var id pgtype.UUID
		err := row.Scan(&r.Agent, &id, &r.Kind, &r.Pattern, &r.CreatedAt)
		r.AgentID = uuidText(id)
		return r, err
	}, "list allow-lists")
}
