package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serve runs a fasthttp server on a loopback port until the test ends.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h, CloseOnShutdown: true}
	go s.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = s.Shutdown() })
	return ln.Addr().String()
}

type outcome struct {
	status int
	bytes  int64
	err    error
}

// frontend serves Forward to up and reports each done call and the tapped bytes.
func frontend(t *testing.T, up *Upstream) (string, chan outcome, *atomic.Int64) {
	done := make(chan outcome, 16)
	var tapped atomic.Int64
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		Forward(ctx, up, func(b []byte) { tapped.Add(int64(len(b))) }, func(status int, n int64, err error) {
			done <- outcome{status, n, err}
		})
	})
	return addr, done, &tapped
}

func waitDone(t *testing.T, ch chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("done was not called")
		return outcome{}
	}
}

func newUp(t *testing.T, upAddr string, o Options) *Upstream {
	t.Helper()
	up, err := NewUpstream([]string{"http://" + upAddr + "/v1"}, o)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func TestForwardHeaders(t *testing.T) {
	seen := make(chan string, 4)
	upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
		seen <- string(ctx.Request.Header.Header()) + "\n" + string(ctx.Request.Body())
		ctx.Response.Header.Set("X-Up", "1")
		ctx.Response.Header.Set("Keep-Alive", "timeout=3")
		ctx.Response.Header.Set("X-Keep", "1")
		ctx.SetBodyString("ok")
	})
	cases := []struct {
		name    string
		trusted []string
		xff     string
	}{
		{"untrusted", []string{"10.0.0.0/8"}, "X-Forwarded-For: 127.0.0.1\r\n"},
		{"trusted", []string{"127.0.0.1/32"}, "X-Forwarded-For: 1.2.3.4, 127.0.0.1\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := NewHygiene(c.trusted)
			if err != nil {
				t.Fatal(err)
			}
			up := newUp(t, upAddr, Options{StripPrefix: "/openai", Hygiene: h,
				CredentialHeader: []byte("Authorization"), CredentialValue: []byte("Bearer up-key")})
			addr, done, _ := frontend(t, up)
			req, _ := http.NewRequest("POST", "http://"+addr+"/openai/chat/completions?stream=false", strings.NewReader(`{"a":1}`))
			req.Header.Set("Connection", "X-Secret")
			req.Header.Set("X-Secret", "s")
			req.Header.Set("Authorization", "Bearer agent")
			req.Header.Set("X-API-Key", "agent")
			req.Header.Set("X-Caracal-Nonce", "n")
			req.Header.Set("X-Forwarded-For", "1.2.3.4")
			req.Header.Set("X-Agent-Thing", "kept")
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if resp.Header.Get("X-Up") != "1" || resp.Header.Get("X-Keep") != "1" || resp.Header.Get("Keep-Alive") != "" {
				t.Errorf("response headers: %v", resp.Header)
			}
			got := <-seen
			for _, bad := range []string{"X-Secret", "agent", "X-Caracal", "X-Api-Key"} {
				if strings.Contains(got, bad) {
					t.Errorf("upstream saw %q:\n%s", bad, got)
				}
			}
			for _, good := range []string{"POST /v1/chat/completions?stream=false HTTP/1.1\r\n", "Authorization: Bearer up-key\r\n",
				c.xff, "X-Forwarded-Proto: http\r\n", "Host: " + upAddr + "\r\n", "X-Agent-Thing: kept\r\n", "\n{\"a\":1}"} {
				if !strings.Contains(got, good) {
					t.Errorf("upstream did not see %q:\n%s", good, got)
				}
			}
			if o := waitDone(t, done); o.status != 200 || o.bytes != 2 || o.err != nil {
				t.Errorf("done = %+v", o)
			}
		})
	}
}

func TestForwardLargeBody(t *testing.T) {
	const size = 8 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	want := sha256.Sum256(payload)
	cases := []struct {
		name  string
		known bool
	}{{"content-length", true}, {"chunked", false}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
				n := -1
				if c.known {
					n = size
				}
				ctx.SetBodyStream(bytes.NewReader(payload), n)
			})
			addr, done, tapped := frontend(t, newUp(t, upAddr, Options{MaxResponseBodySize: size}))
			resp, err := httpClient.Get("http://" + addr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("got %d bytes, err %v, hash match %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
			}
			if o := waitDone(t, done); o.status != 200 || o.bytes != size || o.err != nil {
				t.Errorf("done = %+v", o)
			}
			if tapped.Load() != size {
				t.Errorf("tap saw %d bytes", tapped.Load())
			}
		})
	}
}

func TestForwardSSEFlushesEachEvent(t *testing.T) {
	next := make(chan struct{})
	upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			w.WriteString("data: one\n\n")
			w.Flush()
			select {
			case <-next:
			case <-time.After(10 * time.Second):
				return
			}
			w.WriteString("data: two\n\n")
			w.WriteString("data: [DONE]\n\n")
			w.Flush()
		})
	})
	addr, done, tapped := frontend(t, newUp(t, upAddr, Options{}))
	resp, err := httpClient.Get("http://" + addr + "/v1/chat")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	// The upstream holds the second event until the client has the first: a buffering
	// proxy would leave this read blocked until the client timeout fails the test.
	first := readEvent(t, br)
	if first != "data: one\n\n" {
		t.Fatalf("first event %q", first)
	}
	close(next)
	if ev := readEvent(t, br); ev != "data: two\n\n" {
		t.Fatalf("second event %q", ev)
	}
	if ev := readEvent(t, br); ev != "data: [DONE]\n\n" {
		t.Fatalf("third event %q", ev)
	}
	const total = int64(len("data: one\n\ndata: two\n\ndata: [DONE]\n\n"))
	if o := waitDone(t, done); o.status != 200 || o.bytes != total || o.err != nil {
		t.Errorf("done = %+v", o)
	}
	if tapped.Load() != total {
		t.Errorf("tap saw %d bytes", tapped.Load())
	}
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var ev strings.Builder
	for i := 0; i < 100; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("cannot read event: %s (so far %q)", err, ev.String())
		}
		ev.WriteString(line)
		if line == "\n" {
			return ev.String()
		}
	}
	t.Fatal("event too long")
	return ""
}

func TestForwardClientDisconnect(t *testing.T) {
	next := make(chan struct{})
	upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			w.WriteString("data: one\n\n")
			w.Flush()
			<-next
			// Far more than socket buffers hold, so writing to the
			// departed client must fail (a few KB may still be accepted
			// by the kernel after the close).
			for i := 0; i < 200000; i++ {
				if _, err := w.WriteString("data: more\n\n"); err != nil {
					return
				}
				if err := w.Flush(); err != nil {
					return
				}
			}
		})
	})
	addr, done, _ := frontend(t, newUp(t, upAddr, Options{}))
	resp, err := httpClient.Get("http://" + addr + "/v1/chat")
	if err != nil {
		t.Fatal(err)
	}
	readEvent(t, bufio.NewReader(resp.Body))
	resp.Body.Close()
	close(next)
	if o := waitDone(t, done); !errors.Is(o.err, ErrClientGone) {
		t.Errorf("done = %+v, want ErrClientGone", o)
	}
}

func TestForwardResponseLimit(t *testing.T) {
	body := strings.Repeat("x", 5000)
	cases := []struct {
		name       string
		known      bool
		wantStatus int
	}{{"content-length", true, 502}, {"chunked", false, 200}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
				if c.known {
					ctx.SetBodyString(body)
					return
				}
				ctx.SetBodyStream(strings.NewReader(body), -1)
			})
			addr, done, _ := frontend(t, newUp(t, upAddr, Options{MaxResponseBodySize: 1000}))
			resp, err := httpClient.Get("http://" + addr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			got, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, c.wantStatus)
			}
			if len(got) >= len(body) || (!c.known && rerr == nil) {
				t.Errorf("client got %d bytes, read error %v: the stream was not cut", len(got), rerr)
			}
			if o := waitDone(t, done); !errors.Is(o.err, ErrResponseTooLarge) || o.status != c.wantStatus {
				t.Errorf("done = %+v", o)
			}
		})
	}
}

func TestForwardUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Shutdown
	addr, done, _ := frontend(t, newUp(t, upAddr, Options{ReadTimeout: 200 * time.Millisecond}))
	resp, err := httpClient.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 504 {
		t.Errorf("status %d, want 504", resp.StatusCode)
	}
	if o := waitDone(t, done); !errors.Is(o.err, ErrTimeout) || o.status != 504 {
		t.Errorf("done = %+v", o)
	}
}

func TestForwardUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	addr, done, _ := frontend(t, newUp(t, deadAddr, Options{}))
	resp, err := httpClient.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if o := waitDone(t, done); !errors.Is(o.err, ErrUpstream) || o.status != 502 {
		t.Errorf("done = %+v", o)
	}
}

func TestAppendStripped(t *testing.T) {
	cases := []struct{ base, path, prefix, want string }{
		{"/v1", "/openai/chat", "/openai", "/v1/chat"},
		{"", "/openai", "/openai", "/"},
		{"/v1", "/openaix/chat", "/openai", "/v1/openaix/chat"},
		{"", "/other", "/openai", "/other"},
		{"/v1", "/x", "", "/v1/x"},
	}
	for _, c := range cases {
		if got := string(appendStripped([]byte(c.base), []byte(c.path), c.prefix)); got != c.want {
			t.Errorf("%+v: got %q", c, got)
		}
	}
}

func TestNewUpstreamRejectsBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x", "http://", "http://u:p@x", "::"} {
		if _, err := NewUpstream([]string{u}, Options{}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	if _, err := NewUpstream(nil, Options{}); err == nil {
		t.Error("empty pool accepted")
	}
}
