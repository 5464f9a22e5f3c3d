package recovery

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/event"
)

// Totals are the committed spend buckets of every tree, as the aggregator
// would have written them for the ledger entries below the resume offsets.
type Totals struct {
	ByRoot map[event.UUID][]budget.BucketTotal
	// Micros is the sum of the costs counted (each entry once).
	Micros  int64
	Entries int64
}

// horizon is where reconciled buckets start: the first day of the previous
// month (UTC), so every bucket any window reads (a calendar month, a rolling
// 31 days) is complete.
func horizon(now time.Time) time.Time {
	now = now.UTC()
	return time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, time.UTC)
}

// ComputeTotals sums the ledger entries of the metering topic with an offset
// below resume[partition] into the buckets of the agent and every ancestor.
// Entries of the last two hours are grouped by minute, of the last two days
// by hour, older ones by day: each granularity is only written from entries
// grouped at it or finer, with the cut points on bucket boundaries.
func ComputeTotals(ctx context.Context, q Querier, resume map[int32]int64, now time.Time) (*Totals, error) {
	parents, err := loadParents(ctx, q)
	if err != nil {
		return nil, err
	}
	cutMinute := now.UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	cutHour := now.UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	from := horizon(now)
	var ps []int32
	var os []int64
	for p, o := range resume {
		ps, os = append(ps, p), append(os, o)
	}
	rows, err := q.Query(ctx, `
		WITH r(p, o) AS (SELECT * FROM unnest($1::int[], $2::bigint[]))
		SELECT l.agent_id, l.root_id,
		       CASE WHEN l.ts >= $3 THEN 0 WHEN l.ts >= $4 THEN 1 ELSE 2 END AS g,
		       floor(extract(epoch FROM l.ts) / CASE WHEN l.ts >= $3 THEN 60 WHEN l.ts >= $4 THEN 3600 ELSE 86400 END)::bigint AS b,
		       sum(l.cost_micros)::bigint, count(*)
		FROM ledger l JOIN r ON l.src_partition = r.p AND l.src_offset < r.o
		WHERE l.ts >= $5
		GROUP BY 1, 2, 3, 4`, ps, os, cutMinute, cutHour, from)
	if err != nil {
		return nil, fmt.Errorf("cannot sum the ledger: %w", err)
	}
	defer rows.Close()
	type key struct {
		root, agent event.UUID
		g           budget.Gran
		b           int64
	}
	sums := map[key]int64{}
	t := &Totals{ByRoot: map[event.UUID][]budget.BucketTotal{}}
	units := [...]int64{60, 3600, 86400}
	for rows.Next() {
		var agentB, rootB [16]byte
		var g int
		var b, micros, n int64
		if err := rows.Scan(&agentB, &rootB, &g, &b, &micros, &n); err != nil {
			return nil, fmt.Errorf("cannot sum the ledger: %w", err)
		}
		agent, root := event.UUID(agentB), event.UUID(rootB)
		t.Micros += micros
		t.Entries += n
		if micros == 0 {
			continue
		}
		at := time.Unix(b*units[g], 0)
		for a, depth := agent, 0; depth <= event.MaxAncestors; depth++ {
			for _, gr := range budget.Grans[g:] {
				if gr == budget.Week && weekStart(at).Before(from) {
					continue // a week reaching before the horizon is partial
				}
				sums[key{root, a, gr, budget.BucketOf(gr, at)}] += micros
			}
			p, ok := parents[a]
			if !ok {
				break
			}
			a = p
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot sum the ledger: %w", err)
	}
	for k, v := range sums {
		t.ByRoot[k.root] = append(t.ByRoot[k.root], budget.BucketTotal{Agent: k.agent, Gran: k.g, Bucket: k.b, Micros: v})
	}
	for _, list := range t.ByRoot {
		slices.SortFunc(list, func(a, b budget.BucketTotal) int {
			if c := slices.Compare(a.Agent[:], b.Agent[:]); c != 0 {
				return c
			}
			if a.Gran != b.Gran {
				return int(a.Gran) - int(b.Gran)
			}
			return int(a.Bucket - b.Bucket)
		})
	}
	return t, nil
}

func weekStart(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	wd := (int(d.Weekday()) + 6) % 7 // Monday = 0
	return d.AddDate(0, 0, -wd)
}

// loadParents maps every agent with a parent to it (parents never change).
func loadParents(ctx context.Context, q Querier) (map[event.UUID]event.UUID, error) {
	rows, err := q.Query(ctx, `SELECT id, parent_id FROM agents WHERE parent_id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("cannot read agents: %w", err)
	}
	defer rows.Close()
	out := map[event.UUID]event.UUID{}
	for rows.Next() {
		var id, p [16]byte
		if err := rows.Scan(&id, &p); err != nil {
			return nil, fmt.Errorf("cannot read agents: %w", err)
		}
		out[event.UUID(id)] = event.UUID(p)
	}
	return out, rows.Err()
}

// Roots returns every delegation tree's root.
func Roots(ctx context.Context, q Querier) ([]event.UUID, error) {
	rows, err := q.Query(ctx, `SELECT id FROM agents WHERE parent_id IS NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("cannot read root agents: %w", err)
	}
	defer rows.Close()
	var out []event.UUID
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("cannot read root agents: %w", err)
		}
		out = append(out, event.UUID(id))
	}
	return out, rows.Err()
}
