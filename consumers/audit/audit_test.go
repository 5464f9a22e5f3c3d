package audit

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func TestAuditRowsEqualDecisionsAndReplayAddsNothing(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	pool := testenv.PG(t)
	decisions, audits, dlq := testenv.Name("decisions-"), testenv.Name("audit-"), testenv.Name("dlq-")
	cl := ctest.Topics(t, cfg, decisions, audits, dlq)
	ids := event.NewIDGen()
	var recs []*kgo.Record
	for i := 0; i < 90; i++ {
		a := event.Audit{ID: ids.New(time.Now()), TimeUnixUs: time.Now().UnixMicro(), Type: []byte("decision"),
			Agent: event.UUID{byte(i)}, Route: []byte("openai"), Reason: []byte("budget_exceeded"), Status: 402}
		topic := decisions
		if i%3 == 0 {
			a.Type, a.Agent, a.Status, a.KeyPrefix = []byte("auth_failure"), event.UUID{}, 401, []byte("crk_abcdefghijkl")
			topic = audits
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: a.AppendJSON(nil)})
	}
	ctest.Produce(t, cl, recs...)
	end := ctest.EndOffsets(t, cl, decisions, audits)
	count := func(sql string) int64 {
		var n int64
		if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stored := func() int64 { return count(`SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets`) }
	run := func(group string) {
		ctest.Consume(t, cfg, New(pool, group), runner.Options{Name: "audit", Group: group,
			Topics: []string{decisions, audits}, DLQTopic: dlq, MaxPollRecords: 20},
			func() bool { return stored() == end && ctest.CommittedOffsets(t, cl, group) == end })
	}
	run(testenv.Name("audit-g-"))
	if got := count(`SELECT count(*) FROM audit_log WHERE type = 'decision'`); got != 60 {
		t.Fatalf("%d decision rows, want 60", got)
	}
	if got := count(`SELECT count(*) FROM audit_log WHERE type = 'auth_failure' AND agent_id IS NULL`); got != 30 {
		t.Fatalf("%d auth failure rows, want 30", got)
	}
	// Another group from the start (as after lost offsets): the unique
	// (topic, partition, offset) keeps every record once.
	if _, err := pool.Exec(context.Background(), `DELETE FROM consumer_offsets`); err != nil {
		t.Fatal(err)
	}
	run(testenv.Name("audit-g-"))
	if got := count(`SELECT count(*) FROM audit_log`); got != 90 {
		t.Fatalf("%d audit rows after replay, want 90", got)
	}
	checkQuery(t, pool)
	if _, err := pool.Exec(context.Background(), `DELETE FROM audit_log`); err == nil {
		t.Fatal("audit_log accepted a DELETE")
	}
}

// checkQuery runs `caracal audit query`'s filters over the 60 decisions
// (agent {i}, i not a multiple of 3) and 30 auth failures (no agent).
func checkQuery(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx, now := context.Background(), time.Now()
	q := func(f Filter) []Row {
		t.Helper()
		rows, err := Query(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	if rows := q(Filter{}); len(rows) != 90 {
		t.Fatalf("query without filters: %d rows, want 90", len(rows))
	}
	rows := q(Filter{Type: "auth_failure", Limit: 1000})
	if len(rows) != 30 {
		t.Fatalf("--type auth_failure: %d rows, want 30", len(rows))
	}
	for _, r := range rows {
		if r.Type != "auth_failure" || r.Agent != "" || r.Status != 401 || r.KeyPrefix != "crk_abcdefghijkl" {
			t.Fatalf("--type auth_failure returned %+v", r)
		}
	}
	agent := event.UUID{5}
	rows = q(Filter{Agent: &agent})
	if len(rows) != 1 || rows[0].Type != "decision" || rows[0].Agent != agent.String() || rows[0].Status != 402 ||
		rows[0].Reason != "budget_exceeded" || rows[0].Route != "openai" {
		t.Fatalf("--agent %s: %+v, want its one decision", agent, rows)
	}
	rows = q(Filter{Limit: 7})
	if len(rows) != 7 {
		t.Fatalf("--limit 7: %d rows", len(rows))
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].Time.After(rows[i-1].Time) {
			t.Fatalf("rows not newest first: %v after %v", rows[i].Time, rows[i-1].Time)
		}
	}
	if rows := q(Filter{Type: "decision", From: now.Add(-time.Hour), To: now.Add(time.Hour), Limit: 1000}); len(rows) != 60 {
		t.Fatalf("--type decision in the last hour: %d rows, want 60", len(rows))
	}
	if rows := q(Filter{From: now.Add(time.Hour)}); len(rows) != 0 {
		t.Fatalf("--from in an hour: %d rows, want 0", len(rows))
	}
	if rows := q(Filter{To: now.Add(-time.Hour)}); len(rows) != 0 {
		t.Fatalf("--to an hour ago: %d rows, want 0", len(rows))
	}
}
