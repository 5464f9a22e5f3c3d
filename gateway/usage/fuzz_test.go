package usage

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/caracal-gw/caracal/internal/control"
)

var fuzzProviders = []control.Provider{control.OpenAI, control.Anthropic, control.Generic}

func FuzzInspectRequest(f *testing.F) {
	for _, name := range []string{"openai_chat_request.json", "openai_responses_request.json", "anthropic_request.json"} {
		f.Add(uint8(0), readTestdata(f, name))
	}
	f.Add(uint8(1), []byte(`{"max_tokens":1e99999,"model":"\u00e9"}`))
	f.Fuzz(func(t *testing.T, pi uint8, body []byte) {
		p := fuzzProviders[int(pi)%len(fuzzProviders)]
		r := InspectRequest(p, body)
		if r.InputTokens < 0 || r.MaxTokens < -1 {
			t.Fatalf("negative counts: %+v", r)
		}
		if r.Model != nil && !bytes.Contains(body, r.Model) {
			t.Fatalf("model %q not from body", r.Model)
		}
		if e := Estimate(r, control.Price{InputPerMTok: 5, OutputPerMTok: 7, PerRequest: 1}, 100); e < 1 {
			t.Fatalf("estimate %d", e)
		}
		checkAgainstEncodingJSON(t, p, body, r)
		clamped, ok := ClampMaxTokens(nil, body, p, 42)
		if ok != r.Object {
			t.Fatalf("clamp ok %v, object %v", ok, r.Object)
		}
		if ok {
			if r2 := InspectRequest(p, clamped); r2.MaxTokens != 42 || !r2.Object {
				t.Fatalf("clamped %q reads %+v", clamped, r2)
			}
			if json.Valid(body) && !json.Valid(clamped) {
				t.Fatalf("clamp broke valid JSON: %q -> %q", body, clamped)
			}
		}
		if withUsage, ok := EnsureIncludeUsage(nil, body); ok {
			if r2 := InspectRequest(p, withUsage); !r2.IncludeUsage {
				t.Fatalf("%q: include_usage not set", withUsage)
			}
			if json.Valid(body) && !json.Valid(withUsage) {
				t.Fatalf("include_usage broke valid JSON: %q -> %q", body, withUsage)
			}
		}
	})
}

func FuzzParseUsageJSON(f *testing.F) {
	for _, name := range []string{"openai_chat.json", "openai_responses.json", "anthropic_message.json"} {
		f.Add(uint8(0), readTestdata(f, name))
	}
	f.Add(uint8(1), []byte(`{"usage":{"input_tokens":"9e99","output_tokens":1.5}}`))
	f.Add(uint8(1), readTestdata(f, "anthropic_message.json"))
	f.Add(uint8(1), []byte(`{"usage":{"input_tokens":3,"cache_creation_input_tokens":2048,"cache_read_input_tokens":1e4,"output_tokens":9}}`))
	f.Add(uint8(0), []byte(`{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}`))
	f.Fuzz(func(t *testing.T, pi uint8, body []byte) {
		p := fuzzProviders[int(pi)%len(fuzzProviders)]
		u, ok := ParseUsageJSON(p, body)
		checkCacheParts(t, p, u)
		if !ok && u != (Usage{}) {
			t.Fatalf("usage %+v without ok", u)
		}
		if c := Cost(u, control.Price{InputPerMTok: 1 << 40, OutputPerMTok: 1 << 40}); c < 0 {
			t.Fatalf("negative cost %d", c)
		}
		// Priced apart, cache tokens cost what their prices say: never less
		// than all input at the cheapest of the three prices, never more
		// than at the dearest.
		lo := Cost(u, control.Price{InputPerMTok: 300_000, OutputPerMTok: 1})
		hi := Cost(u, control.Price{InputPerMTok: 3_750_000, OutputPerMTok: 1})
		if c := Cost(u, fuzzCachePrice); u.InputTokens < math.MaxInt64 && (c < lo || c > hi) {
			t.Fatalf("cache-priced cost %d outside [%d, %d] for %+v", c, lo, hi, u)
		}
		checkUsageAgainstEncodingJSON(t, p, body, u, ok)
		if v, ok := HeaderCost(body); ok && v < 0 {
			t.Fatalf("negative header cost %d", v)
		}
	})
}

func FuzzSSEScanner(f *testing.F) {
	for _, name := range []string{"openai_chat_stream.sse", "openai_responses_stream.sse", "anthropic_stream.sse"} {
		f.Add(uint8(0), uint16(7), readTestdata(f, name))
	}
	f.Add(uint8(1), uint16(1), []byte("data: {\"usage\":{\"input_tokens\":1}}\r\n\r\ndata: [DONE]\n\n"))
	f.Add(uint8(1), uint16(5), readTestdata(f, "anthropic_stream.sse"))
	f.Fuzz(func(t *testing.T, pi uint8, size uint16, stream []byte) {
		p := fuzzProviders[int(pi)%len(fuzzProviders)]
		n := max(int(size), 1)
		// The same stream fed whole and in chunks gives the same usage
		// when no line outgrows the buffer.
		whole := NewScanner(p)
		whole.Feed(stream)
		split := NewScanner(p)
		for off := 0; off < len(stream); off += n {
			chunk := stream[off:min(off+n, len(stream))]
			if fl := split.Feed(chunk); fl < 0 || fl > len(chunk) || (fl > 0 && chunk[fl-1] != '\n') {
				t.Fatalf("flush point %d in chunk of %d", fl, len(chunk))
			}
		}
		uw, okw := whole.Usage()
		us, oks := split.Usage()
		checkCacheParts(t, p, uw)
		checkCacheParts(t, p, us)
		if split.SkippedLines() == 0 && (uw != us || okw != oks || whole.Done() != split.Done()) {
			t.Fatalf("whole %+v %v, split by %d %+v %v", uw, okw, n, us, oks)
		}
	})
}

// fuzzCachePrice has a plain input price between the cache read and cache
// write prices, as Anthropic's list prices do.
var fuzzCachePrice = control.Price{InputPerMTok: 3_000_000, OutputPerMTok: 1,
	CacheWritePerMTok: 3_750_000, HasCacheWrite: true, CacheReadPerMTok: 300_000, HasCacheRead: true}

// checkCacheParts checks a parsed usage: no negative count, cache parts only
// on Anthropic routes, and the parts within the total (unless it saturated).
func checkCacheParts(t *testing.T, p control.Provider, u Usage) {
	t.Helper()
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheWriteTokens < 0 || u.CacheReadTokens < 0 {
		t.Fatalf("negative usage %+v", u)
	}
	if p != control.Anthropic && (u.CacheWriteTokens != 0 || u.CacheReadTokens != 0) {
		t.Fatalf("cache parts on a %v route: %+v", p, u)
	}
	if u.InputTokens < math.MaxInt64 && u.CacheWriteTokens+u.CacheReadTokens > u.InputTokens {
		t.Fatalf("cache parts above the input total: %+v", u)
	}
}

// checkAgainstEncodingJSON compares InspectRequest with encoding/json on
// valid JSON objects: the scanner must read a body as the upstream would.
func checkAgainstEncodingJSON(t *testing.T, p control.Provider, body []byte, r Request) {
	var m map[string]json.RawMessage
	if !json.Valid(body) || json.Unmarshal(body, &m) != nil || m == nil {
		return
	}
	if !r.Object {
		t.Fatalf("valid object %q not read whole", body)
	}
	var model string
	if raw, ok := m["model"]; ok && json.Unmarshal(raw, &model) == nil {
		if plain := !bytes.Contains(raw, []byte(`\`)) && utf8.Valid(raw); r.ModelEscaped == plain || plain && string(r.Model) != model {
			t.Fatalf("model %q, encoding/json %q", r.Model, model)
		}
	}
	if want := string(m["stream"]) == "true"; r.Stream != want {
		t.Fatalf("stream %v, encoding/json %q", r.Stream, m["stream"])
	}
	want := int64(-1)
	names := []string{"max_tokens"}
	if p != control.Anthropic {
		names = append(names, "max_completion_tokens", "max_output_tokens")
	}
	for _, k := range names {
		var n int64
		if raw, ok := m[k]; ok && json.Unmarshal(raw, &n) == nil && n > want {
			want = n
		}
	}
	if want >= 0 && r.MaxTokens < want {
		t.Fatalf("max tokens %d, encoding/json %d", r.MaxTokens, want)
	}
}

// checkUsageAgainstEncodingJSON compares ParseUsageJSON with encoding/json
// on valid bodies with a single OpenAI-style usage object of integers.
func checkUsageAgainstEncodingJSON(t *testing.T, p control.Provider, body []byte, u Usage, ok bool) {
	var top map[string]json.RawMessage
	if p == control.Anthropic || !json.Valid(body) || json.Unmarshal(body, &top) != nil ||
		bytes.Count(body, []byte(`usage`)) != 1 || bytes.Contains(body, []byte(`\`)) {
		return
	}
	var fields map[string]int64
	if raw, has := top["usage"]; !has || json.Unmarshal(raw, &fields) != nil || fields == nil {
		return
	}
	if _, both := fields["input_tokens"]; both {
		return
	}
	if _, both := fields["output_tokens"]; both {
		return
	}
	want := Usage{InputTokens: max(fields["prompt_tokens"], 0), OutputTokens: max(fields["completion_tokens"], 0)}
	if !ok || u != want {
		t.Fatalf("usage %+v %v, encoding/json %+v", u, ok, want)
	}
}
