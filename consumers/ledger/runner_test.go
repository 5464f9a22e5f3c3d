package ledger

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/runner"
)

// countingWriter counts the records the runner hands to the writer (and
// to its fork).
type countingWriter struct {
	*Writer
	decoded *atomic.Int64
}

func newCountingWriter(w *Writer) *countingWriter {
	return &countingWriter{Writer: w, decoded: new(atomic.Int64)}
}

func (c *countingWriter) Decode(r *kgo.Record) error {
	c.decoded.Add(1)
	return c.Writer.Decode(r)
}

func (c *countingWriter) Fork() runner.Handler {
	return &countingWriter{Writer: c.Writer.Fork().(*Writer), decoded: c.decoded}
}

// The runner seeks to the offsets stored with the rows, not to Kafka's
// committed offsets: after Kafka's are rewound, only new records are read.
func TestLedgerSeeksToStoredOffsets(t *testing.T) {
	f := newFixture(t)
	f.produce(f.events(30)...)
	f.consume(NewWriter(f.pool, f.group), 30)
	ctest.RewindGroup(t, f.producer, f.group, f.topic)
	f.produce(f.events(5)...)
	w := newCountingWriter(NewWriter(f.pool, f.group))
	f.consume(w, 35)
	if got := w.decoded.Load(); got != 5 {
		t.Fatalf("the writer read %d records after Kafka's offsets were rewound, want the 5 new ones", got)
	}
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, false)
	if !strings.Contains(buf.String(), `kafka_consumer_lag{group="`+f.group+`",topic="`+f.topic+`"`) {
		t.Fatal("kafka_consumer_lag is not exported for the group")
	}
}

// Two writers of one group at once (and a rebalance when the second joins):
// every event once, seq dense, the tree verifies.
func TestLedgerTwoWritersInOneGroup(t *testing.T) {
	f := newFixture(t)
	const n = 600
	f.cfg.Kafka.Consumer.MaxPollRecords = 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var runners []*runner.Runner
	for i := 0; i < 2; i++ {
		r, err := runner.New(f.cfg, NewWriter(f.pool, f.group), runner.Options{Name: "ledger", Group: f.group,
			Topics: []string{f.topic}, DLQTopic: f.dlq, MaxPollRecords: 20})
		if err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				t.Errorf("runner: %v", err)
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		for _, r := range runners {
			r.Close()
		}
	}()
	recs := f.events(n)
	for i := 0; i < n; i += 100 {
		f.produce(recs[i : i+100]...)
		time.Sleep(20 * time.Millisecond)
	}
	end := f.endOffsets()
	for deadline := time.Now().Add(60 * time.Second); f.storedTotal() != end; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stored offsets %d, want %d", f.storedTotal(), end)
		}
	}
	if got := f.q(`SELECT count(*) FROM ledger`); got != n {
		t.Fatalf("%d ledger rows, want %d", got, n)
	}
	if got := f.q(`SELECT max(seq) + 1 FROM ledger`); got != n {
		t.Fatalf("seq is not dense: max+1 = %d", got)
	}
	f.seal()
	if rep := f.verify(); rep.Problem != nil || rep.To != n {
		t.Fatalf("verify: %+v %v", rep, rep.Problem)
	}
}

func TestPartitionsAreCreatedAhead(t *testing.T) {
	f := newFixture(t)
	var made int64
	if err := f.pool.QueryRow(context.Background(), `SELECT ledger_ensure_partitions('2031-01-15Z', '2031-03-02Z', 2)`).Scan(&made); err != nil {
		t.Fatal(err)
	}
	if made != 5 {
		t.Fatalf("made %d partitions, want 5 (Jan..May 2031)", made)
	}
	if got := f.q(`SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname IN ('ledger_y2031m01', 'ledger_y2031m05')`); got != 2 {
		t.Fatalf("%d of the expected partitions exist", got)
	}
	if err := f.pool.QueryRow(context.Background(), `SELECT ledger_ensure_partitions('2031-01-15Z', '2031-03-02Z', 2)`).Scan(&made); err != nil || made != 0 {
		t.Fatalf("second call made %d partitions, %v", made, err)
	}
}

// Two sealers take turns (and race) over a growing ledger: each picks up
// the tree where the other left it, and the result verifies.
func TestSealersTakeTurns(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := NewSealer(f.pool, SealerOptions{Signer: f.signer, CheckpointEvery: 7, BatchSize: 5})
	b := NewSealer(f.pool, SealerOptions{Signer: f.signer, CheckpointEvery: 7, BatchSize: 5})
	w := NewWriter(f.pool, f.group)
	for round := 0; round < 6; round++ {
		w.rows = benchRows(13)
		if err := w.HandleBatch(ctx, &runner.Batch{Next: runner.Offsets{"t": {0: int64(round)}}}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, s := range []*Sealer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.SealAll(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// Whatever the race left, one more pass by the other sealer finishes.
		s := []*Sealer{a, b}[round%2]
		if err := s.SealAll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.q(`SELECT tree_size FROM merkle_head`); got != 78 {
		t.Fatalf("tree size %d, want 78", got)
	}
	if rep := f.verify(); rep.Problem != nil || rep.Checkpoints < 6 || rep.Uncovered != 0 {
		t.Fatalf("verify: %+v %v", rep, rep.Problem)
	}
}
