package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/store"
)

// TestGatewaySheds: with maxConcurrentRequests in flight, further requests
// get 503 overloaded with Retry-After, and are served again once the load
// drops.
func TestGatewaySheds(t *testing.T) {
	testConfigure = func(c *config.Config) { c.MaxConcurrentRequests = 2 }
	defer func() { testConfigure = nil }()
	s := newStack(t, 5_000_000)
	release := make(chan struct{})
	var held sync.WaitGroup
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		held.Done()
		<-release
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)     //nolint:errcheck
	defer up.Shutdown() //nolint:errcheck
	if _, err := store.SetRoute(context.Background(), s.db, store.RouteSpec{Name: "slow", Prefix: "/slow",
		UpstreamURLs: []string{"http://" + ln.Addr().String()}, CredentialRef: "none", Provider: "openai", Pricing: "tokens", StripPrefix: true}); err != nil {
		t.Fatal(err)
	}
	s.waitTables(t, "slow")
	post := func() (int, string) {
		req, _ := http.NewRequest("POST", s.base+"/slow/x", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+s.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	// Two requests occupy both slots at the upstream.
	held.Add(2)
	results := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() { st, _ := post(); results <- st }()
	}
	waited := make(chan struct{})
	go func() { held.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		t.Fatal("the two slow requests never reached the upstream")
	}
	for i := 0; i < 3; i++ {
		if st, retry := post(); st != 503 || retry == "" {
			t.Fatalf("request over the limit: %d (Retry-After %q), want 503 with Retry-After", st, retry)
		}
	}
	close(release)
	for i := 0; i < 2; i++ {
		if st := <-results; st != 200 {
			t.Fatalf("held request: %d", st)
		}
	}
	held.Add(1)
	if st, _ := post(); st != 200 {
		t.Fatalf("after the load dropped: %d", st)
	}
}
