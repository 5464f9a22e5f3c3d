package guard

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Listener wraps ln so that each accepted connection is guarded. Wrap the TLS
// listener (guard outside TLS), so the guard sees the decrypted bytes; fasthttp still
// sees a TLS connection (IsTLS, TLSConnectionState).
func Listener(ln net.Listener, l Limits) net.Listener {
	return &listener{Listener: ln, lim: l.withDefaults()}
}

type listener struct {
	net.Listener
	lim Limits
}

func (ln *listener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Conn(c, ln.lim), nil
}

// tlsConner is what fasthttp looks for to tell a TLS connection.
type tlsConner interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// Conn guards one connection.
func Conn(c net.Conn, l Limits) net.Conn {
	gc := &conn{Conn: c, lim: l.withDefaults()}
	if tc, ok := c.(tlsConner); ok {
		return &tlsConn{conn: gc, tc: tc}
	}
	return gc
}

type tlsConn struct {
	*conn
	tc tlsConner
}

func (c *tlsConn) Handshake() error                     { return c.tc.Handshake() }
func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// Parsing states between request heads.
const (
	stHead      = iota // waiting for a complete head
	stBody             // remain bytes of a Content-Length body
	stChunkSize        // a chunk-size line
	stChunkData        // remain bytes of chunk data
	stChunkEnd         // the CRLF after chunk data
	stTrailer          // trailer lines up to the empty line
)

const (
	readChunk    = 8 << 10
	maxChunkLine = 4 << 10
)

var bufPool sync.Pool

type conn struct {
	net.Conn
	lim    Limits
	buf    []byte // buf[r:ok] checked, not yet handed out; buf[ok:w] not yet checked
	r, ok  int
	w      int
	state  int
	remain int64
	bad    int // status to answer with before closing; 0 while the stream is clean
	err    error
}

func (c *conn) Read(p []byte) (int, error) {
	if c.buf == nil {
		if c.err != nil {
			return 0, c.err
		}
		c.acquire()
	}
	for i := 0; ; i++ {
		if c.r < c.ok {
			n := copy(p, c.buf[c.r:c.ok])
			c.r += n
			return n, nil
		}
		if c.bad != 0 {
			c.reject()
			c.release()
			return 0, io.EOF
		}
		if c.err != nil {
			c.release()
			return 0, c.err
		}
		if c.advance() {
			continue
		}
		if c.bad != 0 {
			continue
		}
		c.fill()
		if i > 1<<20 {
			panic("BUG: guard read loop does not progress")
		}
	}
}

func (c *conn) acquire() {
	size := c.lim.MaxHeadSize + readChunk
	if b, ok := bufPool.Get().(*[]byte); ok && cap(*b) >= size {
		c.buf = (*b)[:size]
		return
	}
	c.buf = make([]byte, size)
}

// fill compacts the buffer and reads more from the connection.
func (c *conn) fill() {
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.ok -= c.r
		c.r = 0
	}
	if c.w == len(c.buf) {
		// Only a head or a chunk line can fill the buffer unchecked.
		c.bad = 431
		if c.state != stHead {
			c.bad = 400
		}
		return
	}
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	if err != nil && n == 0 {
		c.err = err
	}
}

// advance checks as much of buf[ok:w] as it can; it reports whether ok moved.
func (c *conn) advance() bool {
	start := c.ok
	for c.bad == 0 && c.ok < c.w {
		if !c.step() {
			break
		}
	}
	return c.ok > start
}

// step checks the next element; false means more bytes are needed (or c.bad is set).
func (c *conn) step() bool {
	pending := c.buf[c.ok:c.w]
	switch c.state {
	case stHead:
		return c.stepHead(pending)
	case stBody, stChunkData:
		n := int64(len(pending))
		if n > c.remain {
			n = c.remain
		}
		c.ok += int(n)
		c.remain -= n
		if c.remain == 0 {
			if c.state == stBody {
				c.state = stHead
			} else {
				c.state = stChunkEnd
			}
		}
		return true
	case stChunkEnd:
		if len(pending) < 2 {
			return false
		}
		if pending[0] != '\r' || pending[1] != '\n' {
			c.bad = 400
			return false
		}
		c.ok += 2
		c.state = stChunkSize
		return true
	case stChunkSize:
		return c.stepChunkSize(pending)
	case stTrailer:
		return c.stepTrailer(pending)
	}
	panic("BUG: unknown guard state " + strconv.Itoa(c.state))
}

func (c *conn) stepHead(pending []byte) bool {
	// Empty lines before a request line are tolerated (RFC 9112 2.2).
	if len(pending) >= 2 && pending[0] == '\r' && pending[1] == '\n' {
		c.ok += 2
		return true
	}
	end := bytes.Index(pending, crlfcrlf)
	if end < 0 {
		if len(pending) > c.lim.MaxHeadSize {
			c.bad = 431
		} else if bytes.IndexByte(pending, '\n') >= 0 && hasBareLF(pending) {
			c.bad = 400 // fail early instead of waiting for a CRLFCRLF that may never come
		}
		return false
	}
	head := pending[:end+4]
	if len(head) > c.lim.MaxHeadSize {
		c.bad = 431
		return false
	}
	v := checkHead(head, c.lim.MaxHeaders)
	if v.status != 0 {
		c.bad = v.status
		return false
	}
	c.ok += len(head)
	switch {
	case v.framing == framingChunked:
		c.state = stChunkSize
	case v.framing == framingLength && v.length > 0:
		c.state, c.remain = stBody, v.length
	}
	return true
}

func hasBareLF(b []byte) bool {
	for i, ch := range b {
		if ch == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

func (c *conn) stepChunkSize(pending []byte) bool {
	line, _, ok := cutLine(pending)
	if !ok {
		if bytes.IndexByte(pending, '\n') >= 0 || len(pending) > maxChunkLine {
			c.bad = 400
		}
		return false
	}
	size, ok := parseChunkSize(line)
	if !ok {
		c.bad = 400
		return false
	}
	c.ok += len(line) + 2
	if size == 0 {
		c.state = stTrailer
	} else {
		c.state, c.remain = stChunkData, size
	}
	return true
}

func (c *conn) stepTrailer(pending []byte) bool {
	line, _, ok := cutLine(pending)
	if !ok {
		if bytes.IndexByte(pending, '\n') >= 0 || len(pending) > c.lim.MaxHeadSize {
			c.bad = 400
		}
		return false
	}
	if len(line) > 0 {
		if _, _, ok := splitHeader(line); !ok {
			c.bad = 400
			return false
		}
	} else {
		c.state = stHead
	}
	c.ok += len(line) + 2
	return true
}

// parseChunkSize reads "HEX[;ext]": at most 15 hex digits, extensions ignored but
// free of controls (cutLine already refused CR and LF).
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		for _, ch := range line[i:] {
			if ch < ' ' && ch != '\t' || ch == 0x7f {
				return 0, false
			}
		}
		line = line[:i]
	}
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, ch := range line {
		var d byte
		switch {
		case '0' <= ch && ch <= '9':
			d = ch - '0'
		case 'a' <= ch && ch <= 'f':
			d = ch - 'a' + 10
		case 'A' <= ch && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

var crlfcrlf = []byte("\r\n\r\n")

// reject answers c.bad on the raw connection and closes it. fasthttp has already
// flushed the responses to the requests before the bad head: it flushes whenever its
// read buffer is empty, which is when it called Read to get here.
func (c *conn) reject() {
	if c.err != nil {
		return
	}
	c.err = errRejected
	var resp []byte
	if c.bad == 431 {
		resp = resp431
	} else {
		resp = resp400
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Conn.Write(resp)
	_ = c.Conn.Close()
}

var errRejected = errors.New("request rejected by the guard")

// release returns the buffer to the pool; only the reading goroutine owns it, so a
// Close from another goroutine never races with it.
func (c *conn) release() {
	if c.buf != nil {
		b := c.buf[:cap(c.buf)]
		c.buf = nil
		bufPool.Put(&b)
	}
}

func response(status string, body []byte) []byte {
	return []byte("HTTP/1.1 " + status + "\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
}

var (
	resp400 = response("400 Bad Request", badRequest)
	resp431 = response("431 Request Header Fields Too Large", headTooLarge)
)
