package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestForwardNoAlloc: a small JSON exchange through Forward (frontend, upstream and the
// client together, all in this process) does not allocate once pools are warm.
func TestForwardNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are counted differently under -race")
	}
	upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"usage":{"total_tokens":3}}`)
	})
	up := newUp(t, upAddr, Options{CredentialHeader: []byte("Authorization"), CredentialValue: []byte("Bearer k")})
	var tapped, done int
	tap := func(b []byte) { tapped += len(b) }
	onDone := func(int, int64, error) { done++ }
	addr := serve(t, func(ctx *fasthttp.RequestCtx) { Forward(ctx, up, tap, onDone) })
	client := &fasthttp.HostClient{Addr: addr}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + addr + "/v1/chat")
	req.Header.SetMethod("POST")
	req.Header.Set("X-API-Key", "agent")
	req.SetBodyString(`{"model":"m"}`)
	do := func() {
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
	for i := 0; i < 50; i++ {
		do()
	}
	if n := testing.AllocsPerRun(200, do); n != 0 {
		t.Fatalf("a forwarded request allocates %.1f times", n)
	}
	if done != 251 || tapped != 251*len(`{"usage":{"total_tokens":3}}`) {
		t.Errorf("done %d times, tapped %d bytes", done, tapped)
	}
}

func TestForwardHeadAndNoContent(t *testing.T) {
	upAddr := serve(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/v1/empty" {
			ctx.SetStatusCode(204)
			return
		}
		ctx.SetBodyString("12345")
	})
	addr, done, _ := frontend(t, newUp(t, upAddr, Options{}))
	client := &fasthttp.HostClient{Addr: addr}
	cases := []struct {
		method, path string
		status, cl   int
	}{{"HEAD", "/x", 200, 5}, {"GET", "/empty", 204, 0}, {"GET", "/x", 200, 5}}
	for _, c := range cases {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + addr + c.path)
		req.Header.SetMethod(c.method)
		if err := client.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != c.status || (c.method == "HEAD" && resp.Header.ContentLength() != c.cl) {
			t.Errorf("%s %s: %d CL %d", c.method, c.path, resp.StatusCode(), resp.Header.ContentLength())
		}
		if o := waitDone(t, done); o.status != c.status || o.err != nil {
			t.Errorf("%s %s: done %+v", c.method, c.path, o)
		}
	}
}
