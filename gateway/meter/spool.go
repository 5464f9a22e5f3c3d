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
	Logger     *slog.Logger
}

func (o *SpoolOptions) validate() {
	if o.StallAfter <= 0 {
		o.StallAfter = 2 * time.Second
	}
	if o.DrainEvery <= 0 {
		o.DrainEvery = 250 * time.Millisecond
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
	lastAck atomic.Int64 // unix nanos
	bufs    sync.Pool
	stop    chan struct{}
	wg      sync.WaitGroup
	// Spooled and Drained count records (tests, logs).
	spooled, drained atomic.Int64
}

// UseSpool makes the producer fall back to sp when the brokers are
// unreachable or its buffer is near full, and drain sp into Kafka when they
// return. Strict-mode intents left without a completion by a previous
// process are first turned into incomplete events charged at their
// estimate. Call it once, before serving.
func (p *Producer) UseSpool(sp *spool.Spool, opt SpoolOptions) error {
	opt.validate()
	st := &spoolState{sp: sp, opt: opt, stop: make(chan struct{})}
	st.lastAck.Store(time.Now().UnixNano())
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

// BrokersDown reports whether new events currently go to the spool.
func (p *Producer) BrokersDown() bool { return p.sp != nil && p.sp.down.Load() }

// spoolFirst reports whether an event should skip Kafka's buffer.
func (p *Producer) spoolFirst() bool {
	st := p.sp
	return st != nil && (st.down.Load() || p.cl.BufferedProduceBytes() >= p.maxBuffered*3/4)
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

// spoolRecord appends r durably; false when the spool cannot take it.
func (p *Producer) spoolRecord(tag byte, key, value []byte, pin bool) (uint64, bool) {
	st := p.sp
	bp := st.acquire()
	b := append((*bp)[:0], byte(len(key)))
	b = append(b, key...)
	b = append(b, value...)
	seq, err := st.sp.Append(tag, b, pin)
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
// acknowledgement for StallAfter, and up again on an ack or a ping.
func (p *Producer) watchBrokers(st *spoolState) {
	defer st.wg.Done()
	t := time.NewTicker(st.opt.StallAfter / 4)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
		}
		stalled := time.Since(time.Unix(0, st.lastAck.Load())) > st.opt.StallAfter
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

func (st *spoolState) acked() { st.lastAck.Store(time.Now().UnixNano()) }

// drainSpool produces the spool's records oldest-first while the brokers
// are up and deletes each segment once all its records are acknowledged.
// Delivery from the spool is at least once (a crash between the acks and
// the delete produces a segment again); consumers dedupe by event id.
func (p *Producer) drainSpool(st *spoolState) {
	defer st.wg.Done()
	t := time.NewTicker(st.opt.DrainEvery)
	defer t.Stop()
	var buf []byte
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
		}
		if st.down.Load() {
			continue
		}
		var err error
		if buf, err = p.drainOnce(st, buf); err != nil {
			st.opt.Logger.Warn("spool drain paused", "err", err)
		}
	}
}

// drainOnce drains every sealed segment (sealing the active one when only
// it holds records).
func (p *Producer) drainOnce(st *spoolState, buf []byte) ([]byte, error) {
	segs := st.sp.Sealed()
	if len(segs) == 0 {
		if r, _, _ := st.sp.Stats(); r == 0 {
			return buf, nil
		}
		st.sp.Seal()
		segs = st.sp.Sealed()
	}
	for _, seg := range segs {
		select {
		case <-st.stop:
			return buf, nil
		default:
		}
		if !seg.Produced {
			var err error
			if buf, err = p.produceSegment(st, seg, buf); err != nil {
				return buf, err
			}
			if err := st.sp.MarkProduced(seg); err != nil {
				return buf, err
			}
		}
		if _, err := st.sp.Remove(seg); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func (p *Producer) produceSegment(st *spoolState, seg *spool.Segment, buf []byte) ([]byte, error) {
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	var n int64
	buf, err := st.sp.Read(seg, buf, func(r spool.Record) error {
		if r.Tag == tagIntent {
			return nil
		}
		key, value, ok := splitPayload(r.Payload)
		if !ok {
			return fmt.Errorf("BUG: spool record without a key length in %s", seg.Path)
		}
		rec := &kgo.Record{Topic: p.topicOf(r.Tag), Value: append([]byte(nil), value...)}
		if len(key) > 0 {
			rec.Key = append([]byte(nil), key...)
		}
		wg.Add(1)
		n++
		p.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			} else {
				st.acked()
			}
			wg.Done()
		})
		return nil
	})
	acked := make(chan struct{})
	go func() { wg.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-st.stop:
		// Closing: the records stay in the client until Close flushes or
		// purges them; the segment stays for the next start.
		return buf, errors.New("producer closing")
	}
	if err != nil {
		return buf, err
	}
	if failed.Load() > 0 {
		return buf, fmt.Errorf("cannot deliver %d spooled records of %s: %v", failed.Load(), seg.Path, firstErr.Load())
	}
	spoolDrainedTotal.AddInt64(n)
	st.drained.Add(n)
	return buf, nil
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
		if _, ok := p.spoolRecord(tagCompletion, key, value, false); !ok {
			return errors.New("cannot spool the incomplete event of a strict-mode intent")
		}
		orphanIntents.Inc()
		st.opt.Logger.Warn("strict-mode intent without completion charged at its estimate", "event", id.String())
		delete(intents, id)
	}
	return nil
}
