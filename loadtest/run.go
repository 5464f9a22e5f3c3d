package loadtest

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Snapshot is the progress of a run in flight.
type Snapshot struct {
	Elapsed   time.Duration
	Attempted int64
	Completed int64
	Failed    int64
	InFlight  int64
}

// run is the state of one Run.
type run struct {
	cfg      Config
	clients  []*fasthttp.HostClient
	template fasthttp.Request
	start    time.Time
	jobs     chan int64
	rr       atomic.Uint64

	attempted atomic.Int64
	completed atomic.Int64
	failed    atomic.Int64
	inflight  atomic.Int64

	wg sync.WaitGroup
	// workers are the per-connection recorders; overflow records the
	// requests sent while every worker was busy, under mu.
	workers  []*recorder
	mu       sync.Mutex
	overflow recorder
	overload atomic.Int64
}

// recorder counts the outcomes seen by one goroutine.
type recorder struct {
	hist    Histogram
	service Histogram
	ok      int64
	status  [600]int64
	errs    [numClasses]int64
}

func (r *recorder) merge(o *recorder) {
	r.hist.Merge(&o.hist)
	r.service.Merge(&o.service)
	r.ok += o.ok
	for i, c := range o.status {
		r.status[i] += c
	}
	for i, c := range o.errs {
		r.errs[i] += c
	}
}

// Run sends cfg.Rate requests per second until cfg.Duration has passed or
// cfg.MaxRequests were scheduled (or ctx ends), waits for the answers (each
// bounded by cfg.Timeout) and summarises them.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r, err := newRun(cfg)
	if err != nil {
		return nil, err
	}
	for i := range r.clients {
		w := &recorder{}
		r.workers = append(r.workers, w)
		r.wg.Add(1)
		go r.work(w, r.clients[i])
	}
	r.start = time.Now()
	stopProgress := r.progress()
	r.schedule(ctx)
	close(r.jobs)
	r.wg.Wait()
	elapsed := time.Since(r.start)
	stopProgress()
	return r.summary(elapsed), nil
}

func newRun(cfg Config) (*run, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	tlsOn := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{false: "80", true: "443"}[tlsOn])
	}
	r := &run{cfg: cfg, jobs: make(chan int64, cfg.Connections)}
	for range cfg.Connections {
		r.clients = append(r.clients, &fasthttp.HostClient{
			Addr: addr, IsTLS: tlsOn, TLSConfig: &tls.Config{InsecureSkipVerify: cfg.Insecure}, //nolint:gosec // bench flag
			MaxConns: 1, MaxConnWaitTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
			MaxIdleConnDuration: time.Minute, NoDefaultUserAgentHeader: true, DisablePathNormalizing: true,
		})
	}
	t := &r.template
	t.SetRequestURI(cfg.URL)
	t.Header.SetMethod(cfg.Method)
	if len(cfg.Body) > 0 {
		t.SetBody(cfg.Body)
		t.Header.SetContentType(cfg.ContentType)
	}
	if cfg.Key != "" {
		t.Header.Set("Authorization", "Bearer "+cfg.Key)
	}
	if cfg.Stream {
		t.Header.Set("Accept", "text/event-stream")
	}
	return r, nil
}

// schedule dispatches request i at start + i/Rate, never waiting for an
// answer: when every connection is busy the request waits in a goroutine of
// its own, and its latency, counted from the scheduled time, shows it.
func (r *run) schedule(ctx context.Context) {
	interval := float64(time.Second) / r.cfg.Rate
	var i int64
	// MaxRequests <= Rate·Duration, so the last request is due before Duration.
	for i < r.cfg.MaxRequests && ctx.Err() == nil {
		el := time.Since(r.start)
		due := min(int64(float64(el)/interval)+1, r.cfg.MaxRequests)
		for ; i < due; i++ {
			r.dispatch(int64(float64(i) * interval))
		}
		r.attempted.Store(i)
		if wait := time.Duration(float64(i)*interval) - time.Since(r.start); wait > 0 {
			time.Sleep(wait)
		}
	}
	r.attempted.Store(i)
}

func (r *run) dispatch(offset int64) {
	if r.inflight.Add(1) > int64(r.cfg.MaxInFlight) {
		r.inflight.Add(-1)
		r.overload.Add(1)
		r.failed.Add(1)
		return
	}
	select {
	case r.jobs <- offset:
	default:
		r.wg.Add(1)
		go r.spill(offset)
	}
}

func (r *run) work(w *recorder, c *fasthttp.HostClient) {
	defer r.wg.Done()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	r.template.CopyTo(req)
	for off := range r.jobs {
		status, lat, svc, err := r.send(c, req, resp, off)
		r.record(w, status, lat, svc, err)
	}
}

// spill sends one request on the next connection in turn (waiting for it).
func (r *run) spill(offset int64) {
	defer r.wg.Done()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	r.template.CopyTo(req)
	c := r.clients[r.rr.Add(1)%uint64(len(r.clients))]
	status, lat, svc, err := r.send(c, req, resp, offset)
	r.mu.Lock()
	r.record(&r.overflow, status, lat, svc, err)
	r.mu.Unlock()
}

// send returns the latency from the scheduled time and the service time
// from the actual send (which leaves out the generator's own lateness).
func (r *run) send(c *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, offset int64) (int, time.Duration, time.Duration, error) {
	scheduled := r.start.Add(time.Duration(offset))
	sent := time.Now()
	err := c.DoDeadline(req, resp, scheduled.Add(r.cfg.Timeout))
	done := time.Now()
	r.inflight.Add(-1)
	return resp.StatusCode(), done.Sub(scheduled), done.Sub(sent), err
}

func (r *run) record(w *recorder, status int, lat, svc time.Duration, err error) {
	r.completed.Add(1)
	if err != nil {
		w.errs[classify(err)]++
		r.failed.Add(1)
		return
	}
	w.hist.Record(lat)
	w.service.Record(svc)
	if status >= 200 && status < 300 {
		w.ok++
		return
	}
	r.failed.Add(1)
	if status > 0 && status < len(w.status) {
		w.status[status]++
	}
}

// progress calls cfg.Progress every second until the returned stop is called.
func (r *run) progress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.cfg.Progress(Snapshot{Elapsed: time.Since(r.start), Attempted: r.attempted.Load(),
					Completed: r.completed.Load(), Failed: r.failed.Load(), InFlight: r.inflight.Load()})
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
