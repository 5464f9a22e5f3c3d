package mockupstream

import (
	"bufio"
	"bytes"
	"net/http"

	"github.com/valyala/fasthttp"
)

// record keeps the raw header block of the last request, reusing one
// buffer, so that recording costs no allocation per request.
func (s *Server) record(ctx *fasthttp.RequestCtx) {
	raw := ctx.Request.Header.Header()
	s.lastMu.Lock()
	s.lastHdr = append(s.lastHdr[:0], raw...)
	s.lastMu.Unlock()
}

// LastHeaders returns the headers of the last request received (any path
// but /_mock/...), e.g. to check that a gateway injected the upstream credential and
// stripped the agent's. It is nil before the first request.
func (s *Server) LastHeaders() http.Header {
	s.lastMu.Lock()
	raw := append([]byte(nil), s.lastHdr...)
	s.lastMu.Unlock()
	if len(raw) == 0 {
		return nil
	}
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
		return nil
	}
	out := make(http.Header)
	for k, v := range h.All() {
		out.Add(string(k), string(v))
	}
	return out
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"error":{"type":"` + code + `","code":"` + code + `","message":"` + msg + `"}}`)
}
