package loadtest

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h}
	go s.Serve(ln)                     //nolint:errcheck
	t.Cleanup(func() { s.Shutdown() }) //nolint:errcheck
	return "http://" + ln.Addr().String() + "/x"
}

// A server slower than the arrival rate must not slow the schedule down:
// every scheduled request is attempted and its latency counts the wait.
func TestOpenLoopSlowServerKeepsTheSchedule(t *testing.T) {
	var seen atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		seen.Add(1)
		time.Sleep(100 * time.Millisecond)
	})
	s, err := Run(context.Background(), Config{URL: url, Rate: 200, Duration: time.Second, Connections: 1, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Attempted != 200 {
		t.Fatalf("attempted %d sends, the schedule has 200", s.Attempted)
	}
	if s.Completed != 200 {
		t.Fatalf("completed %d of 200 (timeouts and answers included)", s.Completed)
	}
	// One connection and 100 ms per answer: a closed loop would have sent
	// about 10 in the second; the later requests waited, and their latency
	// from the scheduled time shows it.
	if s.Latency.Max < 300_000 {
		t.Fatalf("max latency %.0fµs hides the queueing (one connection, 100 ms per answer)", s.Latency.Max)
	}
	// The service time leaves the queueing out: never above the latency.
	if s.Service.Max > s.Latency.Max || s.Service.P50 > s.Latency.P50 {
		t.Fatalf("service %+v above latency %+v", s.Service, s.Latency)
	}
	if s.OK+s.Errors["timeout"] != 200 {
		t.Fatalf("ok %d + timeouts %d != 200: %v", s.OK, s.Errors["timeout"], s.Errors)
	}
}

func TestFastServerAllOK(t *testing.T) {
	var seen atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) { seen.Add(1); ctx.SetBodyString(`{}`) })
	s, err := Run(context.Background(), Config{URL: url, Rate: 500, Duration: time.Second, Connections: 4, Body: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Attempted != 500 || s.OK != 500 || seen.Load() != 500 || s.ErrorRate != 0 {
		t.Fatalf("attempted %d ok %d server saw %d error rate %v %v", s.Attempted, s.OK, seen.Load(), s.ErrorRate, s.Errors)
	}
	if s.Histogram().Count() != 500 {
		t.Fatalf("histogram holds %d latencies", s.Histogram().Count())
	}
}

func TestMaxRequestsBoundsTheRun(t *testing.T) {
	url := serve(t, func(ctx *fasthttp.RequestCtx) {})
	s, err := Run(context.Background(), Config{URL: url, Rate: 1000, Duration: 10 * time.Second, MaxRequests: 37})
	if err != nil {
		t.Fatal(err)
	}
	if s.Attempted != 37 || s.Completed != 37 {
		t.Fatalf("attempted %d completed %d, want 37", s.Attempted, s.Completed)
	}
}

func TestErrorClasses(t *testing.T) {
	var n atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		switch n.Add(1) % 3 {
		case 1:
			ctx.SetStatusCode(429)
		case 2:
			ctx.SetStatusCode(503)
		}
	})
	s, err := Run(context.Background(), Config{URL: url, Rate: 300, Duration: time.Second, Connections: 2})
	if err != nil {
		t.Fatal(err)
	}
	if s.Errors["status_429"] != 100 || s.Errors["status_503"] != 100 || s.OK != 100 {
		t.Fatalf("errors %v ok %d", s.Errors, s.OK)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/"
	ln.Close()
	s, err = Run(context.Background(), Config{URL: dead, Rate: 50, Duration: 200 * time.Millisecond, Connections: 1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Errors["connect"] != s.Attempted || s.Attempted != 10 || s.ErrorRate != 1 {
		t.Fatalf("refused connections: attempted %d errors %v", s.Attempted, s.Errors)
	}
}

func TestOverloadCountsUnsentRequests(t *testing.T) {
	url := serve(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(300 * time.Millisecond) })
	s, err := Run(context.Background(), Config{URL: url, Rate: 100, Duration: time.Second, Connections: 1, MaxInFlight: 5, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Attempted != 100 || s.Errors["overload"] == 0 || s.Errors["overload"]+s.Completed != 100 {
		t.Fatalf("attempted %d completed %d errors %v", s.Attempted, s.Completed, s.Errors)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{
		{URL: "", Rate: 1, Duration: time.Second},
		{URL: "ftp://x/", Rate: 1, Duration: time.Second},
		{URL: "http://127.0.0.1:1/", Rate: 0, Duration: time.Second},
		{URL: "http://127.0.0.1:1/", Rate: 1, Duration: 0},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}
