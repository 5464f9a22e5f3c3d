package gateway

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/gateway/auth"
	"github.com/caracal-gw/caracal/gateway/meter"
	"github.com/caracal-gw/caracal/gateway/proxy"
	"github.com/caracal-gw/caracal/gateway/replay"
	"github.com/caracal-gw/caracal/gateway/usage"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// defaultMaxTokens prices a request that sets no output limit: the estimate
// assumes this many output tokens (and a clamped body gets a lower limit).
const defaultMaxTokens = 4096

// maxUsageBody bounds the JSON response kept to read usage from; a larger
// non-streamed response is charged at its estimate.
const maxUsageBody = 1 << 20

// reqState is everything one request needs until its metering event is
// produced; pooled, so the hot path allocates nothing in steady state. The
// tap and done method values are bound once when the state is created.
type reqState struct {
	g             *Gateway
	start         time.Time
	id            event.ID
	reqID         []byte
	scratch       []byte
	route         *route
	up            *proxy.Upstream
	agent         *control.Agent
	chain         [event.MaxAncestors + 1]*control.Agent
	nchain        int
	ticket        budget.Ticket
	estimate      int64
	remaining     int64
	price         control.Price
	model         []byte
	sse           bool
	headerCost    int64
	hasHeaderCost bool
	body          []byte
	tooBig        bool
	scanner       usage.Scanner
	ev            event.Metering
	audit         event.Audit
	clamped       []byte
	intent        meter.Intent // strict mode (strict.go)
	// failOpen: the route is fail-open and the request was forwarded
	// without spool room for its event (admitMetering).
	failOpen bool

	tap  func([]byte)
	done proxy.Done
}

var statePool sync.Pool

func newState() *reqState {
	s := &reqState{reqID: make([]byte, 0, 26), scratch: make([]byte, 0, 256), body: make([]byte, 0, 16<<10)}
	s.tap = s.onChunk
	s.done = s.onDone
	return s
}

func acquireState(g *Gateway) *reqState {
	v := statePool.Get()
	if v == nil {
		v = newState()
	}
	s := v.(*reqState)
	s.g = g
	return s
}

func releaseState(s *reqState) {
	s.g, s.route, s.agent, s.up = nil, nil, nil, nil
	for i := range s.chain {
		s.chain[i] = nil
	}
	s.nchain, s.estimate, s.remaining, s.sse, s.tooBig, s.headerCost, s.hasHeaderCost = 0, 0, 0, false, false, 0, false
	s.failOpen = false
	s.ticket = budget.Ticket{}
	s.price = control.Price{}
	s.model, s.body, s.reqID, s.clamped = s.model[:0], s.body[:0], s.reqID[:0], s.clamped[:0]
	statePool.Put(s)
}

// handle is the gateway's fasthttp handler: shed → route → authenticate →
// replay → policy → budget → forward → meter.
func (g *Gateway) handle(ctx *fasthttp.RequestCtx) {
	s := acquireState(g)
	// fasthttp read the clock just before calling the handler.
	if s.start = ctx.Time(); s.start.IsZero() {
		s.start = time.Now()
	}
	s.id = g.ids.New(s.start)
	s.reqID = s.id.AppendText(s.reqID[:0])
	if n := g.inflight.Add(1); n > g.maxInflight {
		g.inflight.Add(-1)
		shedTotal.Inc()
		s.fail(ctx, CodeOverloaded, "")
		return
	}
	if !s.admit(ctx) {
		g.inflight.Add(-1)
		return
	}
	// Strict mode: a durable intent before forwarding (strict.go).
	if s.route.Strict && !s.writeIntent(ctx) {
		g.inflight.Add(-1)
		return
	}
	// From here the request is forwarded; s and the in-flight slot are
	// released by onDone.
	if len(s.clamped) > 0 {
		ctx.Request.SetBodyRaw(s.clamped)
	}
	forwarded.Inc()
	proxy.Forward(ctx, s.up, s.tap, s.done)
	if s.finished() {
		return
	}
	ctx.Response.Header.SetBytesKV(strRequestID, s.reqID)
	s.sse = bytes.HasPrefix(ctx.Response.Header.ContentType(), strEventStream)
	if s.route.Pricing == control.PriceHeader {
		s.headerCost, s.hasHeaderCost = usage.HeaderCost(ctx.Response.Header.Peek(s.route.PriceHeader))
	}
	if s.sse {
		s.scanner.Reset(s.route.Provider)
	}
}

var strEventStream = []byte("text/event-stream")

// finished reports whether onDone already ran (forwarding failed before the
// response head): the state was released.
func (s *reqState) finished() bool { return s.g == nil }

// admit runs every check before forwarding; on refusal it has answered.
func (s *reqState) admit(ctx *fasthttp.RequestCtx) bool {
	g := s.g
	rt := g.routeTable()
	if rt == nil {
		s.fail(ctx, CodeControlUnavailable, "")
		return false
	}
	s.route = rt.match(ctx.Path())
	if s.route == nil {
		s.deny(ctx, CodeRouteNotFound, "")
		return false
	}
	if !g.producer.HasRoom() && !s.route.FailOpen {
		meter.Refused()
		s.fail(ctx, CodeMeteringUnavailable, "")
		return false
	}
	if s.route.up == nil && !s.route.AllowTargetURL {
		s.fail(ctx, CodeControlUnavailable, "this route is unusable: its upstream or credential could not be loaded")
		return false
	}
	if !s.authenticate(ctx) {
		return false
	}
	if !s.checkPolicy(ctx) {
		return false
	}
	if !g.budgetReady() {
		// Redis is down or its totals are incomplete: never forward unmetered.
		s.fail(ctx, CodeBudgetUnavailable, "")
		return false
	}
	if (s.route.ReplayRequired || s.agent.ReplayRequired) && !s.checkReplay(ctx) {
		return false
	}
	s.up = s.route.up
	if s.route.AllowTargetURL {
		up, ok := s.resolveTarget(ctx)
		if !ok {
			return false
		}
		s.up = up
	}
	return s.reserve(ctx, rt) && s.admitMetering(ctx)
}

// admitMetering sets room aside for the request's metering event (the
// producer's spool reservation, given back once the event is in Kafka or the
// spool); without it the request is not forwarded (fail closed) — unless
// the route is fail-open (`caracal route set --fail-open`): then it is
// forwarded, counted in caracal_metering_fail_open_total, and its event is
// produced best-effort (if neither Kafka nor the spool takes it, it is lost
// and counted as failed).
func (s *reqState) admitMetering(ctx *fasthttp.RequestCtx) bool {
	if s.g.producer.Admit() {
		return true
	}
	if s.route.FailOpen {
		s.failOpen = true
		meteringFailOpen.Inc()
		return true
	}
	s.g.budget.Settle(s.ticket, 0)
	meter.Refused()
	s.fail(ctx, CodeMeteringUnavailable, "")
	return false
}

// Failed authentication is rate limited per client address and per API key
// prefix: authFailBurst failures at once, then one per authFailEvery.
const (
	authFailBurst = 30
	authFailEvery = 2 * time.Second
)

func (s *reqState) authenticate(ctx *fasthttp.RequestCtx) bool {
	g := s.g
	ipKey := clientKey(ctx)
	kind, tok, reason := auth.ParseCredential(ctx.Request.Header.PeekBytes(strXAPIKey), ctx.Request.Header.PeekBytes(strAuthorization))
	var prefixKey event.UUID
	if kind == auth.KindAPIKey {
		copy(prefixKey[:], tok[:auth.APIKeyPrefixLen])
	}
	if g.authFails.blocked(ipKey, authFailEvery, authFailBurst, s.start) ||
		(kind == auth.KindAPIKey && g.authFails.blocked(prefixKey, authFailEvery, authFailBurst, s.start)) {
		s.authFailure(ctx, CodeAuthRateLimited, auth.ReasonOK, tok)
		return false
	}
	if !s.verify(ctx, kind, tok, reason) {
		g.authFails.allowEvery(ipKey, authFailEvery, authFailBurst, s.start)
		if kind == auth.KindAPIKey {
			g.authFails.allowEvery(prefixKey, authFailEvery, authFailBurst, s.start)
		}
		return false
	}
	return true
}

// clientKey is the client address as a 16-byte key.
func clientKey(ctx *fasthttp.RequestCtx) event.UUID {
	var k event.UUID
	if ip := ctx.RemoteIP(); len(ip) == 4 || len(ip) == 16 {
		copy(k[:], ip.To16())
	}
	return k
}

// verify checks the credential; on failure it has answered.
func (s *reqState) verify(ctx *fasthttp.RequestCtx, kind auth.Kind, tok []byte, reason auth.Reason) bool {
	g := s.g
	var id event.UUID
	switch {
	case kind == auth.KindAPIKey:
		// One lookup: an unreachable control store is told apart from an
		// unknown key, and the stored key is checked without a second one.
		stored, found, err := g.cache.APIKey(tok[:auth.APIKeyPrefixLen])
		if err != nil {
			s.fail(ctx, CodeControlUnavailable, "")
			return false
		}
		id, reason = g.keys.Check(tok, stored, found)
	case kind == auth.KindJWT:
		v := g.jwt.Load()
		if v == nil {
			reason = auth.ReasonWrongIssuer
			break
		}
		claims, r := v.Verify(ctx, tok)
		reason = r
		if r == auth.ReasonOK {
			a, err := g.cache.AgentByName(claims.Agent)
			if err != nil {
				s.fail(ctx, CodeControlUnavailable, "")
				return false
			}
			if a == nil {
				reason = auth.ReasonMissingClaim
				break
			}
			id = a.ID
		}
	case reason == auth.ReasonMissing && ctx.IsTLS():
		id, reason = auth.VerifyCert(ctx.TLSConnectionState(), g.certLookup)
		if reason == auth.ReasonNoClientCert {
			reason = auth.ReasonMissing
		}
	}
	if reason != auth.ReasonOK {
		s.authFailure(ctx, CodeUnauthenticated, reason, tok)
		return false
	}
	a, err := g.cache.Agent(id)
	if err != nil {
		s.fail(ctx, CodeControlUnavailable, "")
		return false
	}
	if a == nil {
		s.authFailure(ctx, CodeUnauthenticated, auth.ReasonUnknownKey, tok)
		return false
	}
	s.agent = a
	return true
}

var (
	strXAPIKey       = []byte("X-API-Key")
	strAuthorization = []byte("Authorization")
)

// authFailure answers 401 (or 429 when throttled) and records an audit
// event with at most the visible prefix of a key, never the secret.
func (s *reqState) authFailure(ctx *fasthttp.RequestCtx, c Code, r auth.Reason, tok []byte) {
	authFailures.Inc()
	a := &s.audit
	a.Reset()
	a.ID, a.TimeUnixUs = s.id, s.start.UnixMicro()
	a.Type = append(a.Type, "auth_failure"...)
	if c == CodeUnauthenticated {
		a.Reason = append(a.Reason, r.String()...)
	} else {
		a.Reason = append(a.Reason, c.String()...)
	}
	a.Status = c.Status()
	a.ClientIP = appendIP(a.ClientIP[:0], ctx)
	if s.route != nil {
		a.Route = append(a.Route, s.route.name...)
	}
	if auth.IsAPIKey(tok) {
		a.KeyPrefix = append(a.KeyPrefix, tok[:auth.APIKeyPrefixLen]...)
	}
	a.RequestID = append(a.RequestID, s.reqID...)
	a.Gateway = append(a.Gateway, s.g.gatewayID...)
	s.g.producer.Audit(a)
	if c == CodeUnauthenticated {
		s.finish(ctx, c, r.String())
	} else {
		s.finish(ctx, c, "")
	}
}

// appendIP appends the client address without allocating.
func appendIP(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	ip := ctx.RemoteIP()
	if v4 := ip.To4(); v4 != nil {
		for i, b := range v4 {
			if i > 0 {
				dst = append(dst, '.')
			}
			dst = strconv.AppendUint(dst, uint64(b), 10)
		}
		return dst
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.AppendTo(dst)
}

// checkPolicy: the agent and every ancestor active, allow-lists of the whole
// chain, the agent's rate limit.
func (s *reqState) checkPolicy(ctx *fasthttp.RequestCtx) bool {
	g := s.g
	s.chain[0], s.nchain = s.agent, 1
	for _, anc := range s.agent.Ancestors {
		if s.nchain == len(s.chain) {
			break
		}
		a, err := g.cache.Agent(anc)
		if err != nil || a == nil {
			s.fail(ctx, CodeControlUnavailable, "")
			return false
		}
		s.chain[s.nchain] = a
		s.nchain++
	}
	for _, a := range s.chain[:s.nchain] {
		if !a.Active {
			s.deny(ctx, CodeAgentDisabled, "")
			return false
		}
		if !allowed(a.AllowRoutes, s.route.name) {
			s.deny(ctx, CodeRouteNotAllowed, "")
			return false
		}
	}
	if ok, _ := g.rates.allow(s.agent.ID, s.agent.RateLimitRPS, s.agent.RateLimitBurst, s.start); !ok {
		s.deny(ctx, CodeRateLimited, "")
		return false
	}
	return true
}

// allowed reports whether name is on list (empty list: everything); an entry
// ending in '*' is a prefix.
func allowed(list []string, name []byte) bool {
	if len(list) == 0 {
		return true
	}
	for _, p := range list {
		if n := len(p); n > 0 && p[n-1] == '*' {
			if len(name) >= n-1 && string(name[:n-1]) == p[:n-1] {
				return true
			}
		} else if string(name) == p {
			return true
		}
	}
	return false
}

func (s *reqState) checkReplay(ctx *fasthttp.RequestCtx) bool {
	switch s.g.replay.Check(ctx.Request.Header.PeekBytes(strNonce), ctx.Request.Header.PeekBytes(strTimestamp), s.start) {
	case replay.Accepted:
		return true
	case replay.Unavailable:
		s.fail(ctx, CodeReplayUnavailable, "")
	default:
		s.deny(ctx, CodeReplay, "")
	}
	return false
}

var strBudgetRemaining = []byte("X-Caracal-Budget-Remaining")

var (
	strNonce     = []byte("X-Caracal-Nonce")
	strTimestamp = []byte("X-Caracal-Timestamp")
)

// reserve estimates the cost and takes it from the agent's budget lease;
// where the route knows the model, max_tokens is clamped to what the budget
// can still pay.
func (s *reqState) reserve(ctx *fasthttp.RequestCtx, rt *routeTable) bool {
	r := s.route
	body := ctx.Request.Body()
	var req usage.Request
	switch r.Pricing {
	case control.PriceTokens:
		req = usage.InspectRequest(r.Provider, body)
		if req.ModelEscaped || (len(body) > 0 && !req.Object) {
			s.deny(ctx, CodeBadRequest, "the request body is not a JSON object the gateway can price")
			return false
		}
		s.model = append(s.model[:0], req.Model...)
		for _, a := range s.chain[:s.nchain] {
			if !allowed(a.AllowModels, s.model) {
				s.deny(ctx, CodeModelNotAllowed, "")
				return false
			}
		}
		p, ok := rt.prices.Lookup(r.name, s.model)
		if !ok {
			p, ok = rt.prices.Lookup(r.provider, s.model)
		}
		if !ok {
			s.deny(ctx, CodeModelNotAllowed, "no price is set for this model on this route")
			return false
		}
		s.price = p
		s.estimate = usage.Estimate(req, p, defaultMaxTokens)
	default:
		s.price = usage.PerRequestPrice(&r.Route)
		s.estimate = s.price.PerRequest
	}
	var st budget.Status
	s.ticket, st = s.g.budget.Take(s.agent, s.estimate)
	if st.Code == budget.Exhausted && r.Pricing == control.PriceTokens && st.Remaining > 0 {
		// Clamp the output limit to what the remaining budget pays for.
		maxOut := usage.MaxAffordableOutput(st.Remaining, req.InputTokens, s.price)
		if maxOut > 0 {
			if out, ok := usage.ClampMaxTokens(s.clamped[:0], body, r.Provider, maxOut); ok {
				s.clamped = out
				req.MaxTokens = maxOut
				s.estimate = usage.Estimate(req, s.price, defaultMaxTokens)
				s.ticket, st = s.g.budget.Take(s.agent, s.estimate)
			}
		}
	}
	switch st.Code {
	case budget.OK:
		return true
	case budget.Unavailable:
		s.fail(ctx, CodeBudgetUnavailable, "")
	default:
		s.remaining = max(st.Remaining, 0)
		s.deny(ctx, CodeBudgetExceeded, "")
	}
	return false
}

// deny refuses a request for a policy reason and records the decision.
func (s *reqState) deny(ctx *fasthttp.RequestCtx, c Code, msg string) {
	decisions[c].Inc()
	a := &s.audit
	a.Reset()
	a.ID, a.TimeUnixUs = s.id, s.start.UnixMicro()
	a.Type = append(a.Type, "decision"...)
	if s.agent != nil {
		a.Agent = s.agent.ID
	}
	if s.route != nil {
		a.Route = append(a.Route, s.route.name...)
	}
	a.Reason = append(a.Reason, c.String()...)
	a.Status = c.Status()
	a.ClientIP = appendIP(a.ClientIP[:0], ctx)
	a.RequestID = append(a.RequestID, s.reqID...)
	a.Gateway = append(a.Gateway, s.g.gatewayID...)
	s.g.producer.Decision(a)
	s.finish(ctx, c, msg)
}

// fail refuses a request because a dependency cannot be trusted (fail
// closed).
func (s *reqState) fail(ctx *fasthttp.RequestCtx, c Code, msg string) {
	decisions[c].Inc()
	s.finish(ctx, c, msg)
}

func (s *reqState) finish(ctx *fasthttp.RequestCtx, c Code, msg string) {
	s.scratch = writeError(ctx, c, msg, s.reqID, s.scratch)
	if c == CodeBudgetExceeded {
		s.body = appendInt(s.body[:0], s.remaining)
		ctx.Response.Header.SetBytesKV(strBudgetRemaining, s.body)
	}
	status := c.Status()
	s.g.observe(status, time.Since(s.start))
	releaseState(s)
}

// writeUpstreamError is the proxy's error writer: the one JSON shape.
func (g *Gateway) writeUpstreamError(ctx *fasthttp.RequestCtx, status int, err error) {
	c := CodeUpstreamError
	if status == fasthttp.StatusGatewayTimeout || errors.Is(err, proxy.ErrTimeout) {
		c = CodeUpstreamTimeout
	}
	decisions[c].Inc() // HighErrorRate's first diagnostic (docs/runbook.md)
	id := ctx.Response.Header.PeekBytes(strRequestID)
	var buf [64]byte
	n := copy(buf[:], id)
	writeError(ctx, c, "", buf[:n], buf[n:n])
}

// onChunk sees each response body chunk as it streams to the client.
func (s *reqState) onChunk(p []byte) {
	if s.sse {
		s.scanner.Feed(p)
		return
	}
	if s.tooBig {
		return
	}
	if len(s.body)+len(p) > maxUsageBody {
		s.tooBig = true
		return
	}
	s.body = append(s.body, p...)
}

// onDone runs once the response has been streamed (or forwarding failed):
// it prices the call, settles the lease and produces the metering event.
func (s *reqState) onDone(status int, _ int64, err error) {
	g := s.g
	cost, pricing, in, out := s.price.PerRequest, event.PricingPerRequest, int64(0), int64(0)
	var cacheWrite, cacheRead int64
	switch s.route.Pricing {
	case control.PriceTokens:
		u, ok := usage.Usage{}, false
		if s.sse {
			u, ok = s.scanner.Usage()
		} else if !s.tooBig && err == nil {
			u, ok = usage.ParseUsageJSON(s.route.Provider, s.body)
		}
		switch {
		case ok:
			cost, pricing, in, out = usage.Cost(u, s.price), event.PricingTokens, u.InputTokens, u.OutputTokens
			cacheWrite, cacheRead = u.CacheWriteTokens, u.CacheReadTokens
		case err != nil && isDialError(err):
			// The upstream was never reached: nothing was spent.
			cost, pricing = 0, event.PricingTokens
		case err == nil && status >= 400:
			// The upstream refused the call without usage: not billed.
			cost, pricing = 0, event.PricingTokens
		default:
			// Reached, but no usage could be read (a cut stream, a body
			// over the usage limit): charge the estimate.
			cost, pricing = s.estimate, event.PricingEstimate
		}
	case control.PriceHeader:
		if s.hasHeaderCost {
			cost, pricing = s.headerCost, event.PricingHeader
		} else {
			cost, pricing = s.estimate, event.PricingEstimate
		}
	default:
		if err != nil && isDialError(err) {
			cost = 0
		}
	}
	reserved := g.budget.Settle(s.ticket, cost)
	e := &s.ev
	e.Reset()
	e.ID, e.TimeUnixUs, e.Kind = s.id, s.start.UnixMicro(), event.KindUsage
	e.Agent, e.Root = s.agent.ID, s.agent.Root
	e.NumAncestors = copy(e.Ancestors[:], s.agent.Ancestors)
	e.Route = append(e.Route, s.route.name...)
	e.Model = append(e.Model, s.model...)
	e.RequestID = append(e.RequestID, s.reqID...)
	e.Gateway = append(e.Gateway, g.gatewayID...)
	e.InputTokens, e.OutputTokens, e.CostMicros, e.ReservedMicros = in, out, cost, reserved
	e.CacheWriteTokens, e.CacheReadTokens = cacheWrite, cacheRead
	e.Currency = currencyOf(s.price)
	e.Status = status
	elapsed := time.Since(s.start)
	e.LatencyUs = elapsed.Microseconds()
	e.Pricing = pricing
	switch {
	case s.meterStrict(e): // strict mode: the event completes the intent (strict.go)
	case s.failOpen:
		g.producer.MeteringUnreserved(e)
	default:
		g.producer.Metering(e)
	}
	meteredMicros.Add(int(cost))
	g.observe(status, elapsed)
	g.inflight.Add(-1)
	releaseState(s)
}

func currencyOf(p control.Price) [3]byte {
	if p.Currency == ([3]byte{}) {
		return [3]byte{'U', 'S', 'D'}
	}
	return p.Currency
}

// isDialError reports whether forwarding failed before a connection to the
// upstream existed, so the request cannot have been billed upstream.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, fasthttp.ErrDialTimeout)
}
