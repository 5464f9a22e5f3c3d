package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"

	"github.com/valyala/fasthttp"
)

var (
	// ErrTimeout: the upstream did not answer, or stalled, within ReadTimeout (the
	// caller answers 504).
	ErrTimeout = errors.New("upstream timeout")
	// ErrUpstream: the upstream could not be reached or broke the exchange (502).
	ErrUpstream = errors.New("upstream error")
	// ErrResponseTooLarge: the response body exceeds MaxResponseBodySize (502 when
	// known from Content-Length, else the stream is cut).
	ErrResponseTooLarge = errors.New("upstream response too large")
	// ErrClientGone: writing to the client failed (it disconnected).
	ErrClientGone = errors.New("client connection lost")
)

// Done is called exactly once per Forward with the status sent to the client, the body
// bytes streamed and the outcome (nil, or an error wrapping one of the Err* values).
type Done func(status int, bytes int64, err error)

// Forward sends ctx.Request to a member of up and streams the response to the client.
// tap (may be nil) sees every body chunk before it is written; the slice is valid only
// during the call. done (may be nil) is called exactly once: synchronously when the
// exchange fails before the response head (after WriteError has answered), else when
// fasthttp has finished writing the body — then on the connection's goroutine after
// Forward returned, so done must not touch ctx.
//
// A response with a small known Content-Length is read whole and its upstream
// connection pooled before the client is answered (no allocation); other bodies are
// streamed, chunked to the client with a flush after every read from the upstream, so
// text/event-stream reaches the client event by event.
func Forward(ctx *fasthttp.RequestCtx, up *Upstream, tap func(chunk []byte), done Done) {
	t := up.pick()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	s := acquireStream()
	up.prepare(ctx, req, t)
	req.SetUserValue(exchangeKey{}, &s.exchange)
	err := t.hc.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		s.free()
		up.fail(ctx, resp, classify(err), done)
		return
	}
	cl := resp.Header.ContentLength()
	if max := up.opts.MaxResponseBodySize; max > 0 && int64(cl) > max {
		if s.stream {
			_ = resp.CloseBodyStream()
			s.release(true)
		}
		s.free()
		up.fail(ctx, resp, ErrResponseTooLarge, done)
		return
	}
	status := resp.StatusCode()
	resp.Header.CopyTo(&ctx.Response.Header)
	CleanResponse(&ctx.Response.Header)
	ctx.Response.SetStatusCode(status)
	s.resp, s.tap, s.done, s.status, s.max = resp, tap, done, status, up.opts.MaxResponseBodySize
	size := cl
	if s.stream {
		s.body = resp.BodyStream()
		if size < 0 {
			size = -1 // chunked or until close: fasthttp writes and flushes each read at once
		}
	} else {
		s.buf = resp.Body()
		if !ctx.IsHead() || size < 0 {
			size = len(s.buf)
		}
	}
	ctx.Response.SetBodyStream(s, size)
}

func (up *Upstream) fail(ctx *fasthttp.RequestCtx, resp *fasthttp.Response, err error, done Done) {
	_ = resp.CloseBodyStream()
	fasthttp.ReleaseResponse(resp)
	status := fasthttp.StatusBadGateway
	if errors.Is(err, ErrTimeout) {
		status = fasthttp.StatusGatewayTimeout
	}
	up.opts.WriteError(ctx, status, err)
	if done != nil {
		done(status, 0, err)
	}
}

func classify(err error) error {
	if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, ErrUpstream) ||
		errors.Is(err, ErrResponseTooLarge) || errors.Is(err, ErrClientGone) {
		return err
	}
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, fasthttp.ErrDialTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return ErrTimeout
	}
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		return ErrResponseTooLarge
	}
	return errUpstream{err}
}

// errUpstream wraps a transport error so that errors.Is(err, ErrUpstream) holds while
// the cause stays visible.
type errUpstream struct{ cause error }

func (e errUpstream) Error() string        { return "upstream error: " + e.cause.Error() }
func (e errUpstream) Unwrap() []error      { return []error{ErrUpstream, e.cause} }
func (e errUpstream) Is(target error) bool { return target == ErrUpstream }

// stream is the body reader handed to fasthttp: it enforces the size limit, feeds the
// tap and reports the outcome once fasthttp closes it. It reads either a buffered body
// (buf) or the upstream connection (body, with exchange.release to free it).
type stream struct {
	exchange
	resp   *fasthttp.Response
	body   io.Reader
	buf    []byte
	tap    func([]byte)
	done   Done
	status int
	max    int64
	n      int64
	eof    bool
	err    error
}

var streamPool sync.Pool

func acquireStream() *stream {
	if s, ok := streamPool.Get().(*stream); ok {
		return s
	}
	return &stream{}
}

func (s *stream) free() {
	*s = stream{}
	streamPool.Put(s)
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if !s.stream {
		return s.readBuffered(p)
	}
	if s.body == nil {
		s.eof = true
		return 0, io.EOF
	}
	n, err := s.body.Read(p)
	if n > 0 {
		if s.max > 0 && s.n+int64(n) > s.max {
			// Send what fits, then cut the stream on the next Read.
			n = int(s.max - s.n)
			s.err = ErrResponseTooLarge
			err = nil
		}
		s.n += int64(n)
		if s.tap != nil {
			s.tap(p[:n])
		}
	}
	if err == io.EOF {
		s.eof = true
	} else if err != nil {
		s.err = classify(err)
		return n, s.err
	}
	return n, err
}

func (s *stream) readBuffered(p []byte) (int, error) {
	if int(s.n) == len(s.buf) {
		s.eof = true
		return 0, io.EOF
	}
	n := copy(p, s.buf[s.n:])
	if s.tap != nil {
		s.tap(p[:n])
	}
	s.n += int64(n)
	return n, nil
}

// CloseWithError is called by fasthttp once the body has been written (wErr nil) or
// writing it failed.
func (s *stream) CloseWithError(wErr error) error {
	err := s.err
	if err == nil && wErr != nil {
		err = errClientGone{wErr}
	}
	if s.stream {
		_ = s.resp.CloseBodyStream()
		s.release(err != nil || !s.eof)
	}
	fasthttp.ReleaseResponse(s.resp)
	done, status, n := s.done, s.status, s.n
	s.free()
	if done != nil {
		done(status, n, err)
	}
	return nil
}

type errClientGone struct{ cause error }

func (e errClientGone) Error() string        { return "client connection lost: " + e.cause.Error() }
func (e errClientGone) Unwrap() []error      { return []error{ErrClientGone, e.cause} }
func (e errClientGone) Is(target error) bool { return target == ErrClientGone }
