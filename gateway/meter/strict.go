package meter

import (
	"errors"

	"github.com/caracal-gw/caracal/internal/event"
)

// ErrNoSpool: strict mode needs a spool for its intents.
var ErrNoSpool = errors.New("strict mode needs a spool: none is configured")

// Intent is a strict-mode request's durable intent, to be completed.
type Intent struct {
	seq uint64
	id  event.ID
	ok  bool
}

// Intent records e durably (fsync) before the request is forwarded: an
// incomplete event (Kind is set to KindIncomplete) charged at its estimate
// (e.CostMicros). If the process dies before Complete, the next start
// produces it with the request's event id. The gateway fails the request
// closed on an error.
func (p *Producer) Intent(e *event.Metering) (Intent, error) {
	if p.sp == nil {
		return Intent{}, ErrNoSpool
	}
	e.Kind = event.KindIncomplete
	r := p.acquireRecord()
	r.Key = e.Agent.AppendText(r.Key)
	r.Value = e.AppendJSON(r.Value)
	seq, ok := p.spoolRecord(tagIntent, r.Key, r.Value, true, 0)
	p.releaseRecord(r)
	if !ok {
		return Intent{}, errors.New("cannot record a strict-mode intent in the spool")
	}
	intentsTotal.Inc()
	return Intent{seq: seq, id: e.ID, ok: true}, nil
}

// Complete marks the intent done with the request's metering event e: the
// event is appended to the spool (fsync) as the completion and produced from
// there by the drain, so the intent is only completed once its event is
// durable. If the spool cannot take it, e goes to Kafka directly and the
// intent stays open: the next start also charges it as incomplete, with the
// same event id (the ledger keeps one entry per id). The completion uses the
// request's admission reservation (Admit).
func (p *Producer) Complete(in Intent, e *event.Metering) {
	if !in.ok || p.sp == nil {
		p.Metering(e)
		return
	}
	r := p.acquireRecord()
	r.Key = e.Agent.AppendText(r.Key)
	r.Value = e.AppendJSON(r.Value)
	_, ok := p.spoolRecord(tagCompletion, r.Key, r.Value, false, MeteringReserve)
	p.releaseRecord(r)
	if !ok {
		p.Metering(e)
		return
	}
	p.sp.sp.Unpin(in.seq)
}
