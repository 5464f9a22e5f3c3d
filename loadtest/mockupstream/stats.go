package mockupstream

import (
	"encoding/json"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Endpoint names an API the mock serves.
type Endpoint uint8

const (
	ChatCompletions Endpoint = iota
	Responses
	Messages
	numEndpoints
)

var endpointPaths = [numEndpoints]string{
	ChatCompletions: "/v1/chat/completions",
	Responses:       "/v1/responses",
	Messages:        "/v1/messages",
}

func (e Endpoint) String() string {
	return [numEndpoints]string{"chat_completions", "responses", "messages"}[e]
}

func endpointOf(path string) (Endpoint, bool) {
	for e, p := range endpointPaths {
		if p == path {
			return Endpoint(e), true
		}
	}
	return 0, false
}

// EndpointStats count what one endpoint served. Tokens are those of the
// 200 answers (the usage each answer reported); InputTokens is the whole
// input, prompt-cache writes and reads included.
type EndpointStats struct {
	OK               int64 `json:"ok"`
	Streams          int64 `json:"streams"`
	ClientErrors     int64 `json:"client_errors"`
	ServerErrors     int64 `json:"server_errors"`
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens"`
	CacheReadTokens  int64 `json:"cache_read_tokens"`
}

// Stats count what the mock served since it started.
type Stats struct {
	// Requests counts the requests to the three APIs, whatever their status.
	Requests        int64         `json:"requests"`
	OK              int64         `json:"ok"`
	InputTokens     int64         `json:"input_tokens"`
	OutputTokens    int64         `json:"output_tokens"`
	NotFound        int64         `json:"not_found"`
	ChatCompletions EndpointStats `json:"chat_completions"`
	Responses       EndpointStats `json:"responses"`
	Messages        EndpointStats `json:"messages"`
}

type endpointCounters struct {
	ok, streams, clientErrors, serverErrors, in, out, cacheW, cacheR atomic.Int64
}

type counters struct {
	byEndpoint [numEndpoints]endpointCounters
	notFound   atomic.Int64
}

func (c *counters) endpoint(e Endpoint) *endpointCounters { return &c.byEndpoint[e] }

func (c *endpointCounters) load() EndpointStats {
	return EndpointStats{
		OK: c.ok.Load(), Streams: c.streams.Load(), ClientErrors: c.clientErrors.Load(),
		ServerErrors: c.serverErrors.Load(), InputTokens: c.in.Load(), OutputTokens: c.out.Load(),
		CacheWriteTokens: c.cacheW.Load(), CacheReadTokens: c.cacheR.Load(),
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		NotFound:        s.stats.notFound.Load(),
		ChatCompletions: s.stats.byEndpoint[ChatCompletions].load(),
		Responses:       s.stats.byEndpoint[Responses].load(),
		Messages:        s.stats.byEndpoint[Messages].load(),
	}
	for _, e := range []EndpointStats{st.ChatCompletions, st.Responses, st.Messages} {
		st.Requests += e.OK + e.ClientErrors + e.ServerErrors
		st.OK += e.OK
		st.InputTokens += e.InputTokens
		st.OutputTokens += e.OutputTokens
	}
	return st
}

func (s *Server) serveStats(ctx *fasthttp.RequestCtx) {
	b, err := json.Marshal(s.Stats())
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "server_error", err.Error())
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// ResetStats sets every counter to zero (the request sequence that drives
// ErrorEvery goes on).
func (s *Server) ResetStats() {
	for i := range s.stats.byEndpoint {
		c := &s.stats.byEndpoint[i]
		for _, v := range []*atomic.Int64{&c.ok, &c.streams, &c.clientErrors, &c.serverErrors, &c.in, &c.out, &c.cacheW, &c.cacheR} {
			v.Store(0)
		}
	}
	s.stats.notFound.Store(0)
}
