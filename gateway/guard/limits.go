package guard

import (
	"errors"
	"net"

	"github.com/valyala/fasthttp"
)

// Limits bound one request head and body.
type Limits struct {
	// MaxHeadSize is the largest request head (request line, headers, final CRLF);
	// default 16 KiB. Larger → 431.
	MaxHeadSize int
	// MaxHeaders is the most header lines per request; default 100. More → 431.
	MaxHeaders int
	// MaxBodySize is the largest request body; default 10 MiB. Larger → 413 (by
	// fasthttp, configured through ServerLimits).
	MaxBodySize int
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeadSize <= 0 {
		l.MaxHeadSize = 16 << 10
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 100
	}
	if l.MaxBodySize <= 0 {
		l.MaxBodySize = 10 << 20
	}
	return l
}

// ServerLimits sets the fasthttp.Server fields that go with the guard: the body limit
// (413), a read buffer that holds any head the guard lets through, the error handler
// that maps fasthttp's own rejections to 413 / 431 / 400 with Connection: close, and
// strict parsing options. The caller still sets Handler, timeouts and concurrency.
func ServerLimits(l Limits, s *fasthttp.Server) {
	l = l.withDefaults()
	s.MaxRequestBodySize = l.MaxBodySize
	if s.ReadBufferSize < l.MaxHeadSize+1024 {
		s.ReadBufferSize = l.MaxHeadSize + 1024
	}
	s.ErrorHandler = ErrorHandler
	s.DisablePreParseMultipartForm = true
	s.StreamRequestBody = false
}

// ErrorHandler answers requests fasthttp could not read: 413 for a body over
// MaxRequestBodySize, 431 for a head over the read buffer, 408 on a read timeout,
// else 400. Connection: close is set by fasthttp on every error response.
func ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, bodyTooLarge)
	case errors.As(err, &small):
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, headTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		writeError(ctx, fasthttp.StatusRequestTimeout, timeoutBody)
	default:
		writeError(ctx, fasthttp.StatusBadRequest, badRequest)
	}
}

func writeError(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	ctx.SetConnectionClose()
}

var (
	badRequest   = []byte(`{"error":{"code":"bad_request","message":"malformed or ambiguous HTTP request","request_id":""}}`)
	headTooLarge = []byte(`{"error":{"code":"header_too_large","message":"request header fields too large","request_id":""}}`)
	bodyTooLarge = []byte(`{"error":{"code":"body_too_large","message":"request body too large","request_id":""}}`)
	timeoutBody  = []byte(`{"error":{"code":"request_timeout","message":"request not received in time","request_id":""}}`)
)
