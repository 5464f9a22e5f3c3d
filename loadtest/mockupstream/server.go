// Package mockupstream is an OpenAI- and Anthropic-compatible upstream for
// tests, demos and load tests: POST /v1/chat/completions, /v1/responses and
// /v1/messages, in JSON or SSE ("stream": true), with deterministic token
// counts, configurable latency and injected errors, and counters of what it
// served (Go methods, GET /_mock/stats, POST /_mock/reset).
//
// Token rule: input tokens = usage.EstimateInputTokens(len(body)), the very
// rule the gateway estimates with; output tokens = min(the body's max
// tokens, Options.OutputTokens). Anthropic answers (/v1/messages) also
// report Options.CacheWriteTokens and Options.CacheReadTokens as
// cache_creation_input_tokens and cache_read_input_tokens, on top of
// input_tokens as Anthropic does (the call's whole input is their sum). So a
// test knows the exact usage of every call it makes.
package mockupstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure a Server; the zero value is usable.
type Options struct {
	// OutputTokens is the output token count of every answer, capped by the
	// request's max tokens (default 16).
	OutputTokens int64
	// CacheWriteTokens and CacheReadTokens are the prompt-cache write and
	// read token counts of every Anthropic answer (default 0).
	CacheWriteTokens int64
	CacheReadTokens  int64
	// Chunks is the number of content chunks of a stream (default 4).
	Chunks int
	// Latency is waited before answering; ChunkDelay between stream chunks.
	Latency    time.Duration
	ChunkDelay time.Duration
	// ErrorEvery makes every Nth request (counted over all endpoints)
	// answer 500 without usage; 0 never.
	ErrorEvery int64
	// RequireIncludeUsage makes OpenAI chat streams carry the usage chunk
	// only when the request sets stream_options.include_usage, as OpenAI
	// does; by default the usage chunk is always sent.
	RequireIncludeUsage bool
	// MaxBodySize bounds request bodies (default 16 MiB).
	MaxBodySize int
}

func (o *Options) validate() error {
	if o.OutputTokens < 0 || o.CacheWriteTokens < 0 || o.CacheReadTokens < 0 || o.Chunks < 0 || o.Latency < 0 || o.ChunkDelay < 0 || o.ErrorEvery < 0 || o.MaxBodySize < 0 {
		return errors.New("mock upstream options must not be negative")
	}
	if o.OutputTokens == 0 {
		o.OutputTokens = 16
	}
	if o.Chunks == 0 {
		o.Chunks = 4
	}
	if o.MaxBodySize == 0 {
		o.MaxBodySize = 16 << 20
	}
	return nil
}

// Server is a running or ready mock upstream.
type Server struct {
	opts  Options
	srv   *fasthttp.Server
	seq   atomic.Int64
	stats counters

	lastMu  sync.Mutex
	lastHdr []byte
}

// New returns a Server; it panics on negative options (a test bug).
func New(o Options) *Server {
	if err := o.validate(); err != nil {
		panic(fmt.Sprintf("BUG: %s", err))
	}
	s := &Server{opts: o}
	s.srv = &fasthttp.Server{
		Handler:              s.handle,
		Name:                 "caracal-mock",
		MaxRequestBodySize:   o.MaxBodySize,
		NoDefaultDate:        true,
		NoDefaultContentType: true,
		ReadTimeout:          time.Minute,
		IdleTimeout:          time.Minute,
	}
	return s
}

// Serve serves on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("cannot serve mock upstream: %w", err)
	}
	return nil
}

// Close stops the listeners and closes the connections, waiting at most 5
// seconds for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("cannot close mock upstream: %w", err)
	}
	return nil
}

// Options returns the effective options (defaults filled in).
func (s *Server) Options() Options { return s.opts }

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case path == "/_mock/stats" && ctx.IsGet():
		s.serveStats(ctx)
		return
	case path == "/_mock/reset" && ctx.IsPost():
		s.ResetStats()
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	s.record(ctx)
	ep, ok := endpointOf(path)
	if !ok || !ctx.IsPost() {
		s.stats.notFound.Add(1)
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	n := s.seq.Add(1)
	if s.opts.Latency > 0 {
		time.Sleep(s.opts.Latency)
	}
	if s.opts.ErrorEvery > 0 && n%s.opts.ErrorEvery == 0 {
		s.stats.endpoint(ep).serverErrors.Add(1)
		writeError(ctx, fasthttp.StatusInternalServerError, "server_error", "injected failure")
		return
	}
	s.answer(ctx, ep, n)
}
