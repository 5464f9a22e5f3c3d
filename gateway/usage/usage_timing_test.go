package usage

import (
	"encoding/json"
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
)

// The encoding/json twins decode the same fields into structs; they are the
// baseline the hand-written scanners are measured against (the scanners
// exist because the gateway must not allocate per request).

var benchSink int64

func BenchmarkInspectRequest(b *testing.B) {
	body := readTestdata(b, "openai_chat_request.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		benchSink += InspectRequest(control.OpenAI, body).MaxTokens
	}
}

func BenchmarkInspectRequestEncodingJSON(b *testing.B) {
	body := readTestdata(b, "openai_chat_request.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var r struct {
			Model               string `json:"model"`
			MaxTokens           *int64 `json:"max_tokens"`
			MaxCompletionTokens *int64 `json:"max_completion_tokens"`
			Stream              bool   `json:"stream"`
			StreamOptions       struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			b.Fatal(err)
		}
		benchSink += *r.MaxCompletionTokens
	}
}

func BenchmarkClampMaxTokens(b *testing.B) {
	body := readTestdata(b, "openai_chat_request.json")
	dst := make([]byte, 0, 2*len(body))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		dst, _ = ClampMaxTokens(dst[:0], body, control.OpenAI, 100)
	}
	benchSink += int64(len(dst))
}

func BenchmarkClampMaxTokensEncodingJSON(b *testing.B) {
	body := readTestdata(b, "openai_chat_request.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
		m["max_completion_tokens"] = json.RawMessage("100")
		out, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		benchSink += int64(len(out))
	}
}

func BenchmarkParseUsageJSON(b *testing.B) {
	body := readTestdata(b, "openai_chat.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		u, _ := ParseUsageJSON(control.OpenAI, body)
		benchSink += u.InputTokens
	}
}

type jsonUsage struct {
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

func BenchmarkParseUsageJSONEncodingJSON(b *testing.B) {
	body := readTestdata(b, "openai_chat.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var r jsonUsage
		if err := json.Unmarshal(body, &r); err != nil {
			b.Fatal(err)
		}
		benchSink += r.Usage.PromptTokens
	}
}

func BenchmarkScanner(b *testing.B) {
	stream := readTestdata(b, "openai_chat_stream.sse")
	s := NewScanner(control.OpenAI)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		s.Reset(control.OpenAI)
		for off := 0; off < len(stream); off += 128 {
			s.Feed(stream[off:min(off+128, len(stream))])
		}
		u, _ := s.Usage()
		benchSink += u.OutputTokens
	}
}

// The twin splits lines with a bufio-like copy and decodes every data line.
func BenchmarkScannerEncodingJSON(b *testing.B) {
	stream := readTestdata(b, "openai_chat_stream.sse")
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		var pending []byte
		var last jsonUsage
		for off := 0; off < len(stream); off += 128 {
			pending = append(pending, stream[off:min(off+128, len(stream))]...)
			for {
				i := indexNL(pending)
				if i < 0 {
					break
				}
				line := string(pending[:i])
				pending = pending[i+1:]
				if len(line) > 6 && line[:6] == "data: " && line[6:] != "[DONE]" {
					var r jsonUsage
					if err := json.Unmarshal([]byte(line[6:]), &r); err != nil {
						b.Fatal(err)
					}
					if r.Usage != nil {
						last = r
					}
				}
			}
		}
		benchSink += last.Usage.CompletionTokens
	}
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

func BenchmarkPricebookLookup(b *testing.B) {
	var prices []control.Price
	for _, m := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini", "gpt-4o-mini*", "gpt-4*", "*"} {
		prices = append(prices, control.Price{Resource: "openai", Model: m, InputPerMTok: 1})
	}
	pb, err := NewPricebook(prices)
	if err != nil {
		b.Fatal(err)
	}
	resource, model := []byte("openai"), []byte("gpt-4o-mini-2024-07-18")
	b.ReportAllocs()
	for b.Loop() {
		p, _ := pb.Lookup(resource, model)
		benchSink += p.InputPerMTok
	}
}

func BenchmarkPricebookLookupNaive(b *testing.B) {
	var prices []control.Price
	for _, m := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini", "gpt-4o-mini*", "gpt-4*", "*"} {
		prices = append(prices, control.Price{Resource: "openai", Model: m, InputPerMTok: 1})
	}
	m := make(map[string]control.Price)
	for _, p := range prices {
		m[p.Resource+"\x00"+p.Model] = p
	}
	resource, model := []byte("openai"), []byte("gpt-4o-mini-2024-07-18")
	b.ReportAllocs()
	for b.Loop() {
		p, ok := m[string(resource)+"\x00"+string(model)]
		if !ok {
			p = m[string(resource)+"\x00*"]
		}
		benchSink += p.InputPerMTok
	}
}
