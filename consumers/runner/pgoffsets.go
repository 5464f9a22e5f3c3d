package runner

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier is what reads stored offsets: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// StoredOffsets reads the next offsets a PostgreSQL-backed handler stored in
// consumer_offsets for the group's assigned partitions.
func StoredOffsets(ctx context.Context, q Querier, group string, assigned map[string][]int32) (Offsets, error) {
	out := Offsets{}
	for topic := range assigned {
		rows, err := q.Query(ctx, `SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2`, group, topic)
		if err != nil {
			return nil, fmt.Errorf("cannot read stored offsets: %w", err)
		}
		var p int32
		var next int64
		if _, err := pgx.ForEachRow(rows, []any{&p, &next}, func() error { out.Set(topic, p, next); return nil }); err != nil {
			return nil, fmt.Errorf("cannot read stored offsets: %w", err)
		}
	}
	return out, nil
}

// StoreOffsetsSQL upserts the next offsets; its arguments come from
// OffsetArgs. An offset never moves back, so a member that lost its
// partitions cannot rewind the one that has them now.
const StoreOffsetsSQL = `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, updated_at)
SELECT $1, t, p, o, now() FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o)
ON CONFLICT (group_id, topic, partition) DO UPDATE
SET next_offset = greatest(consumer_offsets.next_offset, excluded.next_offset), updated_at = now()`

// OffsetArgs returns the arguments of StoreOffsetsSQL.
func OffsetArgs(group string, next Offsets) []any {
	var ts []string
	var ps []int32
	var os []int64
	for t, m := range next {
		for p, o := range m {
			ts, ps, os = append(ts, t), append(ps, p), append(os, o)
		}
	}
	return []any{group, ts, ps, os}
}
