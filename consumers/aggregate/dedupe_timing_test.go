package aggregate

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// BenchmarkHandleBatch is one 500-record batch of 4 trees decoded and
// applied: no spooled record, one, or all of them (the ledger writer's
// offsets already past, every record the ledger's own copy, so no wait and
// nothing skipped). Run under the bench lock, the variants side by side:
//
//	CARACAL_INTEGRATION=1 flock /tmp/caracal-bench.lock go test -run '^$' -bench HandleBatch -count 3 ./consumers/aggregate/
func BenchmarkHandleBatch(b *testing.B) {
	cfg := testenv.Config(b)
	rc, err := budget.NewClient(cfg.Redis)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rc.Close)
	store := budget.NewStore(rc)
	pool := testenv.PG(b)
	ctx := context.Background()
	now := time.Now()
	ids := event.NewIDGen()
	topic, ledGroup := testenv.Name("metering-"), testenv.Name("led-")
	if _, err := pool.Exec(ctx, `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, 0, $3)`,
		ledGroup, topic, int64(1)<<60); err != nil {
		b.Fatal(err)
	}
	trees := []tree{newTree(b), newTree(b), newTree(b), newTree(b)}
	const n = 500
	var seq int64
	batch := func(spooledN int, base int64) []*kgo.Record {
		recs := make([]*kgo.Record, n)
		var eids [][16]byte
		var offs, seqs []int64
		var tss []time.Time
		for i := range n {
			ev := trees[i%4].event(ids, now.Add(time.Duration(seq+int64(i))*time.Microsecond), 100)
			recs[i] = record(topic, 0, &ev, i < spooledN)
			recs[i].Offset = base + int64(i)
			if i < spooledN {
				eids = append(eids, ev.ID)
				offs = append(offs, recs[i].Offset)
				seqs = append(seqs, seq)
				tss = append(tss, time.UnixMicro(ev.TimeUnixUs).UTC())
				seq++
			}
		}
		if len(eids) > 0 {
			if _, err := pool.Exec(ctx, `WITH x AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS x(id, off, seq, ts)),
				ids AS (INSERT INTO ledger_ids SELECT id, seq FROM x)
				INSERT INTO ledger (seq, event_id, ts, kind, agent_id, root_id, route, model, request_id, gateway,
					input_tokens, output_tokens, cost_micros, reserved_micros, currency, status, latency_us, pricing,
					src_partition, src_offset)
				SELECT seq, id, ts, 1, id, id, '', '', '', '', 0, 0, 100, 0, 'USD', 200, 0, 1, 0, off FROM x`,
				eids, offs, seqs, tss); err != nil {
				b.Fatal(err)
			}
		}
		return recs
	}
	for _, c := range []struct {
		name     string
		spooledN int
	}{{"spooled=0", 0}, {"spooled=1", 1}, {"spooled=500", n}} {
		b.Run(c.name, func(b *testing.B) {
			a := New(store, testenv.Name("agg-"))
			a.LedgerPool, a.LedgerGroup = pool, ledGroup
			var base int64
			for b.Loop() {
				b.StopTimer()
				recs := batch(c.spooledN, base)
				base += n
				b.StartTimer()
				a.Begin()
				for _, r := range recs {
					if err := a.Decode(r); err != nil {
						b.Fatal(err)
					}
				}
				if err := a.HandleBatch(ctx, &runner.Batch{}); err != nil {
					b.Fatal(err)
				}
			}
			if s := a.stats.skipped.Load(); s != 0 {
				b.Fatalf("%d records skipped", s)
			}
		})
	}
}
