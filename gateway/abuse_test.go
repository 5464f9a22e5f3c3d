package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/gateway/connlimit"
	"github.com/caracal-gw/caracal/internal/config"
)

// dialFrom dials the gateway from a chosen loopback source address, so that
// abusive and normal clients land in different per-address buckets.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// slowConn writes prefix at once, then trickle one byte per tick, until the
// server closes the connection or giveUp passes. It reports whether the
// server closed the connection first.
func slowConn(src, addr, prefix, trickle string, tick, giveUp time.Duration) (closedByServer bool, err error) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(giveUp))
	done := make(chan bool, 1)
	go func() {
		// The server answers (408 or nothing) and closes: read to EOF.
		_, rerr := io.Copy(io.Discard, c)
		var ne net.Error
		done <- !(errors.As(rerr, &ne) && ne.Timeout())
	}()
	if prefix != "" {
		if _, err := c.Write([]byte(prefix)); err != nil {
			return false, err
		}
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case closed := <-done:
			return closed, nil
		case <-t.C:
		}
		if i < len(trickle) {
			if _, werr := c.Write([]byte{trickle[i]}); werr != nil {
				return true, nil // the server closed its side
			}
		}
	}
}

// TestGatewaySlowClients: slowloris (a header byte at a time) and slow-body
// clients are cut after the read timeout, and reconnect at once, while
// normal traffic from another address keeps being served.
func TestGatewaySlowClients(t *testing.T) {
	const readTimeout = 2 * time.Second
	testConfigure = func(c *config.Config) { c.RequestTimeout = config.Duration(readTimeout) }
	defer func() { testConfigure = nil }()
	s := newStack(t, 5_000_000)

	const (
		slowHeads  = 120
		slowBodies = 40
		tick       = 100 * time.Millisecond
		giveUp     = readTimeout + 10*time.Second
	)
	// Neither ever completes: 400 header bytes take 40 s, the body lacks its
	// last byte.
	headTrickle := "POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 400) + "\r\n\r\n"
	bodyHead := "POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + s.key +
		"\r\nContent-Type: application/json\r\nContent-Length: " + itoa(len(chatBody)) + "\r\n\r\n"
	bodyTrickle := chatBody[:len(chatBody)-1]
	var wg sync.WaitGroup
	var closed, open, failed atomic.Int64
	stop := make(chan struct{})
	hardStop := time.Now().Add(90 * time.Second)
	run := func(prefix, trickle string) {
		defer wg.Done()
		for n := 0; n < 100 && time.Now().Before(hardStop); n++ {
			select {
			case <-stop:
				return
			default:
			}
			ok, err := slowConn("127.0.0.2", s.rg.Addr, prefix, trickle, tick, giveUp)
			switch {
			case err != nil:
				failed.Add(1)
			case ok:
				closed.Add(1)
			default:
				open.Add(1)
			}
		}
	}
	for i := 0; i < slowHeads; i++ {
		wg.Add(1)
		go run("", headTrickle)
	}
	for i := 0; i < slowBodies; i++ {
		wg.Add(1)
		go run(bodyHead, bodyTrickle)
	}

	// Normal traffic from another address while the slow clients hold (and
	// retake) their connections: bounded in count and time, spread over
	// several read timeouts.
	time.Sleep(300 * time.Millisecond) // let the slow clients connect
	client := &http.Client{Timeout: 10 * time.Second}
	const normal = 200
	ok := 0
	until := time.Now().Add(60 * time.Second)
	for sent := 0; sent < normal && time.Now().Before(until); sent++ {
		req, _ := http.NewRequest("POST", s.base+"/openai/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+s.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode == 200 {
			ok++
		}
		time.Sleep(25 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	share := float64(ok) / float64(normal)
	t.Logf("normal requests served under %d slowloris + %d slow-body clients: %d/%d (%.1f%%); slow connections closed by the gateway: %d, still open at give-up: %d, failed to connect: %d",
		slowHeads, slowBodies, ok, normal, 100*share, closed.Load(), open.Load(), failed.Load())
	if share < 0.95 {
		t.Fatalf("only %.1f%% of normal requests succeeded under slow-client abuse, want >= 95%%", 100*share)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d slow connections could not be made", failed.Load())
	}
	// Every slow connection ended by the gateway's read timeout, well
	// before the client's give-up; at least one round per client.
	if open.Load() != 0 || closed.Load() < slowHeads+slowBodies {
		t.Fatalf("%d slow connections were still open %s after connecting (read timeout %s); %d closed",
			open.Load(), giveUp, readTimeout, closed.Load())
	}
}

// TestGatewayConnectionCapPerAddress: connections above the per-address cap
// are closed at accept, while another address is still served.
func TestGatewayConnectionCapPerAddress(t *testing.T) {
	s := newStack(t, 5_000_000)
	const extra = 10
	n := connlimit.DefaultPerAddr + extra
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := dialFrom("127.0.0.3", s.rg.Addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// Each connection either stays open (accepted, idle: the read timeout is
	// the default 30 s) or is closed by the gateway at accept.
	var closed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			_ = c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				closed.Add(1)
			}
		}(c)
	}
	wg.Wait()
	if closed.Load() != extra {
		t.Fatalf("%d of %d connections from one address were closed at accept, want %d (cap %d)", closed.Load(), n, extra, connlimit.DefaultPerAddr)
	}
	// Another address is served while the first is at its cap.
	resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("a request from another address got %d %s", resp.StatusCode, body)
	}
	// The capped address gets a new connection closed without an answer.
	c, err := dialFrom("127.0.0.3", s.rg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("GET /openai/x HTTP/1.1\r\nHost: x\r\n\r\n")) //nolint:errcheck
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatalf("a connection over the per-address cap was answered %q", line)
	}
}

// TestAdminSurface: the token guards /metrics and pprof, /healthz and /readyz
// stay open, pprof is off unless enabled, the default admin address is
// loopback.
func TestAdminSurface(t *testing.T) {
	checks := []Check{{Name: "always", OK: func() bool { return true }}}
	const token = "admin-token-for-tests"
	tests := []struct {
		name   string
		token  string
		pprof  bool
		path   string
		bearer string
		want   int
	}{
		{"healthz open with a token set", token, true, "/healthz", "", 200},
		{"readyz open with a token set", token, true, "/readyz", "", 200},
		{"metrics without the token", token, false, "/metrics", "", 401},
		{"metrics with a wrong token", token, false, "/metrics", "nope", 401},
		{"metrics with the token", token, false, "/metrics", token, 200},
		{"pprof without the token", token, true, "/debug/pprof/", "", 401},
		{"pprof cmdline without the token", token, true, "/debug/pprof/cmdline", "", 401},
		{"pprof with the token", token, true, "/debug/pprof/", token, 200},
		{"pprof off by default", token, false, "/debug/pprof/", token, 404},
		{"pprof cmdline off by default", "", false, "/debug/pprof/cmdline", "", 404},
		{"metrics open without a token", "", false, "/metrics", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(AdminHandler(checks, tt.token, tt.pprof))
			defer srv.Close()
			req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+tt.path, nil)
			if tt.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s = %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
		})
	}
	def := config.Default()
	ap, err := netip.ParseAddrPort(def.Gateway.AdminListen)
	if err != nil || !ap.Addr().IsLoopback() {
		t.Fatalf("default gateway.adminListen %q is not a loopback address", def.Gateway.AdminListen)
	}
	if def.Gateway.EnablePprof {
		t.Fatal("pprof is enabled by default")
	}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGatewaySecretsStayOut: the upstream credential, agent keys (good and
// bad) and the admin token never appear in responses, /metrics, logs or
// audit events.
func TestGatewaySecretsStayOut(t *testing.T) {
	const adminToken = "planted-admin-token-gw-41c7"
	logs := &lockedBuffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	testConfigure = func(c *config.Config) { c.Gateway.AdminToken = adminToken }
	defer func() { testConfigure = nil }()
	s := newStack(t, 5_000_000)

	// A key of the right shape that does not exist: same visible prefix,
	// different secret part.
	bad := []byte(s.key)
	for i := len(bad) - 8; i < len(bad); i++ {
		bad[i] = 'z'
	}
	badKey := string(bad)
	secrets := map[string]string{"upstream credential": upstreamSecret, "agent key": s.key, "wrong agent key": badKey, "admin token": adminToken}
	check := func(where, text string) {
		t.Helper()
		for name, v := range secrets {
			if strings.Contains(text, v) {
				t.Errorf("%s contains the %s", where, name)
			}
		}
	}

	resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("good key: %d %s", resp.StatusCode, body)
	}
	check("a forwarded response", string(body)+fmt.Sprint(resp.Header))
	resp, body = s.post(t, "/openai/chat/completions", badKey, chatBody)
	if resp.StatusCode != 401 {
		t.Fatalf("wrong key: %d %s", resp.StatusCode, body)
	}
	check("the 401 answer", string(body)+fmt.Sprint(resp.Header))
	resp, body = s.post(t, "/nowhere", s.key, chatBody)
	check("the unknown-route answer", string(body)+fmt.Sprint(resp.Header))

	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+s.rg.AdminAddr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, _ := get("/metrics", ""); code != 401 {
		t.Fatalf("/metrics without the admin token: %d, want 401", code)
	}
	code, metrics := get("/metrics", adminToken)
	if code != 200 || !strings.Contains(metrics, "caracal_") {
		t.Fatalf("/metrics with the admin token: %d", code)
	}
	check("/metrics", metrics)

	audit := s.events(t, s.cfg.Kafka.Topics.Audit, 1)
	if len(audit) == 0 {
		t.Fatal("no audit event for the failed authentication")
	}
	sawFailure := false
	for _, ev := range audit {
		check("an audit event", string(ev))
		sawFailure = sawFailure || strings.Contains(string(ev), "auth_failure")
	}
	if !sawFailure {
		t.Fatalf("no auth_failure among the audit events: %q", audit)
	}
	if logs.String() == "" {
		t.Log("the gateway logged nothing during the test")
	}
	check("the gateway's logs", logs.String())
}
