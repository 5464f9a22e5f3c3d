package proxy

import (
	"bufio"
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// exchangeKey names the *exchange attached to an upstream request.
type exchangeKey struct{}

// exchange carries what the transport decided back to Forward.
type exchange struct {
	// stream is true when the body is left on the connection for streaming;
	// release must then be called once the body is done (discard closes the
	// connection instead of pooling it).
	stream  bool
	release func(discard bool)
}

// transport is fasthttp's default transport with one change: a response whose
// Content-Length is known and at most bufferLimit (or that has no body) is read whole
// and the connection pooled at once, without allocating; any other body (chunked,
// text/event-stream, large) is left on the connection and streamed.
type transport struct {
	bufferLimit int
}

var errTooManyInterim = errors.New("too many interim responses")

func (t *transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	ex, _ := req.UserValue(exchangeKey{}).(*exchange)
	cc, err := hc.AcquireConn(0, false)
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	if hc.WriteTimeout > 0 {
		if err = conn.SetWriteDeadline(time.Now().Add(hc.WriteTimeout)); err != nil {
			hc.CloseConn(cc)
			return true, err
		}
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		return true, err
	}
	br := hc.AcquireReader(conn)
	skip, err := readHead(br, req, resp)
	if err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return err != fasthttp.ErrBodyTooLarge, err
	}
	cl := resp.Header.ContentLength()
	if skip || (cl >= 0 && cl <= t.bufferLimit) || ex == nil {
		if !skip {
			resp.StreamBody = false
			err = resp.ReadBody(br, t.bufferLimit)
		}
		hc.ReleaseReader(br)
		if err != nil || resp.ConnectionClose() {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return false, err
	}
	resp.StreamBody = true
	if err = resp.ReadBody(br, 0); err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return false, err
	}
	ex.stream = true
	ex.release = func(discard bool) {
		hc.ReleaseReader(br)
		if discard || resp.ConnectionClose() {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
	}
	return false, nil
}

// readHead reads the response head, skipping interim 1xx responses; skip reports a
// response that has no body.
func readHead(br *bufio.Reader, req *fasthttp.Request, resp *fasthttp.Response) (skip bool, err error) {
	for i := 0; ; i++ {
		if err := resp.Header.Read(br); err != nil {
			return false, err
		}
		s := resp.StatusCode()
		if s < 100 || s > 199 || s == fasthttp.StatusSwitchingProtocols {
			break
		}
		if i >= 10 {
			return false, errTooManyInterim
		}
	}
	s := resp.StatusCode()
	skip = req.Header.IsHead() || s == fasthttp.StatusNoContent || s == fasthttp.StatusNotModified ||
		(s >= 100 && s < 200)
	return skip, nil
}
