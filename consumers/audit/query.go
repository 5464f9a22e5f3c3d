package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caracal-gw/caracal/internal/event"
)

// Filter selects audit rows; zero fields do not filter.
type Filter struct {
	Agent    *event.UUID
	Type     string
	From, To time.Time
	Limit    int
}

// Row is one audit record.
type Row struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Agent     string    `json:"agent_id,omitempty"`
	Route     string    `json:"route"`
	Reason    string    `json:"reason"`
	Status    int       `json:"status"`
	ClientIP  string    `json:"client_ip"`
	KeyPrefix string    `json:"key_prefix"`
	RequestID string    `json:"request_id"`
	Gateway   string    `json:"gateway"`
	EventID   string    `json:"event_id"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
}

// Query lists audit records matching f, newest first.
func Query(ctx context.Context, pool *pgxpool.Pool, f Filter) ([]Row, error) {
	cond, args := "true", []any{}
	add := func(sql string, v any) {
		args = append(args, v)
		cond += " AND " + sql + "$" + strconv.Itoa(len(args))
	}
	if f.Agent != nil {
		add("agent_id = ", [16]byte(*f.Agent))
	}
	if f.Type != "" {
		add("type = ", f.Type)
	}
	if !f.From.IsZero() {
		add("ts >= ", f.From)
	}
	if !f.To.IsZero() {
		add("ts < ", f.To)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := pool.Query(ctx, `SELECT ts, type, agent_id, route, reason, status, client_ip, key_prefix, request_id,
		gateway, event_id, topic, partition, "offset" FROM audit_log WHERE `+cond+` ORDER BY ts DESC LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query the audit log: %w", err)
	}
	var out []Row
	var r Row
	var agent *[16]byte
	var id [16]byte
	_, err = pgx.ForEachRow(rows, []any{&r.Time, &r.Type, &agent, &r.Route, &r.Reason, &r.Status, &r.ClientIP,
		&r.KeyPrefix, &r.RequestID, &r.Gateway, &id, &r.Topic, &r.Partition, &r.Offset}, func() error {
		r.Agent = ""
		if agent != nil {
			r.Agent = event.UUID(*agent).String()
		}
		r.EventID = event.ID(id).String()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query the audit log: %w", err)
	}
	return out, nil
}
