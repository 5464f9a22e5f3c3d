// Package runner is the one consumer loop shared by the ledger writer, the
// metrics aggregator and the audit logger: a franz-go group consumer
// (read_committed, no auto-commit, max.poll.records per poll) that hands each
// batch to a Handler, sends records the handler rejects to the DLQ, retries a
// failed batch with backoff without committing it, and commits offsets to
// Kafka only after the handler stored the batch.
//
// A batch is one poll or, with Options.BatchMaxRecords above
// max.poll.records, several: the runner keeps polling while the client has
// records ready (and while the batch before is being stored) until the
// batch holds BatchMaxRecords records, so that one store (one database
// transaction) is not bounded by one poll. It never waits for records only
// to fill a batch.
//
// The batch is stored in a goroutine while the runner polls (and, for a
// Forker, decodes) the next one; Kafka commits are asynchronous. Rebalances
// are blocked from the first poll of a batch until the batch is handed to
// the store step (kgo.BlockRebalanceOnPoll; the batch's later polls keep
// them blocked), and a revoke waits for the batch being stored, so it
// always happens between batches: every polled record is stored and its
// offsets committed (synchronously) before the partitions go.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/kafkaopt"
)

// Offsets maps topic -> partition -> offset of the next record to consume.
type Offsets map[string]map[int32]int64

// Set records next as the next offset of topic/partition.
func (o Offsets) Set(topic string, partition int32, next int64) {
	m := o[topic]
	if m == nil {
		m = map[int32]int64{}
		o[topic] = m
	}
	m[partition] = next
}

// Batch is one poll: the records the handler accepted and the next offset of
// every partition the poll touched (rejected records included).
type Batch struct {
	Records []*kgo.Record
	Next    Offsets
}

// Handler stores what a consumer makes of its records.
type Handler interface {
	// Begin starts a new batch; the handler drops what it buffered before.
	Begin()
	// Decode validates r and buffers what the handler makes of it. An error
	// sends r to the DLQ; the partition keeps moving.
	Decode(r *kgo.Record) error
	// HandleBatch stores the buffered batch and b.Next atomically. On an
	// error it is called again with the same batch (after a backoff), so it
	// must leave no partial effect.
	HandleBatch(ctx context.Context, b *Batch) error
	// Stored returns the offsets the handler stored itself for the given
	// partitions; the runner seeks to them on assignment. A partition missing
	// from the result starts at Kafka's committed offset (or the start).
	Stored(ctx context.Context, assigned map[string][]int32) (Offsets, error)
}

// Forker is a Handler whose next batch can be decoded while the current one
// is stored. Fork returns a second handler for the same store with its own
// batch buffer; the runner alternates batches between the two. It calls
// Decode on one of them only (one goroutine at a time) and never runs two
// HandleBatch calls at once, but Decode on one may run during HandleBatch
// on the other. Fork is called when Run starts.
type Forker interface {
	Handler
	Fork() Handler
}

// Options configure a Runner.
type Options struct {
	// Name is the consumer label of the metrics ("ledger", "metrics", "audit").
	Name   string
	Group  string
	Topics []string
	// DLQTopic receives rejected records (config kafka.topics.dlq).
	DLQTopic string
	// MaxPollRecords bounds one poll (kafka.consumer.max.poll.records).
	MaxPollRecords int
	// BatchMaxRecords bounds a batch, which may span several polls: after
	// the first poll of a batch the runner keeps polling (each poll at
	// most MaxPollRecords) while the client has records ready, and, while
	// the batch before is still being stored, waits for more records until
	// that store ends; it never waits for records only to fill a batch.
	// At or below MaxPollRecords (0 included): one poll per batch, as
	// before. Above it, it bounds the records polled into one batch
	// (rejected ones included).
	BatchMaxRecords int
	// RetryMin and RetryMax bound the backoff of a failed batch; after
	// UnhealthyAfter failures in a row the runner reports unhealthy and
	// keeps retrying.
	RetryMin, RetryMax time.Duration
	UnhealthyAfter     int
	// ShutdownGrace bounds how long the store of the batch in flight may
	// still take once Run's context is done (graceful shutdown): the
	// attempt in progress (or about to start) finishes and its offsets are
	// committed to Kafka when the client leaves the group; no further
	// attempt is made. Default 10 s; negative: the store is cancelled at
	// once and the batch left uncommitted, to be read again.
	ShutdownGrace time.Duration
	// LagInterval is how often the kafka_consumer_lag gauges of the
	// partitions assigned to this member are refreshed from the brokers'
	// end offsets, besides after every stored batch: the lag keeps growing
	// while batches fail or wait (database down, the aggregator waiting for
	// the ledger), when no batch is stored. Default 15 s; negative: off.
	LagInterval time.Duration
	// Sequential turns the overlap off: each batch is decoded, stored and
	// its offsets committed to Kafka synchronously before the next poll
	// (for comparisons).
	Sequential bool
	// ExtraOpts are appended to the client options (tests).
	ExtraOpts []kgo.Opt
	Logger    *slog.Logger
}

func (o *Options) validate() error {
	switch {
	case o.Name == "":
		return errors.New("runner: Name is empty")
	case o.Group == "":
		return errors.New("runner: Group is empty")
	case len(o.Topics) == 0:
		return errors.New("runner: no topics")
	case o.DLQTopic == "":
		return errors.New("runner: DLQTopic is empty")
	}
	if o.MaxPollRecords <= 0 {
		o.MaxPollRecords = 500
	}
	if o.BatchMaxRecords < o.MaxPollRecords {
		o.BatchMaxRecords = o.MaxPollRecords
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = 10 * time.Second
	}
	if o.UnhealthyAfter <= 0 {
		o.UnhealthyAfter = 5
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	if o.LagInterval == 0 {
		o.LagInterval = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Runner consumes for one Handler.
type Runner struct {
	opts Options
	h    Handler
	cl   *kgo.Client

	healthy atomic.Bool
	// committed holds the next offsets committed so far, for the revoke
	// callback and the lag gauge.
	mu        sync.Mutex
	committed Offsets
	flight    *flight // the batch being stored (or the last one stored)
	lag       map[string]*atomic.Int64
	// assigned are the partitions this member consumes (added when their
	// offsets are adjusted on assignment, removed on revoke), for the lag
	// refresh.
	assigned map[string]map[int32]bool

	records, batches, dlq, failures, replaysSkipped *metrics.Counter
	batchSeconds                                    *metrics.Summary
}

// New builds a Runner from the configuration's Kafka settings.
func New(cfg *config.Config, h Handler, opts Options) (*Runner, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r := &Runner{opts: opts, h: h, committed: Offsets{}, lag: map[string]*atomic.Int64{}, assigned: map[string]map[int32]bool{}}
	r.healthy.Store(true)
	label := `{consumer="` + opts.Name + `"}`
	r.records = metrics.GetOrCreateCounter("caracal_consumer_records_total" + label)
	r.batches = metrics.GetOrCreateCounter("caracal_consumer_batches_total" + label)
	r.dlq = metrics.GetOrCreateCounter("caracal_consumer_dlq_total" + label)
	r.replaysSkipped = metrics.GetOrCreateCounter("caracal_consumer_replays_skipped_total" + label)
	r.failures = metrics.GetOrCreateCounter("caracal_consumer_batch_failures_total" + label)
	r.batchSeconds = metrics.GetOrCreateSummary("caracal_consumer_batch_seconds" + label)
	metrics.GetOrCreateGauge("caracal_consumer_healthy"+label, func() float64 {
		if r.healthy.Load() {
			return 1
		}
		return 0
	})
	kopts := append(kafkaopt.Consumer(cfg, opts.Group, opts.Topics...),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(r.adjustOffsets),
		kgo.OnPartitionsRevoked(r.onRevoked),
	)
	kopts = append(kopts, opts.ExtraOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create the Kafka consumer %s: %w", opts.Name, err)
	}
	r.cl = cl
	return r, nil
}

// Healthy reports false while batches keep failing.
func (r *Runner) Healthy() bool { return r.healthy.Load() }

// Client is the underlying client (to produce from tests or handlers).
func (r *Runner) Client() *kgo.Client { return r.cl }

// Close leaves the group and closes the client.
func (r *Runner) Close() { r.cl.Close() }

// adjustOffsets replaces Kafka's committed offsets with the ones the handler
// stored in the same transaction as its rows.
func (r *Runner) adjustOffsets(ctx context.Context, in map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	assigned := map[string][]int32{}
	for t, ps := range in {
		for p := range ps {
			assigned[t] = append(assigned[t], p)
		}
	}
	stored, err := r.retryStored(ctx, assigned)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for t, ps := range assigned {
		if r.assigned[t] == nil {
			r.assigned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			r.assigned[t][p] = true
		}
	}
	r.mu.Unlock()
	for t, ps := range stored {
		for p, next := range ps {
			if _, ok := in[t][p]; ok {
				in[t][p] = kgo.NewOffset().At(next)
			}
		}
	}
	return in, nil
}

func (r *Runner) retryStored(ctx context.Context, assigned map[string][]int32) (Offsets, error) {
	var out Offsets
	err := r.retry(ctx, "read stored offsets", func() error {
		var err error
		out, err = r.h.Stored(ctx, assigned)
		return err
	})
	return out, err
}

// onRevoked runs while no poll is being processed (rebalances are blocked
// from a poll until the runner has handed the batch to its store step): the
// batch being stored, if any, is finished first, then every stored offset is
// committed synchronously before the partitions go. Records fetched but not
// yet polled for the revoked partitions are dropped by the client.
func (r *Runner) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	r.mu.Lock()
	fl := r.flight
	r.mu.Unlock()
	if fl != nil {
		<-fl.done
	}
	r.mu.Lock()
	off := r.committed
	r.committed = Offsets{}
	for t, ps := range revoked {
		for _, p := range ps {
			delete(r.assigned[t], p)
		}
	}
	r.mu.Unlock()
	if err := r.commitKafkaSync(ctx, off); err != nil {
		r.opts.Logger.Warn("cannot commit offsets on revoke", "consumer", r.opts.Name, "err", err)
	}
	for t, ps := range revoked {
		for _, p := range ps {
			r.lagGauge(t, p).Store(0)
		}
	}
}

// flight is a batch being stored: the DLQ records, the handler's
// HandleBatch, then the Kafka offset commit.
type flight struct {
	done chan struct{}
	err  error
}

// stored reports whether the flight has ended.
func (f *flight) stored() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// Run consumes until ctx is done. A batch's offsets are never committed
// before the handler stored it. On cancel no further batch is started; the
// batch in flight finishes the store attempt it is in (for up to
// ShutdownGrace) and Run returns after it; a batch that fails or runs out of
// time then is left uncommitted, to be read again.
//
// Unless Options.Sequential is set, storing a batch overlaps with polling
// the next one, and, when the handler is a Forker, with decoding it into the
// fork: at most one batch is being stored and one decoded. Stores run one at
// a time in poll order, so offsets are stored and committed in order.
func (r *Runner) Run(ctx context.Context) error {
	hs := [2]Handler{r.h, r.h}
	f, forked := r.h.(Forker)
	forked = forked && !r.opts.Sequential
	if forked {
		hs[1] = f.Fork()
	}
	var fl *flight
	defer func() {
		if fl != nil {
			<-fl.done
		}
	}()
	if r.opts.LagInterval > 0 {
		lctx, stop := context.WithCancel(ctx)
		lagDone := make(chan struct{})
		go func() {
			defer close(lagDone)
			r.lagLoop(lctx)
		}()
		defer func() { stop(); <-lagDone }()
	}
	for slot := 0; ctx.Err() == nil; {
		fetches := r.cl.PollRecords(ctx, r.opts.MaxPollRecords)
		if fetches.IsClientClosed() {
			return nil
		}
		if ctx.Err() != nil {
			r.cl.AllowRebalance()
			break
		}
		r.logFetchErrors(fetches)
		// The handler's buffer is free once its previous batch is stored:
		// with a fork, the batch in flight is in the other one.
		if !forked && fl != nil {
			if err := r.land(&fl); err != nil {
				r.cl.AllowRebalance()
				return r.stopped(ctx, err)
			}
		}
		start := time.Now()
		p := r.begin(hs[slot])
		n := r.add(p, fetches)
		// More polls join this batch while records are ready (and, with a
		// batch in flight, until it is stored). Rebalances stay blocked
		// from the first of them: every record polled is in this batch.
		if r.opts.BatchMaxRecords > r.opts.MaxPollRecords {
			r.fill(ctx, p, n, r.opts.MaxPollRecords, fl)
		}
		if ctx.Err() != nil {
			r.cl.AllowRebalance()
			break
		}
		if fl != nil {
			if err := r.land(&fl); err != nil {
				r.cl.AllowRebalance()
				return r.stopped(ctx, err)
			}
		}
		if len(p.b.Next) > 0 {
			fl = r.launch(ctx, p.h, p.b, p.rejects, p.hwm, start)
			if forked {
				slot ^= 1
			}
			if r.opts.Sequential {
				if err := r.land(&fl); err != nil {
					r.cl.AllowRebalance()
					return r.stopped(ctx, err)
				}
			}
		}
		// From here a rebalance may run; its revoke waits for the batch in
		// flight, which holds every record polled so far.
		r.cl.AllowRebalance()
	}
	return nil
}

// stopped maps the error of a batch to Run's result: nil when ctx ended it.
func (r *Runner) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// land waits for the batch in flight and clears it.
func (r *Runner) land(fl **flight) error {
	f := *fl
	<-f.done
	*fl = nil
	return f.err
}

func (r *Runner) logFetchErrors(fetches kgo.Fetches) {
	fetches.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		r.opts.Logger.Warn("fetch error", "consumer", r.opts.Name, "topic", t, "partition", p, "err", err)
	})
}

// prep is a batch being prepared from one or more polls.
type prep struct {
	h       Handler
	b       *Batch
	rejects []*kgo.Record
	hwm     map[string]int64
	polled  int // records polled into it, rejected ones included
}

// begin starts a batch in h.
func (r *Runner) begin(h Handler) *prep {
	h.Begin()
	return &prep{h: h, b: &Batch{Next: Offsets{}}, hwm: map[string]int64{}}
}

// add hands the poll's records to the batch's handler (rejected ones go to
// the DLQ with the batch) and returns how many records the poll held. A
// batch with no partition in Next is not stored.
func (r *Runner) add(p *prep, fetches kgo.Fetches) int {
	n := 0
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		p.hwm[lagKey(fp.Topic, fp.Partition)] = fp.HighWatermark
		for _, rec := range fp.Records {
			if len(rec.Headers) > 0 && replayForOther(rec, r.opts.Name) {
				r.replaysSkipped.Inc()
				continue
			}
			if err := p.h.Decode(rec); err != nil {
				p.rejects = append(p.rejects, dlqRecord(r.opts, rec, err))
				continue
			}
			p.b.Records = append(p.b.Records, rec)
		}
		if k := len(fp.Records); k > 0 {
			n += k
			// Offsets only grow within a batch (no rebalance or seek can
			// come between its polls); keep the highest regardless.
			if next := fp.Records[k-1].Offset + 1; next > p.b.Next[fp.Topic][fp.Partition] {
				p.b.Next.Set(fp.Topic, fp.Partition, next)
			}
		}
	})
	p.polled += n
	return n
}

// fill tops the batch up with further polls, each at most MaxPollRecords,
// until it holds BatchMaxRecords records or the client has nothing more
// ready: a poll that returned fewer records than asked ends it, unless the
// batch before (fl) is still being stored, in which case fill waits for
// records until that store ends (the batch could not be stored earlier
// anyway). It never waits for records only to fill a batch. last is what
// the previous poll returned of the asked records.
func (r *Runner) fill(ctx context.Context, p *prep, last, asked int, fl *flight) {
	for p.polled < r.opts.BatchMaxRecords && ctx.Err() == nil {
		if testBetweenPolls != nil {
			testBetweenPolls()
		}
		ask := min(r.opts.MaxPollRecords, r.opts.BatchMaxRecords-p.polled)
		var fetches kgo.Fetches
		switch {
		case last >= asked:
			// A nil context takes what is buffered and never waits
			// (franz-go's documented behaviour).
			//lint:ignore SA1012 nil is how PollRecords is told not to wait
			fetches = r.cl.PollRecords(nil, ask)
		case fl != nil && !fl.stored():
			fetches = r.pollUntil(ctx, fl.done, ask)
		default:
			return
		}
		if fetches.IsClientClosed() {
			return
		}
		r.logFetchErrors(fetches)
		last, asked = r.add(p, fetches), ask
	}
}

// testBetweenPolls is for tests only (set by export_test.go, nil
// otherwise): when set, fill calls it after a poll of a batch, before
// deciding on the next one, with rebalances still blocked. A test holds a
// batch there while another member joins the group.
var testBetweenPolls func()

// pollUntil polls up to n records, waiting for them until done is closed
// or ctx ends (then it returns what is ready, possibly nothing).
func (r *Runner) pollUntil(ctx context.Context, done <-chan struct{}, n int) kgo.Fetches {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-pctx.Done():
		}
	}()
	return r.cl.PollRecords(pctx, n)
}

// launch stores b in a new goroutine and makes it the batch in flight.
func (r *Runner) launch(ctx context.Context, h Handler, b *Batch, rejects []*kgo.Record, hwm map[string]int64, start time.Time) *flight {
	fl := &flight{done: make(chan struct{})}
	r.mu.Lock()
	r.flight = fl
	r.mu.Unlock()
	go func() {
		defer close(fl.done)
		fl.err = r.store(ctx, h, b, rejects, hwm, start)
	}()
	return fl
}

func (r *Runner) store(ctx context.Context, h Handler, b *Batch, rejects []*kgo.Record, hwm map[string]int64, start time.Time) error {
	// The attempts run under sctx, which outlives ctx by ShutdownGrace;
	// retry stops retrying once ctx is done.
	sctx, release := r.drainContext(ctx)
	defer release()
	// Rejected records reach the DLQ before the offsets past them are stored:
	// a crash in between repeats them in the DLQ but never loses one.
	if len(rejects) > 0 {
		if err := r.retry(ctx, "produce to the DLQ", func() error { return r.cl.ProduceSync(sctx, rejects...).FirstErr() }); err != nil {
			return err
		}
		r.dlq.Add(len(rejects))
	}
	if err := r.retry(ctx, "store the batch", func() error { return h.HandleBatch(sctx, b) }); err != nil {
		return err
	}
	r.records.Add(len(b.Records))
	r.batches.Inc()
	r.batchSeconds.UpdateDuration(start)
	r.mu.Lock()
	for t, ps := range b.Next {
		for p, next := range ps {
			r.committed.Set(t, p, next)
		}
	}
	r.mu.Unlock()
	// Kafka's committed offsets follow the stored ones, for lag and for
	// tools; the handler's stored offsets stay the truth. The commit is
	// asynchronous (the client keeps commits in order); a revoke commits
	// synchronously after waiting for this batch.
	if r.opts.Sequential {
		if err := r.commitKafkaSync(sctx, b.Next); err != nil {
			r.opts.Logger.Warn("cannot commit offsets to Kafka", "consumer", r.opts.Name, "err", err)
		}
	} else {
		r.commitKafka(ctx, b.Next)
	}
	for t, ps := range b.Next {
		for p, next := range ps {
			if h, ok := hwm[lagKey(t, p)]; ok {
				r.lagGauge(t, p).Store(max(h-next, 0))
			}
		}
	}
	return nil
}

// drainContext returns a context for storing a batch: not cancelled with
// ctx but ShutdownGrace after it (at once with a negative ShutdownGrace),
// and a release for when the store is over.
func (r *Runner) drainContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.opts.ShutdownGrace < 0 {
		return ctx, func() {}
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(r.opts.ShutdownGrace, cancel) })
	return sctx, func() { stop(); cancel() }
}

func epochOffsets(off Offsets) map[string]map[int32]kgo.EpochOffset {
	m := make(map[string]map[int32]kgo.EpochOffset, len(off))
	for t, ps := range off {
		m[t] = make(map[int32]kgo.EpochOffset, len(ps))
		for p, next := range ps {
			m[t][p] = kgo.EpochOffset{Epoch: -1, Offset: next}
		}
	}
	return m
}

// commitError is the error of a commit response.
func commitError(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

func (r *Runner) commitKafkaSync(ctx context.Context, off Offsets) error {
	if len(off) == 0 {
		return nil
	}
	var cerr error
	r.cl.CommitOffsetsSync(ctx, epochOffsets(off), func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		cerr = commitError(resp, err)
	})
	return cerr
}

// commitKafka commits off without waiting; a failure is logged.
func (r *Runner) commitKafka(ctx context.Context, off Offsets) {
	if len(off) == 0 {
		return
	}
	r.cl.CommitOffsets(ctx, epochOffsets(off), func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err := commitError(resp, err); err != nil && ctx.Err() == nil {
			r.opts.Logger.Warn("cannot commit offsets to Kafka", "consumer", r.opts.Name, "err", err)
		}
	})
}

// retry runs fn until it succeeds or ctx is done, backing off between
// attempts; after UnhealthyAfter failures in a row the runner is unhealthy
// until the next success.
func (r *Runner) retry(ctx context.Context, what string, fn func() error) error {
	wait := r.opts.RetryMin
	for fails := 0; ; fails++ {
		err := fn()
		if err == nil {
			r.healthy.Store(true)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.failures.Inc()
		if fails+1 >= r.opts.UnhealthyAfter {
			r.healthy.Store(false)
		}
		r.opts.Logger.Warn("cannot "+what+", retrying", "consumer", r.opts.Name, "attempt", fails+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, r.opts.RetryMax)
	}
}

func lagKey(topic string, partition int32) string {
	return topic + "\x00" + strconv.Itoa(int(partition))
}

// lagLoop refreshes the lag gauges every LagInterval until ctx ends.
func (r *Runner) lagLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := r.refreshLag(rctx); err != nil && ctx.Err() == nil {
			r.opts.Logger.Debug("cannot refresh the consumer lag", "consumer", r.opts.Name, "err", err)
		}
		cancel()
	}
}

// refreshLag sets the lag of every assigned partition to its end offset
// minus the next offset this member stored (or, before its first store,
// the group's committed offset in Kafka). Partitions with neither are left
// as they are.
func (r *Runner) refreshLag(ctx context.Context) error {
	r.mu.Lock()
	var topics []string
	for t, ps := range r.assigned {
		if len(ps) > 0 {
			topics = append(topics, t)
		}
	}
	r.mu.Unlock()
	if len(topics) == 0 {
		return nil
	}
	adm := kadm.NewClient(r.cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	kafka, err := adm.FetchOffsets(ctx, r.opts.Group)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || !r.assigned[o.Topic][o.Partition] {
			return
		}
		next, ok := r.committed[o.Topic][o.Partition]
		if !ok {
			c, found := kafka.Lookup(o.Topic, o.Partition)
			if !found || c.Err != nil || c.At < 0 {
				return
			}
			next = c.At
		}
		r.lagGaugeLocked(o.Topic, o.Partition).Store(max(o.Offset-next, 0))
	})
	return nil
}

func (r *Runner) lagGauge(topic string, partition int32) *atomic.Int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lagGaugeLocked(topic, partition)
}

// lagGaugeLocked is lagGauge with r.mu held.
func (r *Runner) lagGaugeLocked(topic string, partition int32) *atomic.Int64 {
	k := lagKey(topic, partition)
	v := r.lag[k]
	if v == nil {
		v = new(atomic.Int64)
		r.lag[k] = v
		name := fmt.Sprintf(`kafka_consumer_lag{group=%q,topic=%q,partition="%d"}`, r.opts.Group, topic, partition)
		metrics.GetOrCreateGauge(name, func() float64 { return float64(v.Load()) })
	}
	return v
}
