package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure one upstream pool. The zero value of each field picks the default
// named next to it.
type Options struct {
	// MaxConns per upstream address; default 512.
	MaxConns int
	// ReadTimeout is the longest the upstream may stay silent: before the response
	// head and between two reads of the body (nginx's proxy_read_timeout). A long SSE
	// stream lives as long as events keep coming. Default 60s.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending the request; default 30s.
	WriteTimeout time.Duration
	// DialTimeout bounds connecting; default 5s.
	DialTimeout time.Duration
	// MaxIdleConnDuration closes pooled connections idle this long; keep it below the
	// upstream's keep-alive timeout. Default 10s.
	MaxIdleConnDuration time.Duration
	// MaxResponseBodySize bounds the bytes streamed back; 0 means unlimited.
	MaxResponseBodySize int64
	// BufferBodySize: a response with a Content-Length up to this is read whole and its
	// connection pooled at once (no allocation); larger, chunked and SSE bodies are
	// streamed. Default 64 KiB; never above MaxResponseBodySize.
	BufferBodySize int
	// StripPrefix is removed from the request path before the upstream URL's own path
	// is prepended (route "/openai" + upstream "https://api.openai.com/v1":
	// "/openai/chat/completions?x=1" → "/v1/chat/completions?x=1").
	StripPrefix string
	// CredentialHeader and CredentialValue are injected into every forwarded request
	// (e.g. "Authorization", "Bearer sk-..."), pre-rendered once.
	CredentialHeader []byte
	CredentialValue  []byte
	// Hygiene gives the trusted proxies; nil trusts none.
	Hygiene *Hygiene
	// TLSConfig for https upstreams; nil uses a default client config.
	TLSConfig *tls.Config
	// Dial replaces the TCP dialer, e.g. ssrf.Guard.Dial for client-chosen targets.
	Dial func(addr string) (net.Conn, error)
	// RawSocketIO reads and writes upstream connections with raw system
	// calls (internal/rawconn).
	RawSocketIO bool
	// WriteError answers the client when forwarding fails before the response head
	// was sent (502 upstream error or too large, 504 timeout). Default: plain text.
	WriteError func(ctx *fasthttp.RequestCtx, status int, err error)
}

// Upstream is a pool of upstream servers used round-robin.
type Upstream struct {
	targets []target
	next    atomic.Uint32
	opts    Options
	hygiene *Hygiene
}

type target struct {
	hc       *fasthttp.HostClient
	scheme   []byte
	host     []byte
	basePath []byte
}

// NewUpstream builds a pool from absolute http or https URLs; a URL's path is the base
// that the stripped request path is appended to.
func NewUpstream(urls []string, opts Options) (*Upstream, error) {
	if len(urls) == 0 {
		return nil, errors.New("cannot create upstream: no URL")
	}
	opts.setDefaults()
	up := &Upstream{opts: opts, hygiene: opts.Hygiene}
	if up.hygiene == nil {
		up.hygiene = &Hygiene{}
	}
	for _, raw := range urls {
		t, err := newTarget(raw, &up.opts)
		if err != nil {
			return nil, err
		}
		up.targets = append(up.targets, t)
	}
	return up, nil
}

func (o *Options) setDefaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = 512
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 60 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MaxIdleConnDuration <= 0 {
		o.MaxIdleConnDuration = 10 * time.Second
	}
	if o.BufferBodySize <= 0 {
		o.BufferBodySize = 64 << 10
	}
	if o.MaxResponseBodySize > 0 && int64(o.BufferBodySize) > o.MaxResponseBodySize {
		o.BufferBodySize = int(o.MaxResponseBodySize)
	}
	if o.WriteError == nil {
		o.WriteError = writePlainError
	}
	o.StripPrefix = strings.TrimSuffix(o.StripPrefix, "/")
}

func newTarget(raw string, o *Options) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("cannot parse upstream URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return target{}, fmt.Errorf("cannot use upstream URL %q: want http(s)://host[:port][/path]", raw)
	}
	isTLS := u.Scheme == "https"
	hc := &fasthttp.HostClient{
		Addr:                     fasthttp.AddMissingPort(u.Host, isTLS),
		IsTLS:                    isTLS,
		TLSConfig:                o.TLSConfig,
		MaxConns:                 o.MaxConns,
		WriteTimeout:             o.WriteTimeout,
		MaxIdleConnDuration:      o.MaxIdleConnDuration,
		Transport:                &transport{bufferLimit: o.BufferBodySize},
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		Dial:                     idleDialer(o.Dial, o.DialTimeout, o.ReadTimeout, o.RawSocketIO),
	}
	return target{
		hc:       hc,
		scheme:   []byte(u.Scheme),
		host:     []byte(u.Host),
		basePath: []byte(strings.TrimSuffix(u.EscapedPath(), "/")),
	}, nil
}

func (up *Upstream) pick() *target {
	n := up.next.Add(1)
	return &up.targets[n%uint32(len(up.targets))]
}

// prepare copies the client's request into dst for target t: headers cleaned, URI
// rewritten, body shared without a copy (it must outlive only the Do call).
func (up *Upstream) prepare(ctx *fasthttp.RequestCtx, dst *fasthttp.Request, t *target) {
	src := &ctx.Request
	src.Header.CopyTo(&dst.Header)
	dst.SetBodyRaw(src.Body())
	up.hygiene.CleanRequest(dst, ctx.RemoteIP(), ctx.IsTLS(), up.opts.CredentialHeader, up.opts.CredentialValue)

	var scratch [512]byte
	b := append(scratch[:0], t.basePath...)
	b = appendStripped(b, src.URI().Path(), up.opts.StripPrefix)
	uri := dst.URI()
	uri.SetSchemeBytes(t.scheme)
	uri.SetHostBytes(t.host)
	uri.SetPathBytes(b)
	uri.SetQueryStringBytes(src.URI().QueryString())
	dst.Header.SetHostBytes(t.host)
}

// appendStripped appends path without prefix (when path starts with it at a segment
// boundary), always yielding a path that starts with '/'.
func appendStripped(dst, path []byte, prefix string) []byte {
	if len(prefix) > 0 && len(path) >= len(prefix) && string(path[:len(prefix)]) == prefix &&
		(len(path) == len(prefix) || path[len(prefix)] == '/') {
		path = path[len(prefix):]
	}
	if len(path) == 0 || path[0] != '/' {
		dst = append(dst, '/')
	}
	return append(dst, path...)
}

func writePlainError(ctx *fasthttp.RequestCtx, status int, err error) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(fasthttp.StatusMessage(status))
}
