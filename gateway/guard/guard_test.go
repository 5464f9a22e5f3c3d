package guard

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

var testLimits = Limits{MaxHeadSize: 2048, MaxHeaders: 20, MaxBodySize: 1000}

// serve runs an echoing fasthttp server on loopback; guarded selects the guard.
func serve(t *testing.T, guarded bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetBodyString(string(ctx.Method()) + " " + string(ctx.Path()) + " " + strconv.Itoa(len(ctx.Request.Body())) + " " + string(ctx.Request.Body()))
		},
		CloseOnShutdown: true,
		Logger:          quietLogger{},
	}
	ServerLimits(testLimits, s)
	var l net.Listener = ln
	if guarded {
		l = Listener(ln, testLimits)
	}
	go s.Serve(l) //nolint:errcheck
	t.Cleanup(func() { _ = s.Shutdown() })
	return ln.Addr().String()
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// exchange writes raw and reads every response until the server closes or goes quiet.
func exchange(t *testing.T, addr, raw string, want int) ([]*http.Response, []string, bool) {
	t.Helper()
	return exchangeWait(t, addr, raw, want, 5*time.Second)
}

func exchangeWait(t *testing.T, addr, raw string, want int, wait time.Duration) ([]*http.Response, []string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for i := 0; i < 10; i++ {
		if len(resps) == want {
			// Expect nothing more: a closed connection reads EOF, a kept one times out.
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			ne, isNet := err.(net.Error)
			return resps, bodies, !(isNet && ne.Timeout())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
	t.Fatal("too many responses")
	return nil, nil, false
}

const h = "Host: x\r\n"

var badRequests = []struct {
	name   string
	raw    string
	status int
}{
	{"CL and TE", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE and CL", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
	{"duplicate CL same", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400},
	{"duplicate CL differing", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400},
	{"CL list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1, 1\r\n\r\nx", 400},
	{"CL non-numeric", "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x1\r\n\r\nx", 400},
	{"CL signed", "POST / HTTP/1.1\r\n" + h + "Content-Length: +1\r\n\r\nx", 400},
	{"CL trailing space", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1 \r\n\r\nx", 400},
	{"CL empty", "POST / HTTP/1.1\r\n" + h + "Content-Length: \r\n\r\n", 400},
	{"duplicate TE", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE trailing space", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked \r\n\r\n0\r\n\r\n", 400},
	{"TE xchunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE list", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: Chunked, identity\r\n\r\n0\r\n\r\n", 400},
	{"TE gzip chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE identity", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: identity\r\n\r\n", 400},
	{"TE tab in name", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE vertical tab", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE obs-fold", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
	{"obs-fold", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n\tcontinued\r\n\r\n", 400},
	{"bare LF line", "GET / HTTP/1.1\n" + h + "\r\n", 400},
	{"bare LF head end", "GET / HTTP/1.1\r\n" + h + "X-A: 1\n\n", 400},
	{"bare CR", "GET / HTTP/1.1\r\n" + h + "X-A: 1\rX-B: 2\r\n\r\n", 400},
	{"space in name", "GET / HTTP/1.1\r\n" + h + "X A: 1\r\n\r\n", 400},
	{"space before colon", "GET / HTTP/1.1\r\n" + h + "Content-Length : 0\r\n\r\n", 400},
	{"underscore in name", "GET / HTTP/1.1\r\n" + h + "X_Api_Key: 1\r\n\r\n", 400},
	{"NUL in name", "GET / HTTP/1.1\r\n" + h + "X-\x00A: 1\r\n\r\n", 400},
	{"control in value", "GET / HTTP/1.1\r\n" + h + "X-A: 1\x01\r\n\r\n", 400},
	{"DEL in value", "GET / HTTP/1.1\r\n" + h + "X-A: \x7f\r\n\r\n", 400},
	{"empty name", "GET / HTTP/1.1\r\n" + h + ": v\r\n\r\n", 400},
	{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"bad request line", "GET  / HTTP/1.1\r\n" + h + "\r\n", 400},
	{"bad version", "GET / HTTP/2.0\r\n" + h + "\r\n", 400},
	{"bad chunk size", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n", 400},
	{"chunk size too long", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("0", 16) + "1\r\nx\r\n0\r\n\r\n", 400},
	{"chunk without CRLF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n1\r\nxy0\r\n\r\n", 400},
	{"chunk size bare LF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n", 400},
	{"too many headers", "GET / HTTP/1.1\r\n" + h + strings.Repeat("X-A: 1\r\n", 25) + "\r\n", 431},
	{"head too large", "GET / HTTP/1.1\r\n" + h + "X-A: " + strings.Repeat("a", 3000) + "\r\n\r\n", 431},
	{"smuggled second request", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\n\r\nabcdGET / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400},
}

func TestGuardRejects(t *testing.T) {
	addr := serve(t, true)
	for _, c := range badRequests {
		t.Run(c.name, func(t *testing.T) {
			resps, bodies, closed := exchange(t, addr, c.raw, 1)
			if c.name == "smuggled second request" {
				if len(resps) != 2 || resps[0].StatusCode != 200 || bodies[0] != "POST / 4 abcd" {
					t.Fatalf("want the first request answered, got %d responses %q", len(resps), bodies)
				}
				resps = resps[1:]
			}
			if len(resps) != 1 || resps[0].StatusCode != c.status {
				t.Fatalf("got %d responses %v, want one %d", len(resps), statuses(resps), c.status)
			}
			if !resps[0].Close || !closed {
				t.Errorf("connection not closed (Connection: close %v, closed %v)", resps[0].Close, closed)
			}
		})
	}
}

func statuses(rs []*http.Response) []int {
	var s []int
	for _, r := range rs {
		s = append(s, r.StatusCode)
	}
	return s
}

// TestFasthttpAloneIsLenient shows why the guard exists: fasthttp by itself answers
// some of the ambiguous requests above as if they were fine.
func TestFasthttpAloneIsLenient(t *testing.T) {
	addr := serve(t, false)
	var lenient []string
	for _, c := range badRequests {
		resps, _, _ := exchangeWait(t, addr, c.raw, 1, time.Second)
		if len(resps) > 0 && resps[0].StatusCode < 400 {
			lenient = append(lenient, c.name)
		}
	}
	t.Logf("fasthttp alone accepts: %q", lenient)
	if len(lenient) == 0 {
		t.Fatal("fasthttp alone rejects every case: the guard could be dropped")
	}
}

func TestGuardPassesGoodRequests(t *testing.T) {
	addr := serve(t, true)
	cases := []struct {
		name   string
		raw    string
		bodies []string
	}{
		{"get", "GET /a HTTP/1.1\r\n" + h + "\r\n", []string{"GET /a 0 "}},
		{"post with length", "POST /b HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhello", []string{"POST /b 5 hello"}},
		{"chunked with extension and trailer", "POST /c HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n" +
			"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n", []string{"POST /c 5 abcde"}},
		{"tab before value, obs-text", "GET /d HTTP/1.1\r\n" + h + "X-A:\tvalue \xe2\x9c\x93\r\n\r\n", []string{"GET /d 0 "}},
		{"leading empty line", "\r\nGET /e HTTP/1.1\r\n" + h + "\r\n", []string{"GET /e 0 "}},
		{"pipelined keep-alive", "POST /1 HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc" +
			"POST /2 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n" +
			"GET /3 HTTP/1.1\r\n" + h + "\r\n" +
			"POST /4 HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n",
			[]string{"POST /1 3 abc", "POST /2 4 wxyz", "GET /3 0 ", "POST /4 0 "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resps, bodies, closed := exchange(t, addr, c.raw, len(c.bodies))
			if closed {
				t.Errorf("keep-alive connection was closed")
			}
			if len(bodies) != len(c.bodies) {
				t.Fatalf("got %q (status %v), want %q", bodies, statuses(resps), c.bodies)
			}
			for i := range bodies {
				if resps[i].StatusCode != 200 || bodies[i] != c.bodies[i] {
					t.Errorf("response %d: %d %q, want %q", i, resps[i].StatusCode, bodies[i], c.bodies[i])
				}
			}
		})
	}
}

func TestGuardPassesBytesSplitAnywhere(t *testing.T) {
	addr := serve(t, true)
	raw := "POST /1 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n" +
		"POST /2 HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < len(raw); i++ { // one byte per write
		if _, err := io.WriteString(c, raw[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for _, want := range []string{"POST /1 4 wxyz", "POST /2 3 abc"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("got %d %q, want %q", resp.StatusCode, b, want)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	addr := serve(t, true)
	body := strings.Repeat("x", testLimits.MaxBodySize+1)
	cases := []string{
		"POST / HTTP/1.1\r\n" + h + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n",
	}
	for _, raw := range cases {
		resps, _, closed := exchange(t, addr, raw, 1)
		if len(resps) != 1 || resps[0].StatusCode != 413 || !closed {
			t.Errorf("got %v closed=%v, want one 413 and a closed connection", statuses(resps), closed)
		}
	}
}

func TestGuardNoAllocPerRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are counted differently under -race")
	}
	req := []byte("POST /x HTTP/1.1\r\n" + h + "Content-Length: 3\r\nX-A: b\r\n\r\nabc" +
		"POST /y HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	src := &loopConn{data: req}
	c := Conn(src, testLimits)
	p := make([]byte, 4096)
	read := func() {
		src.pos = 0
		for got := 0; got < len(req); {
			n, err := c.Read(p)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	read()
	if n := testing.AllocsPerRun(100, read); n != 0 {
		t.Fatalf("guard allocates %.1f times per pair of requests", n)
	}
}

// loopConn serves data once per reset of pos.
type loopConn struct {
	net.Conn
	data []byte
	pos  int
}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.pos == len(c.data) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.pos:])
	c.pos += n
	return n, nil
}
