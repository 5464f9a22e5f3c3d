// Package meter produces the gateway's records to Kafka: one metering event
// per forwarded request, denials to the decisions topic and authentication
// failures to the audit topic. Producing never blocks a request: records go
// through TryProduce from pooled buffers, and the gateway admits a request
// only while the producer has room (fail closed), so an event of a forwarded
// request is never silently dropped.
package meter

import (
	"context"
	"errors"
	"fmt"
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
	producedTotal   = metrics.NewCounter(`caracal_producer_records_total{result="acked"}`)
	producerFailed  = metrics.NewCounter(`caracal_producer_records_total{result="failed"}`)
	producerRefused = metrics.NewCounter(`caracal_producer_refused_total`)
	producerBacklog = metrics.NewCounter(`caracal_producer_backlog_total`)
)

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

// HasRoom reports whether a new request may be admitted: the producer has
// buffer room for its event, or the spool has room (only the spool counts
// while the brokers are down). The gateway answers 503 otherwise.
func (p *Producer) HasRoom() bool {
	kafkaRoom := p.cl.BufferedProduceBytes() < p.maxBuffered && len(p.backlog) < cap(p.backlog)/2
	st := p.sp
	if st == nil {
		return kafkaRoom
	}
	if st.down.Load() {
		return st.sp.HasRoom()
	}
	return kafkaRoom || st.sp.HasRoom()
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

// Metering produces a metering event keyed by its agent.
func (p *Producer) Metering(e *event.Metering) {
	r := p.acquireRecord()
	r.Topic = p.metering
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
		if _, ok := p.spoolRecord(tagOf(p, r.Topic), r.Key, r.Value, false); ok {
			p.releaseRecord(r)
			return
		}
		// The spool is full or failing: Kafka's buffer is the last resort.
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
		}
	case p.sp != nil && p.spoolFailed(r):
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

func (p *Producer) fail(r *kgo.Record, err error) {
	producerFailed.Inc()
	p.Failed.Add(1)
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
	case p.sp != nil && p.spoolFailed(r):
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

// spoolFailed appends a record Kafka could not take to the spool; false when
// the spool cannot take it either.
func (p *Producer) spoolFailed(r *kgo.Record) bool {
	_, ok := p.spoolRecord(tagOf(p, r.Topic), r.Key, r.Value, false)
	return ok
}
