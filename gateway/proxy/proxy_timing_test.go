package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

var sinkInt int

// BenchmarkCleanRequest is the per-request header hygiene on a pooled request; it runs
// on every forwarded request, so it must stay allocation-free.
func BenchmarkCleanRequest(b *testing.B) {
	h, err := NewHygiene([]string{"127.0.0.0/8"})
	if err != nil {
		b.Fatal(err)
	}
	var src fasthttp.Request
	parseDirty(b, &src, false)
	benchClean(b, h, &src)
}

// benchClean copies src's header into a pooled request and cleans it.
func benchClean(b *testing.B, h *Hygiene, src *fasthttp.Request) {
	var req fasthttp.Request
	peer := net.ParseIP("127.0.0.1").To4()
	name, value := []byte("Authorization"), []byte("Bearer upstream-key")
	b.ReportAllocs()
	for b.Loop() {
		src.Header.CopyTo(&req.Header)
		h.CleanRequest(&req, peer, true, name, value)
	}
	sinkInt += req.Header.Len()
}

// BenchmarkCleanRequestNetHTTP is the net/http twin: what httputil.ReverseProxy does to
// the header of each outgoing request (clone, drop hop-by-hop and Connection-named
// headers, append X-Forwarded-For) plus the same Caracal-specific removals.
func BenchmarkCleanRequestNetHTTP(b *testing.B) {
	req, err := http.ReadRequest(bufioReader(dirtyRequest))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		out := req.Header.Clone()
		for _, f := range out["Connection"] {
			for _, sf := range strings.Split(f, ",") {
				if sf = textproto.TrimString(sf); sf != "" {
					out.Del(sf)
				}
			}
		}
		for _, k := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
			"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
			out.Del(k)
		}
		out.Del("Authorization")
		out.Del("X-Api-Key")
		for k := range out {
			if strings.HasPrefix(k, "X-Caracal-") {
				delete(out, k)
			}
		}
		out.Set("Authorization", "Bearer upstream-key")
		prior := out["X-Forwarded-For"]
		out.Set("X-Forwarded-For", strings.Join(append(prior, "127.0.0.1"), ", "))
		out.Set("X-Forwarded-Proto", "https")
		sinkInt += len(out)
	}
}

// BenchmarkForward: a small JSON body through a fasthttp frontend running Forward to a
// fasthttp upstream on loopback.
func BenchmarkForward(b *testing.B) {
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	upSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"x","usage":{"total_tokens":3}}`)
	}}
	go upSrv.Serve(upLn) //nolint:errcheck
	defer upSrv.Shutdown()
	up, err := NewUpstream([]string{"http://" + upLn.Addr().String()}, Options{CredentialHeader: []byte("Authorization"),
		CredentialValue: []byte("Bearer k")})
	if err != nil {
		b.Fatal(err)
	}
	feLn, _ := net.Listen("tcp", "127.0.0.1:0")
	feSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { Forward(ctx, up, nil, nil) }}
	go feSrv.Serve(feLn) //nolint:errcheck
	defer feSrv.Shutdown()

	client := &fasthttp.HostClient{Addr: feLn.Addr().String()}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + feLn.Addr().String() + "/v1/chat/completions")
	req.Header.SetMethod("POST")
	req.Header.Set("X-API-Key", "agent")
	req.SetBodyString(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
		sinkInt += len(resp.Body())
	}
}

// BenchmarkForwardNetHTTP is the twin: httputil.ReverseProxy between net/http servers.
func BenchmarkForwardNetHTTP(b *testing.B) {
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	upSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","usage":{"total_tokens":3}}`)
	})}
	go upSrv.Serve(upLn) //nolint:errcheck
	defer upSrv.Close()
	target, _ := url.Parse("http://" + upLn.Addr().String())
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
		pr.Out.Header.Del("X-Api-Key")
		pr.Out.Header.Set("Authorization", "Bearer k")
	}, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	feLn, _ := net.Listen("tcp", "127.0.0.1:0")
	feSrv := &http.Server{Handler: rp}
	go feSrv.Serve(feLn) //nolint:errcheck
	defer feSrv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	u := "http://" + feLn.Addr().String() + "/v1/chat/completions"
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", u, strings.NewReader(body))
		req.Header.Set("X-API-Key", "agent")
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v", err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		sinkInt += int(n)
	}
}

// BenchmarkCleanRequestTypical is the hygiene of what an SDK sends: a handful
// of ordinary headers and the agent's key, nothing hop-by-hop.
func BenchmarkCleanRequestTypical(b *testing.B) {
	h, err := NewHygiene(nil)
	if err != nil {
		b.Fatal(err)
	}
	var src fasthttp.Request
	raw := "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: gw.example\r\nUser-Agent: OpenAI/Python 1.0\r\n" +
		"Accept: application/json\r\nAuthorization: Bearer agent-key\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	if err := src.Read(bufioReader(raw)); err != nil {
		b.Fatal(err)
	}
	benchClean(b, h, &src)
}
