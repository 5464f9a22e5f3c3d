package mockupstream

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/gateway/usage"
	"github.com/caracal-gw/caracal/internal/control"
)

func start(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(o)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return s, "http://" + ln.Addr().String()
}

var client = &http.Client{Timeout: 20 * time.Second}

func post(t *testing.T, url, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readUsage reads a response the way the gateway does: JSON with
// ParseUsageJSON, SSE through a Scanner fed with what each Read returns.
func readUsage(t *testing.T, resp *http.Response, p control.Provider) (u usage.Usage, ok bool, flushes int) {
	t.Helper()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		u, ok = usage.ParseUsageJSON(p, body)
		return u, ok, 0
	}
	s := usage.NewScanner(p)
	buf := make([]byte, 512)
	for i := 0; i < 10000; i++ {
		n, err := resp.Body.Read(buf)
		if s.Feed(buf[:n]) > 0 {
			flushes++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !s.Done() {
		t.Error("stream did not announce its end")
	}
	u, ok = s.Usage()
	return u, ok, flushes
}

func TestEndpointsAgreeWithUsageParser(t *testing.T) {
	s, base := start(t, Options{OutputTokens: 50, Chunks: 3})
	for _, tc := range []struct {
		name  string
		path  string
		p     control.Provider
		body  string
		out   int64
		strm  bool
		count func(Stats) EndpointStats
	}{
		{"chat json", "/v1/chat/completions", control.OpenAI, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, 50, false, func(s Stats) EndpointStats { return s.ChatCompletions }},
		{"chat json max", "/v1/chat/completions", control.OpenAI, `{"model":"gpt-4o-mini","max_completion_tokens":7,"messages":[{"role":"user","content":"hello there"}]}`, 7, false, func(s Stats) EndpointStats { return s.ChatCompletions }},
		{"chat sse", "/v1/chat/completions", control.OpenAI, `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, 50, true, func(s Stats) EndpointStats { return s.ChatCompletions }},
		{"responses json", "/v1/responses", control.OpenAI, `{"model":"gpt-4.1","input":"tell me a story","max_output_tokens":20}`, 20, false, func(s Stats) EndpointStats { return s.Responses }},
		{"responses sse", "/v1/responses", control.OpenAI, `{"model":"gpt-4.1","input":"tell me a story","stream":true}`, 50, true, func(s Stats) EndpointStats { return s.Responses }},
		{"messages json", "/v1/messages", control.Anthropic, `{"model":"claude-sonnet-4-20250514","max_tokens":1024,"messages":[{"role":"user","content":"Hello"}]}`, 50, false, func(s Stats) EndpointStats { return s.Messages }},
		{"messages sse", "/v1/messages", control.Anthropic, `{"model":"claude-sonnet-4-20250514","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`, 9, true, func(s Stats) EndpointStats { return s.Messages }},
	} {
		before := tc.count(s.Stats())
		resp := post(t, base+tc.path, tc.body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", tc.name, resp.StatusCode)
		}
		got, ok, flushes := readUsage(t, resp, tc.p)
		want := usage.Usage{InputTokens: usage.EstimateInputTokens(len(tc.body)), OutputTokens: tc.out}
		if !ok || got != want {
			t.Errorf("%s: parsed usage %+v, %v; want %+v", tc.name, got, ok, want)
		}
		if tc.strm && flushes < 1 {
			t.Errorf("%s: no event boundary seen", tc.name)
		}
		after := tc.count(s.Stats())
		served := EndpointStats{OK: after.OK - before.OK, Streams: after.Streams - before.Streams,
			InputTokens: after.InputTokens - before.InputTokens, OutputTokens: after.OutputTokens - before.OutputTokens}
		wantServed := EndpointStats{OK: 1, InputTokens: want.InputTokens, OutputTokens: want.OutputTokens}
		if tc.strm {
			wantServed.Streams = 1
		}
		if served != wantServed {
			t.Errorf("%s: mock counted %+v, want %+v", tc.name, served, wantServed)
		}
	}
	st := s.Stats()
	if st.Requests != 7 || st.OK != 7 {
		t.Errorf("stats %+v", st)
	}
}

func TestStreamEventByEvent(t *testing.T) {
	_, base := start(t, Options{Chunks: 5, ChunkDelay: time.Millisecond})
	resp := post(t, base+"/v1/chat/completions", `{"model":"m","stream":true}`)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// 5 content chunks, the finish chunk, the usage chunk and [DONE].
	if n := strings.Count(string(body), "\n\n"); n != 8 || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("%d events:\n%s", n, body)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
}

func TestRequireIncludeUsage(t *testing.T) {
	_, base := start(t, Options{RequireIncludeUsage: true})
	body := `{"model":"m","stream":true}`
	if _, ok, _ := readUsage(t, post(t, base+"/v1/chat/completions", body), control.OpenAI); ok {
		t.Error("usage sent without include_usage")
	}
	withUsage, ok := usage.EnsureIncludeUsage(nil, []byte(body))
	if !ok {
		t.Fatal("EnsureIncludeUsage failed")
	}
	u, ok, _ := readUsage(t, post(t, base+"/v1/chat/completions", string(withUsage)), control.OpenAI)
	if !ok || u.InputTokens != usage.EstimateInputTokens(len(withUsage)) || u.OutputTokens != 16 {
		t.Errorf("usage %+v, %v", u, ok)
	}
}

// Anthropic answers carry the configured prompt-cache counts on top of
// input_tokens, in JSON and SSE; OpenAI answers do not.
func TestAnthropicCacheTokens(t *testing.T) {
	s, base := start(t, Options{OutputTokens: 20, CacheWriteTokens: 1000, CacheReadTokens: 20_000})
	body := `{"model":"claude-sonnet-4-20250514","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}`
	in := usage.EstimateInputTokens(len(body))
	want := usage.Usage{InputTokens: in + 21_000, OutputTokens: 20, CacheWriteTokens: 1000, CacheReadTokens: 20_000}
	for _, b := range []string{body, strings.Replace(body, `{"model"`, `{"stream":true,"model"`, 1)} {
		u, ok, _ := readUsage(t, post(t, base+"/v1/messages", b), control.Anthropic)
		if b != body {
			want.InputTokens = usage.EstimateInputTokens(len(b)) + 21_000
		}
		if !ok || u != want {
			t.Errorf("%s: usage %+v %v, want %+v", b, u, ok, want)
		}
	}
	st := s.Stats().Messages
	if st.OK != 2 || st.CacheWriteTokens != 2000 || st.CacheReadTokens != 40_000 ||
		st.InputTokens != in+usage.EstimateInputTokens(len(body)+len(`"stream":true,`))+42_000 {
		t.Errorf("messages stats %+v", st)
	}
	u, ok, _ := readUsage(t, post(t, base+"/v1/chat/completions", `{"model":"m"}`), control.OpenAI)
	if !ok || u.CacheWriteTokens != 0 || u.CacheReadTokens != 0 || u.InputTokens != usage.EstimateInputTokens(len(`{"model":"m"}`)) {
		t.Errorf("chat usage %+v %v", u, ok)
	}
	if c := s.Stats().ChatCompletions; c.CacheWriteTokens != 0 || c.CacheReadTokens != 0 {
		t.Errorf("chat stats %+v", c)
	}
}

func TestErrorEvery(t *testing.T) {
	s, base := start(t, Options{ErrorEvery: 3})
	var statuses []int
	for range 6 {
		resp := post(t, base+"/v1/messages", `{"model":"claude","max_tokens":5}`)
		io.Copy(io.Discard, resp.Body)
		statuses = append(statuses, resp.StatusCode)
	}
	want := []int{200, 200, 500, 200, 200, 500}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("statuses %v, want %v", statuses, want)
		}
	}
	st := s.Stats()
	if st.Messages.OK != 4 || st.Messages.ServerErrors != 2 || st.Requests != 6 || st.OutputTokens != 4*5 {
		t.Errorf("stats %+v", st)
	}
}

func TestLastHeadersAndErrors(t *testing.T) {
	s, base := start(t, Options{})
	if s.LastHeaders() != nil {
		t.Error("headers before any request")
	}
	resp := post(t, base+"/v1/chat/completions", `{"model":"m"}`, "Authorization", "Bearer sk-upstream", "X-Trace", "abc")
	io.Copy(io.Discard, resp.Body)
	h := s.LastHeaders()
	if h.Get("Authorization") != "Bearer sk-upstream" || h.Get("X-Trace") != "abc" || h.Get("X-Api-Key") != "" {
		t.Errorf("last headers %v", h)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPost, "/v1/embeddings", `{}`, 404},
		{http.MethodGet, "/v1/chat/completions", ``, 404},
		{http.MethodPost, "/v1/chat/completions", `not json`, 400},
		{http.MethodPost, "/v1/chat/completions", `{"model":"m","messages":[`, 400},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != tc.status || e.Error.Code == "" {
			t.Errorf("%s %s: status %d, error %+v, %v", tc.method, tc.path, resp.StatusCode, e, err)
		}
		resp.Body.Close()
	}
	st := s.Stats()
	if st.NotFound != 2 || st.ChatCompletions.ClientErrors != 2 || st.ChatCompletions.OK != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStatsEndpoint(t *testing.T) {
	s, base := start(t, Options{OutputTokens: 3})
	for range 3 {
		resp := post(t, base+"/v1/responses", `{"model":"m","input":"x"}`)
		io.Copy(io.Discard, resp.Body)
	}
	resp, err := client.Get(base + "/_mock/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Stats
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got != s.Stats() || got.Responses.OK != 3 || got.OutputTokens != 9 {
		t.Errorf("stats endpoint %+v, Stats() %+v", got, s.Stats())
	}
	if h := s.LastHeaders(); h.Get("Content-Type") != "application/json" {
		t.Errorf("the stats request replaced the last API request's headers: %v", h)
	}
	reset, err := client.Post(base+"/_mock/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	reset.Body.Close()
	if st := s.Stats(); reset.StatusCode != http.StatusNoContent || st != (Stats{}) {
		t.Errorf("after reset: status %d, stats %+v", reset.StatusCode, st)
	}
}
