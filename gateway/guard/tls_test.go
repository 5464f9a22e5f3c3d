package guard

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestGuardOverTLS: the guard wraps the TLS listener, sees the decrypted requests and
// fasthttp still knows the connection is TLS.
func TestGuardOverTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	ts.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString("tls=" + strconv.FormatBool(ctx.IsTLS()))
	}, Logger: quietLogger{}}
	ServerLimits(testLimits, s)
	go s.Serve(Listener(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}), testLimits)) //nolint:errcheck
	t.Cleanup(func() { _ = s.Shutdown() })

	cases := []struct {
		raw    string
		status int
		body   string
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, "tls=true"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, ""},
	}
	for _, c := range cases {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, c.raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != c.status || (c.body != "" && string(b) != c.body) {
			t.Errorf("%q: got %d %q", c.raw, resp.StatusCode, b)
		}
	}
}
