package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/internal/ctest"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// memStore is what a test handler stores: every (partition, offset) it
// stored, in order, and per member. Like the aggregator it keeps no offsets
// of its own (Stored returns nil), so a member resumes from Kafka's
// committed offsets and only a correct revoke keeps every record once.
type memStore struct {
	mu            sync.Mutex
	times         map[string]int   // "partition/offset" -> times stored
	next          map[int32]int64  // highest stored next offset per partition
	log           []string         // "member partition offset" in store order
	by            map[string]int64 // records stored per member
	active        atomic.Int32     // HandleBatch calls in progress
	overlapStores atomic.Int32
	// decoded counts Decode calls; storedRecs the records stored.
	decoded, storedRecs atomic.Int64
	// decodedAhead counts stores during which a later batch was decoded.
	decodedAhead atomic.Int32
	atGate       atomic.Int32 // stores waiting at their handler's gate
	// committedAhead counts Kafka commits seen ahead of the stored offsets.
	committedAhead atomic.Int32
	// batchMax is the largest batch stored; multiPoll counts batches
	// larger than one poll could be (set by the test).
	batchMax, multiPoll atomic.Int64
	pollMax             int
	problems            []string
}

func newMemStore() *memStore {
	return &memStore{times: map[string]int{}, next: map[int32]int64{}, by: map[string]int64{}}
}

func (s *memStore) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// memHandler is a runner.Forker over a memStore.
type memHandler struct {
	s      *memStore
	member string
	buf    []*kgo.Record
	// gate, when set, holds a batch for which hold returns true until it
	// is closed (tests hold a batch in flight with it).
	gate chan struct{}
	hold func(*memHandler) bool
	// check, when set, runs at the start of every HandleBatch.
	check func()
	// waitDecode makes the first HandleBatch wait (bounded) until the
	// next batch is decoded, proving the overlap.
	waitDecode bool
	// slow is a pause in every HandleBatch; slowAt more in the one that
	// starts when slowAt records are stored.
	slow           time.Duration
	slowAt         int64
	slowAtDuration time.Duration
	forks          *atomic.Int32
	// batch, when set, holds the records of the batch being prepared (the
	// fork shares it; only the runner's goroutine touches it).
	batch *[]*kgo.Record
}

func (h *memHandler) Begin() {
	h.buf = h.buf[:0]
	if h.batch != nil {
		*h.batch = (*h.batch)[:0]
	}
}

func (h *memHandler) Decode(r *kgo.Record) error {
	h.s.decoded.Add(1)
	h.buf = append(h.buf, r)
	if h.batch != nil {
		*h.batch = append(*h.batch, r)
	}
	return nil
}

func (h *memHandler) Fork() runner.Handler {
	h.forks.Add(1)
	c := *h
	c.buf = nil
	return &c
}

func (h *memHandler) Stored(context.Context, map[string][]int32) (runner.Offsets, error) {
	return nil, nil
}

func (h *memHandler) HandleBatch(ctx context.Context, b *runner.Batch) error {
	if h.s.active.Add(1) > 1 {
		h.s.overlapStores.Add(1)
	}
	defer h.s.active.Add(-1)
	if h.check != nil {
		h.check()
	}
	if h.gate != nil && h.hold(h) {
		h.s.atGate.Add(1)
		select {
		case <-h.gate:
		case <-ctx.Done():
			h.s.atGate.Add(-1)
			return ctx.Err()
		}
		h.s.atGate.Add(-1)
	}
	// Records decoded beyond those stored and this batch's belong to a
	// later batch, decoded before this one is stored.
	ahead := func() bool { return h.s.decoded.Load() > h.s.storedRecs.Load()+int64(len(h.buf)) }
	if h.waitDecode {
		h.waitDecode = false
		for deadline := time.Now().Add(20 * time.Second); !ahead() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(h.slow)
	if h.slowAt > 0 && h.s.storedRecs.Load() == h.slowAt {
		time.Sleep(h.slowAtDuration)
	}
	if ahead() {
		h.s.decodedAhead.Add(1)
	}
	s := h.s
	if n := int64(len(h.buf)); n > s.batchMax.Load() {
		s.batchMax.Store(n) // one HandleBatch at a time
	}
	if s.pollMax > 0 && len(h.buf) > s.pollMax {
		s.multiPoll.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storedRecs.Add(int64(len(h.buf)))
	for _, r := range h.buf {
		k := strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
		s.times[k]++
		s.log = append(s.log, fmt.Sprintf("%s %d %d", h.member, r.Partition, r.Offset))
		s.by[h.member]++
		if r.Offset+1 > s.next[r.Partition] {
			s.next[r.Partition] = r.Offset + 1
		}
	}
	return nil
}

type fixture struct {
	cfg               *config.Config
	cl                *kgo.Client
	topic, dlq, group string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := testenv.Config(t)
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Kafka.Consumer.FetchMaxWaitMs = 100
	f := &fixture{cfg: cfg, topic: testenv.Name("runner-"), dlq: testenv.Name("runner-dlq-"), group: testenv.Name("runner-g-")}
	f.cl = ctest.Topics(t, cfg, f.topic, f.dlq)
	return f
}

func (f *fixture) produce(t *testing.T, n int) { t.Helper(); f.produceFrom(t, 0, n) }

// produceFrom produces n records numbered from, over the 3 partitions.
func (f *fixture) produceFrom(t *testing.T, from, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: f.topic, Partition: int32(i % 3), Value: []byte(strconv.Itoa(from + i))}
	}
	ctest.Produce(t, f.cl, recs...)
}

// committed returns the group's Kafka committed offsets per partition.
func (f *fixture) committed(t *testing.T) map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	off, err := kadm.NewClient(f.cl).FetchOffsets(ctx, f.group)
	if err != nil {
		t.Errorf("cannot fetch committed offsets: %v", err)
		return nil
	}
	out := map[int32]int64{}
	off.Each(func(o kadm.OffsetResponse) {
		if o.Topic == f.topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

func (f *fixture) start(t *testing.T, h runner.Handler, opts runner.Options) (stop func()) {
	t.Helper()
	opts.Name, opts.Group, opts.Topics, opts.DLQTopic = "test", f.group, []string{f.topic}, f.dlq
	opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	r, err := runner.New(f.cfg, h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("runner: %v", err)
			}
			r.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// notCommittedAhead is a memHandler check: Kafka's committed offsets never
// run ahead of the stored ones (counted in s.committedAhead, each a problem).
func (f *fixture) notCommittedAhead(t *testing.T, s *memStore) func() {
	return func() {
		s.mu.Lock()
		stored := map[int32]int64{}
		for p, o := range s.next {
			stored[p] = o
		}
		s.mu.Unlock()
		for p, c := range f.committed(t) {
			if c > stored[p] {
				s.committedAhead.Add(1)
				s.problem("partition %d committed to Kafka at %d before it was stored (stored up to %d)", p, c, stored[p])
			}
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 60 s waiting for %s", what)
		}
	}
}

func (s *memStore) total() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.by {
		n += v
	}
	return n
}

// checkOnce fails unless each of the n records was stored exactly once and
// each partition's records were stored in offset order.
func (s *memStore) checkOnce(t *testing.T, n int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.problems {
		t.Error(p)
	}
	if len(s.times) != n {
		t.Errorf("%d distinct records stored, want %d", len(s.times), n)
	}
	for k, c := range s.times {
		if c != 1 {
			t.Errorf("record %s stored %d times", k, c)
		}
	}
	last := map[int32]int64{}
	for _, l := range s.log {
		var m string
		var p int32
		var o int64
		if _, err := fmt.Sscan(l, &m, &p, &o); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[p]; ok && o != prev+1 {
			t.Errorf("partition %d: offset %d stored after %d", p, o, prev)
		}
		last[p] = o
	}
}

// The pipeline keeps the sequential guarantees: batches are stored one at
// a time in poll order (each partition's offsets stored in order, each
// record once), the next batch is decoded into the fork while one is being
// stored, and Kafka's committed offsets never run ahead of the stored ones
// (checked at the start of every store) and catch up in the end.
func TestPipelinedStoresInOrderAndCommitsOnlyStored(t *testing.T) {
	f := newFixture(t)
	const n = 900
	f.produce(t, n)
	s := newMemStore()
	h := &memHandler{s: s, member: "a", waitDecode: true, forks: new(atomic.Int32)}
	h.check = f.notCommittedAhead(t, s)
	f.start(t, h, runner.Options{MaxPollRecords: 40})
	waitFor(t, "every record stored and committed", func() bool {
		if s.total() < n {
			return false
		}
		var sum int64
		for _, c := range f.committed(t) {
			sum += c
		}
		return sum == n
	})
	s.checkOnce(t, n)
	if h.forks.Load() != 1 {
		t.Errorf("Fork called %d times, want once", h.forks.Load())
	}
	if s.overlapStores.Load() != 0 {
		t.Errorf("%d HandleBatch calls overlapped another", s.overlapStores.Load())
	}
	if s.decodedAhead.Load() == 0 {
		t.Error("no batch was decoded while the one before it was being stored: the runner did not overlap")
	}
}

// Sequential turns the overlap off: no Fork, no decode during a store.
func TestSequentialDoesNotOverlap(t *testing.T) {
	f := newFixture(t)
	const n = 300
	f.produce(t, n)
	s := newMemStore()
	h := &memHandler{s: s, member: "a", forks: new(atomic.Int32)}
	f.start(t, h, runner.Options{MaxPollRecords: 40, Sequential: true})
	waitFor(t, "every record stored", func() bool { return s.total() == n })
	s.checkOnce(t, n)
	if h.forks.Load() != 0 || s.decodedAhead.Load() != 0 {
		t.Errorf("sequential runner forked %d times, decoded ahead during %d stores", h.forks.Load(), s.decodedAhead.Load())
	}
}

// A second member joins while the first holds a batch in flight (its store
// is blocked at a gate). The rebalance waits for that batch; the revoke
// commits it and the client drops what the first member fetched but had not
// polled for the partitions it gives up. The handler keeps no offsets of its
// own, so any record stored twice or skipped shows a broken revoke. Both
// members must end up storing records.
//
// busy: the held batch is one of many, so the runner holds the next poll
// (decoded into the fork) while it waits for it. idle: the held batch is the
// last record there is, so the runner waits in an empty poll, and only the
// revoke's own wait for the batch in flight keeps the order.
//
// -multipoll: batches span several polls (BatchMaxRecords 8 polls'
// worth): the batch prepared while a's batch is held keeps polling until it
// is full, then waits; the rebalance must not split it. partial-multipoll:
// the batch prepared while a's batch is held cannot fill (the topic has no
// more), so the runner is still polling for it, waiting for records until
// the held batch is stored, when the second member joins; a rebalance
// allowed between the polls of one batch shows here as duplicates.
func TestRevokeFinishesTheBatchInFlight(t *testing.T) {
	for _, mode := range []string{"busy", "idle", "busy-multipoll", "idle-multipoll", "partial-multipoll"} {
		t.Run(mode, func(t *testing.T) {
			idle := strings.HasPrefix(mode, "idle") || strings.HasPrefix(mode, "partial")
			testRevoke(t, mode, idle, strings.HasSuffix(mode, "multipoll"))
		})
	}
}

func testRevoke(t *testing.T, mode string, idle, multi bool) {
	f := newFixture(t)
	first, more := 3000, 0
	if idle {
		first, more = 60, 600
	}
	partial := mode == "partial-multipoll"
	mid := 0
	if partial {
		first, mid = 200, 60
	}
	f.produce(t, first)
	s := newMemStore()
	gate := make(chan struct{})
	a := &memHandler{s: s, member: "a", gate: gate, slow: 5 * time.Millisecond, forks: new(atomic.Int32)}
	a.hold = func(h *memHandler) bool {
		switch {
		case partial:
			return h.s.storedRecs.Load() >= 100
		case idle:
			return h.s.decoded.Load() == int64(first) && h.s.storedRecs.Load()+int64(len(h.buf)) == int64(first)
		}
		return h.s.storedRecs.Load() >= 300
	}
	// Fast heartbeats: member a learns of the rebalance while its batch
	// is held.
	hb := []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}
	opts := runner.Options{MaxPollRecords: 50, ExtraOpts: hb}
	if multi {
		opts.BatchMaxRecords = 400
		s.pollMax = 50
	}
	if partial {
		// Batches of 100, 100 (held); then mid records of every partition
		// are produced: a third batch takes them, and the runner keeps
		// polling for more until the held batch is stored. That third
		// batch is slow to store: had the rebalance gone ahead during
		// the polling, the second member would read the offsets the
		// revoke committed (up to the held batch) before the third batch
		// is stored and committed, and store its records again.
		opts.BatchMaxRecords = 100
		a.slowAt, a.slowAtDuration = 200, time.Second
	}
	f.start(t, a, opts)
	waitFor(t, "member a to hold a batch in flight", func() bool { return s.atGate.Load() == 1 })
	if partial {
		f.produceFrom(t, first, mid)
		waitFor(t, "member a to poll the records produced meanwhile", func() bool { return s.decoded.Load() == int64(first+mid) })
	}
	before := s.total()
	b := &memHandler{s: s, member: "b", forks: new(atomic.Int32)}
	// b's assignment ends the rebalance (a has revoked what b gets); the
	// idle case produces its later records only then, so that both
	// members store some whatever the batch size.
	var bAssigned atomic.Bool
	bopts := opts
	bopts.ExtraOpts = append(append([]kgo.Opt{}, hb...), kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		if len(m) > 0 {
			bAssigned.Store(true)
		}
	}))
	f.start(t, b, bopts)
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the runners stop, should the test fail early
	// The rebalance cannot finish while a's batch is in flight; let it
	// wait a little, then release a's stores.
	time.Sleep(1500 * time.Millisecond)
	if got := s.total(); got != before {
		t.Errorf("%d records stored while member a's store was blocked", got-before)
	}
	release()
	if more > 0 {
		waitFor(t, "the held batch stored", func() bool { return s.total() >= int64(first) })
		waitFor(t, "member b assigned partitions", bAssigned.Load)
		f.produce(t, more)
	}
	n := first + mid + more
	waitFor(t, "every record stored", func() bool { return s.total() >= int64(n) })
	// Settle: nothing more may arrive (a duplicate would).
	time.Sleep(500 * time.Millisecond)
	s.checkOnce(t, n)
	s.mu.Lock()
	ba, bb := s.by["a"], s.by["b"]
	s.mu.Unlock()
	if ba == 0 || bb == 0 {
		t.Fatalf("stored by a: %d, by b: %d; the second member never got partitions", ba, bb)
	}
	if multi && !idle && s.multiPoll.Load() == 0 {
		t.Error("no batch spanned more than one poll")
	}
	if m := s.batchMax.Load(); m > int64(max(opts.BatchMaxRecords, opts.MaxPollRecords)) {
		t.Errorf("a batch of %d records, above the bound %d", m, max(opts.BatchMaxRecords, opts.MaxPollRecords))
	}
}

// A batch never straddles a rebalance. Member a's first batch that holds
// records of every partition is held between two of its polls (the
// runner's test hook, rebalances still blocked) while member b joins the
// group. The rebalance must wait until the batch is handed to the store
// step: b gets no partition while a's batch is held, and in the end every
// record is stored once. Were rebalances allowed between the polls of a
// batch, b would get partitions during the hold and read them from the
// start (nothing is committed yet) while a's batch, which holds records of
// every partition, stores them too.
func TestRebalanceWaitsForABatchBetweenPolls(t *testing.T) {
	f := newFixture(t)
	const n = 300
	f.produce(t, n)
	s := newMemStore()
	var batch []*kgo.Record
	a := &memHandler{s: s, member: "a", forks: new(atomic.Int32), batch: &batch}
	var held, released atomic.Bool
	holding := make(chan []*kgo.Record, 1) // a's batch so far, once held
	release := make(chan struct{})
	runner.SetTestBetweenPolls(func() {
		// Only member a's goroutine gets past held (b starts once a is
		// held), so only it reads batch.
		if held.Load() {
			return
		}
		parts := map[int32]bool{}
		for _, r := range batch {
			parts[r.Partition] = true
		}
		if len(parts) < 3 {
			return
		}
		held.Store(true)
		holding <- append([]*kgo.Record(nil), batch...)
		select {
		case <-release:
		case <-time.After(2 * time.Minute): // bounded, should the test fail early
		}
	})
	// Cleanups run last-in first-out: the hook goes after the runners stop.
	t.Cleanup(func() { runner.SetTestBetweenPolls(nil) })
	hb := []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}
	opts := runner.Options{MaxPollRecords: 50, BatchMaxRecords: n, ExtraOpts: hb}
	f.start(t, a, opts)
	var mid []*kgo.Record
	for deadline := time.Now().Add(60 * time.Second); mid == nil; {
		select {
		case mid = <-holding:
		case <-time.After(20 * time.Millisecond):
			if s.total() >= n || time.Now().After(deadline) {
				t.Fatalf("member a never held a batch with records of every partition between polls (%d records stored)", s.total())
			}
		}
	}
	var once sync.Once
	unhold := func() { once.Do(func() { released.Store(true); close(release) }) }
	t.Cleanup(unhold) // before the runners stop
	var bAssigned, bAssignedHeld atomic.Bool
	bopts := opts
	bopts.ExtraOpts = append(append([]kgo.Opt{}, hb...), kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		if len(m) == 0 {
			return
		}
		if !released.Load() {
			bAssignedHeld.Store(true)
		}
		bAssigned.Store(true)
	}))
	b := &memHandler{s: s, member: "b", forks: new(atomic.Int32)}
	f.start(t, b, bopts)
	// Give the rebalance time to go ahead, were it allowed: hold a's
	// batch until b has partitions or for 4 s.
	for deadline := time.Now().Add(4 * time.Second); !bAssigned.Load() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if bAssignedHeld.Load() {
		t.Error("member b got partitions while member a's batch was between two polls")
	}
	unhold()
	waitFor(t, "member b assigned partitions", bAssigned.Load)
	waitFor(t, "every record stored", func() bool { return s.total() >= n })
	// Settle: nothing more may arrive (a duplicate would).
	time.Sleep(500 * time.Millisecond)
	s.checkOnce(t, n)
	inMid := map[string]bool{}
	for _, r := range mid {
		inMid[fmt.Sprintf("%d %d", r.Partition, r.Offset)] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	both := 0
	for _, l := range s.log {
		if k, ok := strings.CutPrefix(l, "b "); ok && inMid[k] {
			both++
		}
	}
	if both > 0 {
		t.Errorf("member b stored %d of the %d records member a's batch held between polls", both, len(mid))
	}
	t.Logf("a's batch held %d records between polls; stored by a: %d, by b: %d", len(mid), s.by["a"], s.by["b"])
}

// Batches span polls up to BatchMaxRecords while records are ready, in
// store order, each record once, Kafka commits never ahead of the stored
// offsets; a forked and a plain handler alike.
func TestBatchesSpanPolls(t *testing.T) {
	for _, forked := range []bool{true, false} {
		t.Run(map[bool]string{true: "forker", false: "plain"}[forked], func(t *testing.T) {
			f := newFixture(t)
			const n = 3000
			f.produce(t, n)
			s := newMemStore()
			s.pollMax = 40
			mh := &memHandler{s: s, member: "a", slow: 5 * time.Millisecond, forks: new(atomic.Int32)}
			mh.check = f.notCommittedAhead(t, s)
			var h runner.Handler = mh
			if !forked {
				h = plainHandler{mh}
			}
			f.start(t, h, runner.Options{MaxPollRecords: 40, BatchMaxRecords: 300})
			waitFor(t, "every record stored", func() bool { return s.total() >= n })
			time.Sleep(300 * time.Millisecond)
			s.checkOnce(t, n)
			if s.multiPoll.Load() == 0 {
				t.Error("no batch spanned more than one poll of 40")
			}
			if m := s.batchMax.Load(); m > 300 {
				t.Errorf("a batch of %d records, above BatchMaxRecords 300", m)
			}
		})
	}
}

// plainHandler hides the Fork method: the runner cannot decode ahead.
type plainHandler struct{ *memHandler }

func (plainHandler) Fork() {}

// A batch that cannot fill is stored anyway: with BatchMaxRecords far
// above what the topic holds, a few records produced to an idle consumer
// are stored (the runner does not wait for more).
func TestPartialBatchIsStored(t *testing.T) {
	f := newFixture(t)
	s := newMemStore()
	h := &memHandler{s: s, member: "a", forks: new(atomic.Int32)}
	f.start(t, h, runner.Options{MaxPollRecords: 40, BatchMaxRecords: 100000})
	f.produce(t, 7)
	waitFor(t, "7 records stored", func() bool { return s.total() >= 7 })
	f.produce(t, 5)
	waitFor(t, "12 records stored", func() bool { return s.total() >= 12 })
	s.checkOnce(t, 12)
}

// failingHandler fails every HandleBatch while fail is set, storing
// nothing (as when the database is down).
type failingHandler struct {
	*memHandler
	fail     *atomic.Bool
	attempts *atomic.Int64
}

func (h failingHandler) HandleBatch(ctx context.Context, b *runner.Batch) error {
	if h.fail.Load() {
		h.attempts.Add(1)
		return errors.New("injected: the store is down")
	}
	return h.memHandler.HandleBatch(ctx, b)
}

func (h failingHandler) Fork() runner.Handler {
	return failingHandler{h.memHandler.Fork().(*memHandler), h.fail, h.attempts}
}

// lag sums the group's kafka_consumer_lag gauges of the fixture's topic and
// counts them.
func (f *fixture) lag(t *testing.T) (sum int64, n int) {
	t.Helper()
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, false)
	prefix := `kafka_consumer_lag{group="` + f.group + `",topic="` + f.topic + `",partition="`
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		_, v, _ := strings.Cut(line, "} ")
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("cannot parse %q: %v", line, err)
		}
		sum += int64(x)
		n++
	}
	return sum, n
}

// kafka_consumer_lag follows the topic while batches fail (nothing is
// stored, so nothing else would move it): the runner refreshes it from the
// end offsets every LagInterval, and it falls back to 0 once the stores
// succeed again.
func TestLagGrowsWhileBatchesFail(t *testing.T) {
	f := newFixture(t)
	f.produce(t, 30)
	s := newMemStore()
	h := failingHandler{&memHandler{s: s, member: "a", forks: new(atomic.Int32)}, new(atomic.Bool), new(atomic.Int64)}
	f.start(t, h, runner.Options{MaxPollRecords: 100, LagInterval: 50 * time.Millisecond})
	waitFor(t, "30 records stored", func() bool { return s.total() >= 30 })
	waitFor(t, "lag 0 on the 3 partitions", func() bool { sum, n := f.lag(t); return sum == 0 && n == 3 })
	h.fail.Store(true)
	f.produceFrom(t, 30, 60)
	waitFor(t, "stores failing", func() bool { return h.attempts.Load() >= 2 })
	waitFor(t, "kafka_consumer_lag 60 (20 per partition) while the stores fail", func() bool {
		sum, n := f.lag(t)
		return sum == 60 && n == 3
	})
	if got := s.total(); got != 30 {
		t.Fatalf("%d records stored while the stores failed, want 30", got)
	}
	h.fail.Store(false)
	waitFor(t, "90 records stored", func() bool { return s.total() >= 90 })
	waitFor(t, "lag 0 again", func() bool { sum, _ := f.lag(t); return sum == 0 })
	s.checkOnce(t, 90)
}

// Graceful shutdown: a batch whose store is in progress when Run's context
// ends is stored (its handler's context outlives Run's by ShutdownGrace)
// and its offsets are committed to Kafka when the client leaves; Run
// returns after it. With the store held past the grace, Run returns anyway
// and the batch is left uncommitted.
func TestShutdownFinishesTheBatchInFlight(t *testing.T) {
	for _, finish := range []bool{true, false} {
		t.Run(map[bool]string{true: "finishes", false: "grace-exceeded"}[finish], func(t *testing.T) {
			f := newFixture(t)
			f.produce(t, 30)
			s := newMemStore()
			gate := make(chan struct{})
			var once sync.Once
			release := func() { once.Do(func() { close(gate) }) }
			defer release()
			h := &memHandler{s: s, member: "a", gate: gate, hold: func(*memHandler) bool { return true }, forks: new(atomic.Int32)}
			opts := runner.Options{MaxPollRecords: 100}
			if !finish {
				opts.ShutdownGrace = 200 * time.Millisecond
			}
			stop := f.start(t, h, opts)
			waitFor(t, "a batch held in its store", func() bool { return s.atGate.Load() == 1 })
			stopped := make(chan struct{})
			go func() { defer close(stopped); stop() }()
			if finish {
				// Run's context is cancelled by now or soon; the store
				// goes on until the gate opens.
				time.Sleep(200 * time.Millisecond)
				select {
				case <-stopped:
					t.Fatal("Run returned while its batch was still being stored")
				default:
				}
				release()
			}
			select {
			case <-stopped:
			case <-time.After(30 * time.Second):
				release()
				t.Fatal("Run did not return within 30 s of its context ending")
			}
			var committed int64
			for _, o := range f.committed(t) {
				committed += max(o, 0)
			}
			held := s.total()
			if finish && (held == 0 || committed != held) {
				t.Fatalf("%d records stored, %d committed to Kafka after shutdown; want the held batch stored and committed", held, committed)
			}
			if !finish && (held != 0 || committed != 0) {
				t.Fatalf("%d records stored, %d committed after the grace ran out; want none", held, committed)
			}
			if finish {
				s.checkOnce(t, int(held))
			}
		})
	}
}

// seenHandler records the values it decodes and stores nothing.
type seenHandler struct {
	mu   sync.Mutex
	seen []string
}

func (h *seenHandler) Begin() {}
func (h *seenHandler) Decode(r *kgo.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, string(r.Value))
	return nil
}
func (h *seenHandler) Stored(context.Context, map[string][]int32) (runner.Offsets, error) {
	return nil, nil
}
func (h *seenHandler) HandleBatch(context.Context, *runner.Batch) error { return nil }

// TestReplayForAnotherConsumerIsSkipped: a record `caracal dlq replay`
// addressed to another consumer (runner.HeaderReplayFor) is not handed to
// the handler, yet its partition moves past it; one addressed to this
// consumer, or not addressed, is handled.
func TestReplayForAnotherConsumerIsSkipped(t *testing.T) {
	f := newFixture(t)
	for_ := func(v, name string) *kgo.Record {
		r := &kgo.Record{Topic: f.topic, Partition: 0, Value: []byte(v)}
		if name != "" {
			r.Headers = []kgo.RecordHeader{{Key: "x-other", Value: []byte("1")}, {Key: runner.HeaderReplayFor, Value: []byte(name)}}
		}
		return r
	}
	ctest.Produce(t, f.cl, for_("plain-1", ""), for_("mine-1", "test"), for_("theirs-1", "ledger"),
		for_("plain-2", ""), for_("theirs-2", "metrics"), for_("mine-2", "test"))
	h := &seenHandler{}
	f.start(t, h, runner.Options{})
	waitFor(t, "the partition committed past all 6 records", func() bool { return f.committed(t)[0] == 6 })
	h.mu.Lock()
	defer h.mu.Unlock()
	if got, want := strings.Join(h.seen, ","), "plain-1,mine-1,plain-2,mine-2"; got != want {
		t.Fatalf("handled %s, want %s", got, want)
	}
}
