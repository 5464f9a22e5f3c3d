// Package audit is the AuditLogger: policy decisions and audit events into
// the append-only audit_log table, unique on (topic, partition, offset),
// with the consumed offsets stored in the same transaction.
package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/event"
)

// Logger is a runner.Handler.
type Logger struct {
	pool  *pgxpool.Pool
	group string

	ev   event.Audit
	rows [][]any
}

// New returns a Logger storing offsets under group.
func New(pool *pgxpool.Pool, group string) *Logger {
	return &Logger{pool: pool, group: group}
}

// Begin implements runner.Handler.
func (l *Logger) Begin() { l.rows = l.rows[:0] }

// Decode implements runner.Handler.
func (l *Logger) Decode(r *kgo.Record) error {
	if err := event.DecodeAudit(r.Value, &l.ev); err != nil {
		return err
	}
	a := &l.ev
	var agent any
	if !a.Agent.IsZero() {
		agent = [16]byte(a.Agent)
	}
	l.rows = append(l.rows, []any{r.Topic, r.Partition, r.Offset, [16]byte(a.ID), time.UnixMicro(a.TimeUnixUs).UTC(),
		string(a.Type), agent, string(a.Route), string(a.Reason), a.Status, string(a.ClientIP),
		string(a.KeyPrefix), string(a.RequestID), string(a.Gateway)})
	return nil
}

// Stored implements runner.Handler.
func (l *Logger) Stored(ctx context.Context, assigned map[string][]int32) (runner.Offsets, error) {
	return runner.StoredOffsets(ctx, l.pool, l.group, assigned)
}

var columns = []string{"topic", "partition", "offset", "event_id", "ts", "type", "agent_id", "route",
	"reason", "status", "client_ip", "key_prefix", "request_id", "gateway"}

const createStage = `CREATE TEMP TABLE IF NOT EXISTS audit_stage (LIKE audit_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`

const insertNew = `INSERT INTO audit_log (topic, partition, "offset", event_id, ts, type, agent_id, route, reason,
	status, client_ip, key_prefix, request_id, gateway)
SELECT topic, partition, "offset", event_id, ts, type, agent_id, route, reason, status, client_ip,
	key_prefix, request_id, gateway FROM audit_stage
ON CONFLICT (topic, partition, "offset") DO NOTHING`

// HandleBatch implements runner.Handler.
func (l *Logger) HandleBatch(ctx context.Context, b *runner.Batch) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cannot begin the audit transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if len(l.rows) > 0 {
		if _, err := tx.Exec(ctx, createStage); err != nil {
			return fmt.Errorf("cannot create the audit staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_stage"}, columns, pgx.CopyFromRows(l.rows)); err != nil {
			return fmt.Errorf("cannot copy the audit batch: %w", err)
		}
		if _, err := tx.Exec(ctx, insertNew); err != nil {
			return fmt.Errorf("cannot insert audit rows: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, runner.StoreOffsetsSQL, runner.OffsetArgs(l.group, b.Next)...); err != nil {
		return fmt.Errorf("cannot store consumer offsets: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cannot commit the audit batch: %w", err)
	}
	return nil
}
