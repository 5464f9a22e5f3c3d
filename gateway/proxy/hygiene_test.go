package proxy

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

const dirtyRequest = "POST /openai/v1/chat?x=1 HTTP/1.1\r\n" +
	"Host: gw.example\r\n" +
	"Connection: keep-alive, X-Secret\r\n" +
	"X-Secret: s\r\n" +
	"Keep-Alive: timeout=5\r\n" +
	"Proxy-Connection: keep-alive\r\n" +
	"Proxy-Authorization: Basic abc\r\n" +
	"Te: trailers\r\n" +
	"Upgrade: h2c\r\n" +
	"Authorization: Bearer agent-key\r\n" +
	"X-API-Key: agent-key\r\n" +
	"X-Caracal-Nonce: n1\r\n" +
	"x-caracal-timestamp: 1\r\n" +
	"X-Forwarded-For: 1.2.3.4\r\n" +
	"X-Forwarded-Host: evil\r\n" +
	"Forwarded: for=1.2.3.4\r\n" +
	"X-Real-IP: 1.2.3.4\r\n" +
	"X-Keep: yes\r\n" +
	"Content-Type: application/json\r\n" +
	"Content-Length: 2\r\n" +
	"\r\n{}"

// parseDirty parses dirtyRequest, with a Trailer header when trailer is set
// (CleanRequest then takes its path for messages with trailers).
func parseDirty(t testing.TB, req *fasthttp.Request, trailer bool) {
	t.Helper()
	raw := dirtyRequest
	if trailer {
		raw = strings.Replace(raw, "Te: trailers\r\n", "Te: trailers\r\nTrailer: X-T\r\n", 1)
	}
	if err := req.Read(bufioReader(raw)); err != nil {
		t.Fatalf("cannot parse request: %s", err)
	}
}

func TestCleanRequest(t *testing.T) {
	cases := []struct {
		name    string
		trusted []string
		peer    string
		tls     bool
		xff     string
		proto   string
		fwdHost string
		fwd     string
		realIP  string
	}{
		{"untrusted peer", []string{"10.0.0.0/8"}, "127.0.0.1", false, "127.0.0.1", "http", "", "", ""},
		{"trusted peer", []string{"127.0.0.0/8"}, "127.0.0.1", true, "1.2.3.4, 127.0.0.1", "https", "evil", "for=1.2.3.4", "1.2.3.4"},
		{"trusted single address", []string{"::1"}, "::1", false, "1.2.3.4, ::1", "http", "evil", "for=1.2.3.4", "1.2.3.4"},
		{"no trusted proxies", nil, "192.0.2.7", true, "192.0.2.7", "https", "", "", ""},
	}
	for _, trailer := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/trailer=%v", c.name, trailer), func(t *testing.T) {
				cleanRequestCase(t, c.trusted, c.peer, c.tls, trailer, map[string]string{
					"Authorization":     "Bearer upstream-key",
					"X-Forwarded-For":   c.xff,
					"X-Forwarded-Proto": c.proto,
					"X-Forwarded-Host":  c.fwdHost,
					"Forwarded":         c.fwd,
					"X-Real-Ip":         c.realIP,
					"X-Keep":            "yes",
					"Content-Type":      "application/json",
				})
			})
		}
	}
}

func cleanRequestCase(t *testing.T, trusted []string, peer string, tls, trailer bool, want map[string]string) {
	t.Helper()
	h, err := NewHygiene(trusted)
	if err != nil {
		t.Fatal(err)
	}
	var req fasthttp.Request
	parseDirty(t, &req, trailer)
	h.CleanRequest(&req, net.ParseIP(peer), tls, []byte("Authorization"), []byte("Bearer upstream-key"))
	for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
		"Te", "Trailer", "Upgrade", "X-Api-Key", "X-Caracal-Nonce", "X-Caracal-Timestamp", "Transfer-Encoding"} {
		if v := req.Header.Peek(k); len(v) != 0 {
			t.Errorf("header %s survived: %q", k, v)
		}
	}
	if req.Header.ConnectionClose() {
		t.Errorf("Connection: close leaked upstream")
	}
	if got := string(req.Header.Peek("Connection")); got != "" {
		t.Errorf("Connection = %q", got)
	}
	for k, v := range want {
		if got := string(req.Header.Peek(k)); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if string(req.Body()) != "{}" {
		t.Errorf("body = %q", req.Body())
	}
}

func TestCleanResponse(t *testing.T) {
	var resp fasthttp.Response
	raw := "HTTP/1.1 200 OK\r\nConnection: X-Up\r\nX-Up: 1\r\nKeep-Alive: timeout=1\r\nUpgrade: x\r\nX-Keep: 1\r\nContent-Length: 0\r\n\r\n"
	if err := resp.Read(bufioReader(raw)); err != nil {
		t.Fatal(err)
	}
	CleanResponse(&resp.Header)
	for _, k := range []string{"X-Up", "Keep-Alive", "Upgrade", "Connection"} {
		if v := resp.Header.Peek(k); len(v) != 0 {
			t.Errorf("header %s survived: %q", k, v)
		}
	}
	if string(resp.Header.Peek("X-Keep")) != "1" {
		t.Errorf("X-Keep lost")
	}
}

func TestNewHygieneRejectsBadCIDR(t *testing.T) {
	for _, s := range []string{"10.0.0.0/33", "not-an-ip", "1.2.3"} {
		if _, err := NewHygiene([]string{s}); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestCleanRequestNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are counted differently under -race")
	}
	h, err := NewHygiene([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	var src, req fasthttp.Request
	parseDirty(t, &src, false)
	peer := net.ParseIP("127.0.0.1").To4()
	name, value := []byte("Authorization"), []byte("Bearer upstream-key")
	run := func() {
		src.Header.CopyTo(&req.Header)
		h.CleanRequest(&req, peer, true, name, value)
	}
	run()
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("CleanRequest allocates %.1f times per run", n)
	}
}

// TestPresenceBits: every cleanable name has its own bit, and a message with
// all of them sets all of allPresent.
func TestPresenceBits(t *testing.T) {
	if bitAgent != bitHop+len(hopHeaders) || bitUntrusted+len(untrustedForwarding) != bitUntrusted+3 {
		t.Fatalf("the bit layout does not match the name lists (%d hop, %d untrusted)", len(hopHeaders), len(untrustedForwarding))
	}
	keys := [][]byte{[]byte("x-caracal-anything"), headerXFF}
	keys = append(append(append(keys, hopHeaders...), agentHeaders...), untrustedForwarding...)
	if got := presence(keys); got != allPresent {
		t.Fatalf("presence = %b, want %b", got, allPresent)
	}
	if got := presence([][]byte{[]byte("host"), []byte("content-type"), []byte("x-keep")}); got != 0 {
		t.Fatalf("ordinary headers marked %b", got)
	}
	if got := presence([][]byte{[]byte("x-api-key"), []byte("UPGRADE")}); !got.has(bitAgent+1) || !got.has(bitHop+8) || got.has(bitAgent) {
		t.Fatalf("presence ignores case wrongly: %b", got)
	}
}
