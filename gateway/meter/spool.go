package meter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/gateway/spool"
	"github.com/caracal-gw/caracal/internal/event"
)

// Spool record tags. A spooled record's payload is a one-byte key length,
// the key and the record value (the event's JSON).
// SpooledHeader (value SpooledValue) marks every record the spool drain
// produces. The drain is at-least-once, so such a record may repeat an event
// id already on the topic (a crash before the drain's progress was durable,
// or a produce whose outcome was unknown, then spooled); the metrics
// aggregator checks these records against the ledger's winning copy so the
// aggregates stay exactly-once (consumers/aggregate). Records produced
// directly carry no header and cost the aggregator nothing extra.
const (
	SpooledHeader = "caracal-spooled"
	SpooledValue  = "1"
)

const (
	tagMetering byte = 1
	tagDecision byte = 2
	tagAudit    byte = 3
	tagIntent   byte = 4 // strict mode: a durable intent (an incomplete event)
	// tagCompletion: strict mode: the intent's request completed; the
	// payload is its metering event, produced by the drain like tagMetering.
	tagCompletion byte = 5
)

var (
	spooledTotal      = metrics.NewCounter(`caracal_spool_appended_total`)
	spoolDrainedTotal = metrics.NewCounter(`caracal_spool_drained_total`)
	spoolFailedTotal  = metrics.NewCounter(`caracal_spool_append_failed_total`)
	orphanIntents     = metrics.NewCounter(`caracal_strict_incomplete_total`)
	intentsTotal      = metrics.NewCounter(`caracal_strict_intents_total`)
	_                 = metrics.NewGauge(`caracal_producer_brokers_down`, func() float64 {
		if anyDown.Load() {
			return 1
		}
		return 0
	})
	anyDown atomic.Bool
)

// SpoolOptions tune when events go to the spool.
type SpoolOptions struct {
	// StallAfter: with records buffered and no acknowledgement for this
	// long, the brokers count as unreachable and new events go to the
	// spool (default 2 s).
	StallAfter time.Duration
	// DrainEvery is the drain loop's period (default 250 ms).
	DrainEvery time.Duration
	// DrainBackoffMax caps the wait between drain attempts after failed
	// ones (Kafka refusing records): it doubles from DrainEvery up to this
	// (default 30 s) and is reset by a successful attempt.
	DrainBackoffMax time.Duration
	// LogEvery: a repeated warning (the drain paused) is logged at its
	// first occurrence, then at most once per LogEvery with a count
	// (default 1 min).
	LogEvery time.Duration
	Logger   *slog.Logger
}

func (o *SpoolOptions) validate() {
	if o.StallAfter <= 0 {
		o.StallAfter = 2 * time.Second
	}
	if o.DrainEvery <= 0 {
		o.DrainEvery = 250 * time.Millisecond
	}
	if o.DrainBackoffMax <= 0 {
		o.DrainBackoffMax = 30 * time.Second
	}
	o.DrainBackoffMax = max(o.DrainBackoffMax, o.DrainEvery)
	if o.LogEvery <= 0 {
		o.LogEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// spoolState is the producer's use of a spool.
type spoolState struct {
	sp      *spool.Spool
	opt     SpoolOptions
	down    atomic.Bool
	answers atomic.Uint64 // acknowledgements and refusals so far (the watchdog notes when it moves)
	bufs    sync.Pool
	stop    chan struct{}
	wg      sync.WaitGroup
	// Spooled and Drained count records (tests, logs).
	spooled, drained atomic.Int64
	// refusing: Kafka refused a record for good (a non-retriable produce
	// error); every event goes to the spool, as while the brokers are down,
	// until a drain attempt delivers with no refusal. refusals counts the
	// refusals (the drain clears refusing only if none came meanwhile).
	refusing atomic.Bool
	refusals atomic.Int64
	// closing: Close purges what is buffered (not a refusal).
	closing atomic.Bool
	// acks remembers, per segment being drained, which of its records
	// Kafka acknowledged, so a retry sends only the others (drain only).
	acks     map[uint64][]bool
	drainLog logEvery
}

// UseSpool makes the producer fall back to sp when the brokers are
// unreachable or its buffer is near full, and drain sp into Kafka when they
// return. Strict-mode intents left without a completion by a previous
// process are first turned into incomplete events charged at their
// estimate. Call it once, before serving.
func (p *Producer) UseSpool(sp *spool.Spool, opt SpoolOptions) error {
	opt.validate()
	st := &spoolState{sp: sp, opt: opt, stop: make(chan struct{}), acks: map[uint64][]bool{},
		drainLog: logEvery{every: opt.LogEvery}}
	if err := p.recoverIntents(st); err != nil {
		return err
	}
	p.sp = st
	st.wg.Add(2)
	go p.watchBrokers(st)
	go p.drainSpool(st)
	return nil
}

// Spooled returns the records appended to and drained from the spool.
func (p *Producer) Spooled() (appended, drained int64) {
	if p.sp == nil {
		return 0, 0
	}
	return p.sp.spooled.Load(), p.sp.drained.Load()
}

// BrokersDown reports whether the brokers count as unreachable (new events
// go to the spool).
func (p *Producer) BrokersDown() bool { return p.sp != nil && p.sp.down.Load() }

// Refusing reports whether Kafka refuses records for good (new events go to
// the spool until the drain delivers again).
func (p *Producer) Refusing() bool { return p.sp != nil && p.sp.refusing.Load() }

// spoolFirst reports whether an event should skip Kafka's buffer.
func (p *Producer) spoolFirst() bool {
	st := p.sp
	return st != nil && (st.down.Load() || st.refusing.Load() || p.cl.BufferedProduceBytes() >= p.maxBuffered*3/4)
}

// refused notes a record Kafka refused for good: new events go to the spool.
func (st *spoolState) refused(err error) {
	st.acked() // the brokers answer: not a stall
	st.refusals.Add(1)
	if !st.refusing.Swap(true) {
		st.opt.Logger.Warn("Kafka refuses records (non-retriable produce error): events go to the spool until it takes them again",
			"err", err, "dir", st.sp.Dir())
	}
}

// delivering notes a drain attempt with no refusal since refusals was n.
func (st *spoolState) delivering(n int64) {
	if st.refusals.Load() == n && st.refusing.Swap(false) {
		st.opt.Logger.Info("Kafka takes records again: events go to Kafka", "dir", st.sp.Dir())
	}
}

func (st *spoolState) acquire() *[]byte {
	if v := st.bufs.Get(); v != nil {
		return v.(*[]byte)
	}
	b := make([]byte, 0, 2048)
	return &b
}

func tagOf(p *Producer, topic string) byte {
	switch topic {
	case p.decisions:
		return tagDecision
	case p.audit:
		return tagAudit
	}
	return tagMetering
}

func (p *Producer) topicOf(tag byte) string {
	switch tag {
	case tagDecision:
		return p.decisions
	case tagAudit:
		return p.audit
	}
	return p.metering // tagMetering, tagCompletion
}

// spoolRecord appends r durably, in a reservation of reserve bytes (Admit)
// when reserve > 0; false when the spool cannot take it (a reservation is
// then still held).
func (p *Producer) spoolRecord(tag byte, key, value []byte, pin bool, reserve int64) (uint64, bool) {
	st := p.sp
	bp := st.acquire()
	b := append((*bp)[:0], byte(len(key)))
	b = append(b, key...)
	b = append(b, value...)
	var seq uint64
	var err error
	if reserve > 0 {
		seq, err = st.sp.AppendReserved(tag, b, pin, reserve)
	} else {
		seq, err = st.sp.Append(tag, b, pin)
	}
	*bp = b
	st.bufs.Put(bp)
	if err != nil {
		spoolFailedTotal.Inc()
		if !errors.Is(err, spool.ErrFull) {
			st.opt.Logger.Error("cannot spool a record", "err", err)
		}
		return 0, false
	}
	spooledTotal.Inc()
	st.spooled.Add(1)
	return seq, true
}

func splitPayload(b []byte) (key, value []byte, ok bool) {
	if len(b) < 1 || int(b[0]) > len(b)-1 {
		return nil, nil, false
	}
	return b[1 : 1+b[0]], b[1+b[0]:], true
}

// watchBrokers marks the brokers down while buffered records see no
// acknowledgement for StallAfter (counted from the tick that last saw one, so up to
// a quarter of StallAfter more), and up again on an ack or a ping.
func (p *Producer) watchBrokers(st *spoolState) {
	defer st.wg.Done()
	t := time.NewTicker(st.opt.StallAfter / 4)
	defer t.Stop()
	// A counter, not a time, per answer: the request path then reads no clock.
	seen, lastAnswer := st.answers.Load(), time.Now()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		if n := st.answers.Load(); n != seen {
			seen, lastAnswer = n, now
		}
		stalled := now.Sub(lastAnswer) > st.opt.StallAfter
		switch {
		case p.cl.BufferedProduceRecords() > 0:
			st.setDown(stalled)
		case st.down.Load():
			ctx, cancel := context.WithTimeout(context.Background(), st.opt.StallAfter)
			err := p.cl.Ping(ctx)
			cancel()
			st.setDown(err != nil)
		}
	}
}

func (st *spoolState) setDown(down bool) {
	if st.down.Swap(down) != down {
		anyDown.Store(down)
		if down {
			st.opt.Logger.Warn("Kafka brokers unreachable: events go to the spool", "dir", st.sp.Dir())
		} else {
			st.opt.Logger.Info("Kafka brokers reachable again: draining the spool", "dir", st.sp.Dir())
		}
	}
}

func (st *spoolState) acked() { st.answers.Add(1) }

// drainSpool produces the spool's records oldest-first while the brokers
// are up and deletes each segment once all its records are acknowledged.
// Delivery from the spool is at least once (a crash between the acks and
// the delete produces a segment again); consumers dedupe by event id.
// After a failed attempt that delivered nothing (Kafka refusing records)
// the next one waits DrainEvery, doubled at each such failure up to
// DrainBackoffMax; the warning is logged at the first failure, then at most
// once per LogEvery with a count.
func (p *Producer) drainSpool(st *spoolState) {
	defer st.wg.Done()
	t := time.NewTicker(st.opt.DrainEvery)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-st.stop; cancel() }()
	var buf []byte
	var backoff time.Duration
	var next time.Time
	failures := 0
	for {
		var now time.Time
		select {
		case <-st.stop:
			return
		case now = <-t.C:
		}
		if st.down.Load() || now.Before(next) {
			continue
		}
		n := st.refusals.Load()
		var err error
		var delivered int64
		if buf, delivered, err = p.drainOnce(ctx, st, buf); err != nil {
			failures++
			if delivered > 0 {
				backoff = 0 // progress: retry at the next tick
			} else {
				backoff = min(max(2*backoff, st.opt.DrainEvery), st.opt.DrainBackoffMax)
			}
			next = now.Add(backoff)
			if ok, left := st.drainLog.allow(now); ok {
				st.opt.Logger.Warn("spool drain paused", "err", err, "retry_in", backoff,
					"failed_attempts", failures, "not_logged_since_last", left)
			}
			continue
		}
		if failures > 0 {
			st.opt.Logger.Info("spool drain resumed", "failed_attempts", failures, "not_logged", st.drainLog.reset())
			failures, backoff, next = 0, 0, time.Time{}
		}
		st.delivering(n)
	}
}

// drainRefusedBudget bounds the refused records' bytes one drain attempt
// sends: while Kafka refuses everything, an attempt does not send the
// whole spool again; while it refuses only some records, the attempt goes
// on past them to newer segments.
const drainRefusedBudget = 16 << 20

// drainRetryRecords bounds the records one attempt sends one at a time (the
// retries of segments that had refusals; see produceSegment). Each waits
// for its acknowledgement (and the producer's linger): a few seconds per
// attempt at most.
const drainRetryRecords = 256

// drainOnce seals the active segment and drains the sealed ones, oldest
// first. A segment with records Kafka refused stays (its delivered records
// are remembered) and the attempt goes on with newer segments until the
// refused records' bytes reach drainRefusedBudget. It returns the records
// delivered.
func (p *Producer) drainOnce(ctx context.Context, st *spoolState, buf []byte) ([]byte, int64, error) {
	st.sp.Seal()
	var refusedBytes, delivered int64
	var refusedRecs, refusedSegs int
	retryLeft := drainRetryRecords
	var firstErr error
	for _, seg := range st.sp.Sealed() {
		if ctx.Err() != nil || refusedBytes >= drainRefusedBudget || retryLeft <= 0 {
			break
		}
		if !seg.Produced {
			var res segResult
			buf, res = p.produceSegment(ctx, st, seg, buf, &retryLeft)
			delivered += res.delivered
			if res.err != nil {
				return buf, delivered, res.err
			}
			if res.refused > 0 || res.left > 0 {
				refusedBytes += res.refusedBytes
				refusedRecs += res.refused
				if res.refused > 0 {
					refusedSegs++
				}
				if firstErr == nil {
					firstErr = res.firstErr
				}
				continue
			}
			if err := st.sp.MarkProduced(seg); err != nil {
				return buf, delivered, err
			}
		}
		delete(st.acks, seg.Seq)
		if _, err := st.sp.Remove(seg); err != nil {
			return buf, delivered, err
		}
	}
	if refusedRecs > 0 {
		return buf, delivered, fmt.Errorf("the brokers refused %d spooled records in %d segments (kept for the next attempt; %d delivered): %w",
			refusedRecs, refusedSegs, delivered, firstErr)
	}
	return buf, delivered, nil
}

// segResult is what an attempt at a segment did: err (reading, closing)
// stops the drain; refused records (and left ones, not sent this attempt)
// stay for the next attempt.
type segResult struct {
	delivered    int64
	refused      int
	left         int
	refusedBytes int64
	firstErr     error
	err          error
}

// produceSegment produces the records of seg that Kafka has not
// acknowledged yet (st.acks: a retry after a partial failure sends only the
// refused ones, so accepted records are not duplicated) and waits for the
// acks. The first attempt produces them all at once. Kafka's client fails
// every record queued behind a refused one in its partition, so a retry
// sends its records one at a time (at most *retryLeft, shared by the
// attempt): the records Kafka accepts get through past the ones it refuses.
func (p *Producer) produceSegment(ctx context.Context, st *spoolState, seg *spool.Segment, buf []byte, retryLeft *int) ([]byte, segResult) {
	acked, retry := st.acks[seg.Seq]
	var recs []*kgo.Record
	var idx []int
	i := 0
	buf, err := st.sp.Read(seg, buf, func(r spool.Record) error {
		k := i
		i++
		if r.Tag == tagIntent || k < len(acked) && acked[k] {
			return nil
		}
		key, value, ok := splitPayload(r.Payload)
		if !ok {
			return fmt.Errorf("BUG: spool record without a key length in %s", seg.Path)
		}
		rec := &kgo.Record{Topic: p.topicOf(r.Tag), Value: append([]byte(nil), value...),
			Headers: []kgo.RecordHeader{{Key: SpooledHeader, Value: []byte(SpooledValue)}}}
		if len(key) > 0 {
			rec.Key = append([]byte(nil), key...)
		}
		recs = append(recs, rec)
		idx = append(idx, k)
		return nil
	})
	if err != nil {
		return buf, segResult{err: err}
	}
	if len(acked) < i {
		acked = append(acked, make([]bool, i-len(acked))...)
	}
	st.acks[seg.Seq] = acked
	var res segResult
	var mu sync.Mutex
	promise := func(k int) func(*kgo.Record, error) {
		return func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				acked[k] = true
				res.delivered++
				st.acked()
				return
			}
			res.refused++
			res.refusedBytes += int64(len(r.Key) + len(r.Value))
			if res.firstErr == nil {
				res.firstErr = err
			}
		}
	}
	var wg sync.WaitGroup
	for j, rec := range recs {
		if !retry {
			wg.Add(1)
			pr := promise(idx[j])
			p.cl.Produce(ctx, rec, func(r *kgo.Record, err error) { pr(r, err); wg.Done() })
			continue
		}
		if *retryLeft <= 0 {
			res.left = len(recs) - j
			break
		}
		*retryLeft--
		r, err := p.cl.ProduceSync(ctx, rec).First()
		if ctx.Err() != nil {
			return buf, segResult{err: errors.New("producer closing")}
		}
		promise(idx[j])(r, err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-st.stop:
		// Closing: the records stay in the client until Close flushes or
		// purges them; the segment stays for the next start.
		return buf, segResult{err: errors.New("producer closing")}
	}
	mu.Lock()
	defer mu.Unlock()
	spoolDrainedTotal.AddInt64(res.delivered)
	st.drained.Add(res.delivered)
	if res.refused > 0 {
		producerRefusedRecords.AddInt64(int64(res.refused))
		st.refused(res.firstErr)
	}
	return buf, res
}

// recoverIntents turns strict-mode intents without a completion into
// incomplete metering events charged at their estimate. Each is appended as a
// completion carrying the incomplete event, so it is produced by the drain
// and a crash during recovery does not charge it twice.
func (p *Producer) recoverIntents(st *spoolState) error {
	intents := map[event.ID][]byte{}
	var order []event.ID
	var buf []byte
	var e event.Metering
	for _, seg := range st.sp.Sealed() {
		var err error
		buf, err = st.sp.Read(seg, buf, func(r spool.Record) error {
			if r.Tag != tagIntent && r.Tag != tagCompletion {
				return nil
			}
			_, value, ok := splitPayload(r.Payload)
			if !ok || event.DecodeMetering(value, &e) != nil {
				return fmt.Errorf("cannot decode a strict-mode record in %s", seg.Path)
			}
			if r.Tag == tagCompletion {
				delete(intents, e.ID)
				return nil
			}
			intents[e.ID] = append([]byte(nil), r.Payload...)
			order = append(order, e.ID)
			return nil
		})
		if err != nil {
			return err
		}
	}
	p.sp = st
	defer func() { p.sp = nil }()
	for _, id := range order {
		payload, ok := intents[id]
		if !ok {
			continue
		}
		key, value, _ := splitPayload(payload)
		if _, ok := p.spoolRecord(tagCompletion, key, value, false, 0); !ok {
			return errors.New("cannot spool the incomplete event of a strict-mode intent")
		}
		orphanIntents.Inc()
		st.opt.Logger.Warn("strict-mode intent without completion charged at its estimate", "event", id.String())
		delete(intents, id)
	}
	return nil
}
