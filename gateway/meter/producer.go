// Package meter produces the gateway's records to Kafka: one metering event
// per forwarded request, denials to the decisions topic and authentication
// failures to the audit topic. Producing never blocks a request: records go
// through TryProduce from pooled buffers, and the gateway admits a request
// only once room for its event is set aside (Admit: fail closed), so an event
// of a forwarded request is never silently dropped.
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

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/kafkaopt"
)

var (
	producedTotal = metrics.NewCounter(`caracal_producer_records_total{result="acked"}`)
	// failed: records neither Kafka nor the spool took (lost; each logged).
	producerFailed = metrics.NewCounter(`caracal_producer_records_total{result="failed"}`)
	// refused: records Kafka refused for good (a non-retriable produce
	// error: MESSAGE_TOO_LARGE, an authorization error...), counted at each
	// refusal, the spool drain's retries included; the spool keeps them.
	producerRefusedRecords = metrics.NewCounter(`caracal_producer_records_total{result="refused"}`)
	// caracal_producer_refused_total counts requests turned away (503).
	producerRefused = metrics.NewCounter(`caracal_producer_refused_total`)
	producerBacklog = metrics.NewCounter(`caracal_producer_backlog_total`)
)

// MeteringReserve is the spool room Admit sets aside for a request's
// metering event (a spooled event is a few hundred bytes; a larger one may
// take some of the spool's margin, it is never refused).
const MeteringReserve = 2048

// reservedCtx marks a record (kgo.Record.Context) that holds a reservation
// of MeteringReserve bytes in the spool until Kafka acknowledges it or it is
// appended to the spool.
var reservedCtx context.Context = context.WithValue(context.Background(), reservedKey{}, true)

type reservedKey struct{}

// Producer sends Caracal records to Kafka.
type Producer struct {
	cl          *kgo.Client
	metering    string
	decisions   string
	audit       string
	maxBuffered int64
	inflight    atomic.Int64
	backlog     chan *kgo.Record
	quit        chan struct{}
	wg          sync.WaitGroup
	// Failed counts records whose delivery failed for good (each is logged).
	Failed atomic.Int64
	// OnFailure, when set, sees every record that could not be delivered.
	OnFailure func(topic string, value []byte, err error)

	// promiseFn is p.promise bound once: a method value made per call
	// would allocate.
	promiseFn func(*kgo.Record, error)
	// free recycles records: they are taken on request goroutines and given
	// back on the producer's, where a sync.Pool's per-P caches would miss.
	free chan *kgo.Record

	// sp is the disk spool (UseSpool); nil without one.
	sp *spoolState
	// lostLog rate-limits the log of lost records.
	lostLog logEvery
}

// NewProducer connects a producer with the guide's settings.
func NewProducer(c *config.Config, extra ...kgo.Opt) (*Producer, error) {
	opts, err := kafkaopt.Producer(c)
	if err != nil {
		return nil, err
	}
	// Records are retried until delivered: while brokers are gone they stay
	// buffered and the gateway stops admitting requests once the buffer is
	// near full, rather than dropping metered events.
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create Kafka producer: %w", err)
	}
	p := &Producer{
		cl:        cl,
		metering:  c.Kafka.Topics.Metering,
		decisions: c.Kafka.Topics.Decisions,
		audit:     c.Kafka.Topics.Audit,
		// Admission keeps a tenth of buffer.memory free for the events of
		// requests already in flight.
		maxBuffered: c.Kafka.Producer.BufferMemory * 9 / 10,
		backlog:     make(chan *kgo.Record, 4096),
		quit:        make(chan struct{}),
		free:        make(chan *kgo.Record, 8192),
		lostLog:     logEvery{every: time.Second},
	}
	p.promiseFn = p.promise
	// Records in flight wait for the brokers' acknowledgement; a pool filled
	// up front keeps request goroutines from allocating while a batch lingers.
	for range cap(p.free) / 4 {
		p.free <- &kgo.Record{Value: make([]byte, 0, 1024), Key: make([]byte, 0, 36)}
	}
	p.wg.Add(1)
	go p.drainBacklog()
	return p, nil
}

// Client exposes the underlying client (health checks, tests).
func (p *Producer) Client() *kgo.Client { return p.cl }

// HasRoom reports whether Admit would admit a request now (readiness): with
// a spool, whether it has room beside what is reserved; without one,
// whether the producer's buffer has room.
func (p *Producer) HasRoom() bool {
	if st := p.sp; st != nil {
		return st.sp.HasRoomFor(MeteringReserve)
	}
	return p.kafkaRoom()
}

func (p *Producer) kafkaRoom() bool {
	return p.cl.BufferedProduceBytes() < p.maxBuffered && len(p.backlog) < cap(p.backlog)/2
}

// Admit reports whether a request may be forwarded: its metering event is
// guaranteed a place. With a spool, MeteringReserve bytes of it are set
// aside for the event (whatever Kafka does meanwhile: a record Kafka
// refuses, or still buffers at Close, goes to the spool in that room) until
// Kafka acknowledges it or it is spooled; the gateway answers 503
// metering_unavailable when there is none. The request's Metering (or
// Complete) uses the reservation; a request admitted but not forwarded
// gives it back with Unadmit. Without a spool, the producer's buffer must
// have room.
func (p *Producer) Admit() bool {
	if st := p.sp; st != nil {
		return st.sp.Reserve(MeteringReserve)
	}
	return p.kafkaRoom()
}

// Unadmit gives back the reservation of an admitted request that was not
// forwarded (denied after admission): it will produce no metering event.
func (p *Producer) Unadmit() {
	if st := p.sp; st != nil {
		st.sp.Unreserve(MeteringReserve)
	}
}

// Reserved returns the spool bytes held for admitted requests' events.
func (p *Producer) Reserved() int64 {
	if st := p.sp; st != nil {
		return st.sp.Reserved()
	}
	return 0
}

// release gives back r's reservation, if it holds one.
func (p *Producer) release(r *kgo.Record) {
	if r.Context == reservedCtx {
		r.Context = nil
		if st := p.sp; st != nil {
			st.sp.Unreserve(MeteringReserve)
		}
	}
}

func reserveOf(r *kgo.Record) int64 {
	if r.Context == reservedCtx {
		return MeteringReserve
	}
	return 0
}

// Buffered returns the records and bytes waiting for the brokers.
func (p *Producer) Buffered() (records, bytes int64) {
	return p.cl.BufferedProduceRecords(), p.cl.BufferedProduceBytes()
}

func (p *Producer) acquireRecord() *kgo.Record {
	select {
	case r := <-p.free:
		return r
	default:
		return &kgo.Record{Value: make([]byte, 0, 1024), Key: make([]byte, 0, 36)}
	}
}

func (p *Producer) releaseRecord(r *kgo.Record) {
	v, k := r.Value[:0], r.Key[:0]
	*r = kgo.Record{Value: v, Key: k}
	select {
	case p.free <- r:
	default:
	}
}

// Metering produces the metering event of a request admitted by Admit
// (with a spool it uses the admission's reservation), keyed by its agent.
func (p *Producer) Metering(e *event.Metering) { p.metering1(e, p.sp != nil) }

// MeteringUnreserved produces a metering event of a request admitted without
// a spool reservation (a fail-open route while the spool was full): best
// effort — if Kafka refuses it and the spool has no room, it is lost and
// counted as failed.
func (p *Producer) MeteringUnreserved(e *event.Metering) { p.metering1(e, false) }

// metering1 produces e; reserved: the record carries the request's spool
// reservation, given back once Kafka or the spool has it.
func (p *Producer) metering1(e *event.Metering, reserved bool) {
	r := p.acquireRecord()
	r.Topic = p.metering
	if reserved {
		r.Context = reservedCtx
	}
	r.Key = e.Agent.AppendText(r.Key)
	r.Value = e.AppendJSON(r.Value)
	p.send(r)
}

// Decision produces a policy decision (a denial and its reason).
func (p *Producer) Decision(a *event.Audit) { p.sendAudit(p.decisions, a) }

// Audit produces an audit event (an authentication failure, say).
func (p *Producer) Audit(a *event.Audit) { p.sendAudit(p.audit, a) }

func (p *Producer) sendAudit(topic string, a *event.Audit) {
	r := p.acquireRecord()
	r.Topic = topic
	if !a.Agent.IsZero() {
		r.Key = a.Agent.AppendText(r.Key)
	}
	r.Value = a.AppendJSON(r.Value)
	p.send(r)
}

func (p *Producer) send(r *kgo.Record) {
	if p.spoolFirst() {
		if _, ok := p.spoolRecord(tagOf(p, r.Topic), r.Key, r.Value, false, reserveOf(r)); ok {
			r.Context = nil // the reservation is the record's room now
			p.releaseRecord(r)
			return
		}
		// The spool is failing (a write error): Kafka's buffer is the last
		// resort; a reservation stays with the record.
	}
	p.inflight.Add(1)
	p.cl.TryProduce(context.Background(), r, p.promiseFn)
}

// promise is a method value created once per call site by the compiler; it
// runs on the producer's goroutine.
func (p *Producer) promise(r *kgo.Record, err error) {
	switch {
	case err == nil:
		producedTotal.Inc()
		if p.sp != nil {
			p.sp.acked()
			p.release(r)
		}
	case p.sp != nil:
		p.refusedOrPurged(r, err)
	case errors.Is(err, kgo.ErrMaxBuffered):
		// The buffer filled between admission and metering: hand the record
		// to the backlog goroutine, which waits for room.
		producerBacklog.Inc()
		select {
		case p.backlog <- r:
			return
		default:
		}
		p.fail(r, err)
	default:
		p.fail(r, err)
	}
	p.inflight.Add(-1)
	p.releaseRecord(r)
}

// refusedOrPurged handles a record Kafka did not take, with a spool: a
// non-retriable produce error (Kafka refuses records: the producer spools
// every event until the drain delivers again), a full buffer, or a purge at
// Close. The record goes to the spool, in its reservation if it holds one;
// a record the spool cannot take either is lost (counted, logged).
func (p *Producer) refusedOrPurged(r *kgo.Record, err error) {
	st := p.sp
	if !errors.Is(err, kgo.ErrMaxBuffered) && !st.closing.Load() {
		producerRefusedRecords.Inc()
		st.refused(err)
	}
	if !p.spoolFailed(r) {
		p.fail(r, err)
	}
}

// fail counts and logs a record that neither Kafka nor the spool took. For
// a metering event this is money missing from the ledger: with a spool,
// admission sets room aside for every forwarded request's event so this
// cannot happen unless the spool's disk fails.
func (p *Producer) fail(r *kgo.Record, err error) {
	p.release(r)
	producerFailed.Inc()
	p.Failed.Add(1)
	if ok, n := p.lostLog.allow(time.Now()); ok {
		log := slog.Default()
		if p.sp != nil {
			log = p.sp.opt.Logger
		}
		log.Error("record LOST: neither Kafka nor the spool took it (its spend is missing from the ledger)",
			"topic", r.Topic, "key", string(r.Key), "err", err, "lost_total", p.Failed.Load(), "lost_since_last_log", n)
	}
	if p.OnFailure != nil {
		p.OnFailure(r.Topic, r.Value, err)
	}
}

func (p *Producer) drainBacklog() {
	defer p.wg.Done()
	for {
		select {
		case r := <-p.backlog:
			// Produce blocks until there is room (or the client closes).
			p.cl.Produce(context.Background(), r, p.promiseBlocking)
		case <-p.quit:
			return
		}
	}
}

func (p *Producer) promiseBlocking(r *kgo.Record, err error) {
	switch {
	case err == nil:
		producedTotal.Inc()
		p.release(r)
	case p.sp != nil:
		p.refusedOrPurged(r, err)
	default:
		p.fail(r, err)
	}
	p.inflight.Add(-1)
	p.releaseRecord(r)
}

// Refused counts a request turned away because the producer had no room.
func Refused() { producerRefused.Inc() }

// Close flushes every buffered record (bounded by ctx) and closes the client;
// the spool (if any) keeps what was not drained, for the next start.
func (p *Producer) Close(ctx context.Context) error {
	if st := p.sp; st != nil {
		close(st.stop)
		st.wg.Wait()
	}
	err := p.cl.Flush(ctx)
	if err != nil && p.sp != nil {
		// The brokers did not take everything in time: fail what is still
		// buffered so the promises put it in the spool for the next start.
		p.sp.closing.Store(true)
		p.cl.PurgeTopicsFromProducing(p.metering, p.decisions, p.audit)
		err = nil
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	close(p.quit)
	p.wg.Wait()
	for len(p.backlog) > 0 {
		p.cl.Produce(ctx, <-p.backlog, p.promiseBlocking)
	}
	if err2 := p.cl.Flush(ctx); err == nil {
		err = err2
	}
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("cannot flush the producer: %w", err)
	}
	return nil
}

// spoolFailed appends a record Kafka could not take to the spool (in its
// reservation, if it holds one); false when the spool cannot take it either.
func (p *Producer) spoolFailed(r *kgo.Record) bool {
	_, ok := p.spoolRecord(tagOf(p, r.Topic), r.Key, r.Value, false, reserveOf(r))
	if ok {
		r.Context = nil
	}
	return ok
}

// logEvery rate-limits a repeated log line: the first occurrence, then at
// most one per period, carrying how many were left out since the last.
type logEvery struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many occurrences were left out
// since the last line.
func (l *logEvery) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// reset makes the next occurrence log at once; it returns the occurrences
// left out since the last line.
func (l *logEvery) reset() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.last, l.suppressed = time.Time{}, 0
	return n
}
