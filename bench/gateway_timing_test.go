package bench

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/valyala/fasthttp"
)

// loop sends req on one keep-alive connection b.N times after a warm-up that
// fills the pools, caches, the lease and the producer's record free list, so
// that allocs/op is the steady state. The count covers the whole process:
// client, proxy, upstream and producer.
func loop(b *testing.B, addr string, req *fasthttp.Request) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 1}
	resp := fasthttp.AcquireResponse()
	do := func() {
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("request: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		sinkInt += len(resp.Body())
	}
	for range 2000 {
		do()
	}
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}

// BenchmarkGatewayFullPath: one request through the gateway on loopback —
// API key, cached policy, budget lease, forward to a fasthttp upstream,
// usage parsed and priced, a metering event produced to Kafka.
func BenchmarkGatewayFullPath(b *testing.B) {
	s := newGatewayStack(b)
	loop(b, s.addr, chatRequest("http://"+s.addr+"/openai/chat/completions", s.key))
}

// BenchmarkDirect is the floor: the client straight to the same upstream.
func BenchmarkDirect(b *testing.B) {
	up := serveUpstream(b)
	loop(b, up, chatRequest("http://"+up+"/v1/chat/completions", ""))
}

// BenchmarkReverseProxyNetHTTP is the net/http twin of the gateway's hop: an
// httputil.ReverseProxy (no auth, no budget, no metering) to the same upstream.
func BenchmarkReverseProxyNetHTTP(b *testing.B) {
	up := serveUpstream(b)
	target, _ := url.Parse("http://" + up)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln) //nolint:errcheck
	b.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	loop(b, addr, chatRequest("http://"+addr+"/v1/chat/completions", ""))
}
