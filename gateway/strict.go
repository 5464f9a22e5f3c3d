package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/gateway/meter"
	"github.com/caracal-gw/caracal/internal/event"
)

// Strict mode (route.Strict, issue 6): before forwarding, a durable intent,
// an incomplete event charged at the reserved estimate with the request's
// event id, is in the spool (fsynced). After the response the metering event
// goes out as always and a completion marks the intent done. A gateway killed
// in between charges the intent at its next start (meter.Producer.UseSpool).

// writeIntent records the intent; on failure it answers 503 (fail closed)
// and gives the reservation back.
func (s *reqState) writeIntent(ctx *fasthttp.RequestCtx) bool {
	g := s.g
	e := &s.ev
	e.Reset()
	e.ID, e.TimeUnixUs, e.Kind = s.id, s.start.UnixMicro(), event.KindIncomplete
	e.Agent, e.Root = s.agent.ID, s.agent.Root
	e.NumAncestors = copy(e.Ancestors[:], s.agent.Ancestors)
	e.Route = append(e.Route, s.route.name...)
	e.Model = append(e.Model, s.model...)
	e.RequestID = append(e.RequestID, s.reqID...)
	e.Gateway = append(e.Gateway, g.gatewayID...)
	e.CostMicros, e.ReservedMicros = s.estimate, s.estimate
	e.Currency = currencyOf(s.price)
	e.Status = fasthttp.StatusOK
	e.Pricing = event.PricingEstimate
	in, err := g.producer.Intent(e)
	if err != nil {
		g.budget.Settle(s.ticket, 0)
		g.producer.Unadmit()
		s.fail(ctx, CodeMeteringUnavailable, "")
		return false
	}
	s.intent = in
	return true
}

// meterStrict hands a strict request's metering event to the producer as
// the intent's completion; false for other routes (metered as usual).
func (s *reqState) meterStrict(e *event.Metering) bool {
	if !s.route.Strict {
		return false
	}
	s.g.producer.Complete(s.intent, e)
	s.intent = meter.Intent{}
	return true
}
