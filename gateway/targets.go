package gateway

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/gateway/proxy"
	"github.com/caracal-gw/caracal/gateway/ssrf"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// Routes with allow_target_url let the client choose the upstream with the
// X-Caracal-Target header (an absolute http(s) URL). The host must be on the
// agent's target allow-list (an empty list allows no target) and on every
// ancestor's non-empty list; it must not resolve to a loopback, private,
// link-local or otherwise special address, checked at dial time on the
// addresses actually connected to, so DNS rebinding cannot reach them.
// Redirects are never followed.

var strTarget = []byte("X-Caracal-Target")

// maxTargetPools bounds the per-agent upstream pools kept for targets.
const maxTargetPools = 4096

type targetKey struct {
	agent  event.UUID
	origin string
}

type targets struct {
	mu    sync.Mutex
	pools map[targetKey]*proxy.Upstream
	opts  ssrf.Options // tests inject a resolver and dialer
}

func newTargets(o ssrf.Options) *targets {
	return &targets{pools: make(map[targetKey]*proxy.Upstream), opts: o}
}

// resolveTarget checks the request's target and returns the upstream to
// forward to, after pointing the request's path and query at the target.
func (s *reqState) resolveTarget(ctx *fasthttp.RequestCtx) (*proxy.Upstream, bool) {
	raw := ctx.Request.Header.PeekBytes(strTarget)
	if len(raw) == 0 {
		s.deny(ctx, CodeBadRequest, "this route needs the X-Caracal-Target header")
		return nil, false
	}
	if len(s.agent.AllowTargets) == 0 {
		s.deny(ctx, CodeTargetNotAllowed, "")
		return nil, false
	}
	g := s.g
	guard, err := ssrf.New(s.agent.AllowTargets, g.targets.opts)
	if err != nil {
		s.deny(ctx, CodeTargetNotAllowed, "")
		return nil, false
	}
	host, port, err := guard.CheckURL(raw)
	if err != nil {
		s.deny(ctx, CodeTargetNotAllowed, "")
		return nil, false
	}
	for _, a := range s.chain[1:s.nchain] {
		if len(a.AllowTargets) == 0 {
			continue
		}
		ag, err := ssrf.New(a.AllowTargets, g.targets.opts)
		if err != nil || !ag.Allowed(host) {
			s.deny(ctx, CodeTargetNotAllowed, "")
			return nil, false
		}
	}
	scheme := raw[:bytes.Index(raw, []byte("://"))]
	rest := raw[len(scheme)+3:]
	pathAndQuery := []byte("/")
	if i := bytes.IndexAny(rest, "/?"); i >= 0 {
		pathAndQuery = rest[i:]
	}
	if i := bytes.IndexByte(pathAndQuery, '#'); i >= 0 {
		pathAndQuery = pathAndQuery[:i]
	}
	origin := string(bytes.ToLower(scheme)) + "://" + hostPort(host, port)
	up, err := g.targets.pool(s.agent, origin, guard, g)
	if err != nil {
		s.deny(ctx, CodeTargetNotAllowed, "")
		return nil, false
	}
	// The route is matched; the target's own path and query go upstream.
	ctx.Request.SetRequestURIBytes(pathAndQuery)
	ctx.Request.Header.DelBytes(strTarget)
	return up, true
}

func hostPort(host []byte, port int) string {
	h := string(host)
	if bytes.IndexByte(host, ':') >= 0 {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(port)
}

func (t *targets) pool(a *control.Agent, origin string, guard *ssrf.Guard, g *Gateway) (*proxy.Upstream, error) {
	k := targetKey{agent: a.ID, origin: origin}
	t.mu.Lock()
	defer t.mu.Unlock()
	if up := t.pools[k]; up != nil {
		return up, nil
	}
	if len(t.pools) >= maxTargetPools {
		clear(t.pools)
	}
	up, err := proxy.NewUpstream([]string{origin}, proxy.Options{
		MaxConns:            g.cfg.Gateway.UpstreamIdleConns,
		ReadTimeout:         g.cfg.RequestTimeout.D(),
		WriteTimeout:        g.cfg.RequestTimeout.D(),
		MaxResponseBodySize: int64(g.cfg.Gateway.MaxResponseBody),
		Hygiene:             g.hygiene,
		Dial:                guard.Dial,
		WriteError:          g.writeUpstreamError,
		RawSocketIO:         g.cfg.Gateway.RawSocketIO,
	})
	if err != nil {
		return nil, err
	}
	t.pools[k] = up
	return up, nil
}
