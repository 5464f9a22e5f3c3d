package usage

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("cannot read testdata: %s", err)
	}
	return b
}

func TestInspectRequestTestdata(t *testing.T) {
	for _, tc := range []struct {
		file         string
		p            control.Provider
		model        string
		maxTokens    int64
		stream       bool
		includeUsage bool
		api          API
	}{
		{"openai_chat_request.json", control.OpenAI, "gpt-4o-mini", 256, true, true, APIChat},
		{"openai_responses_request.json", control.OpenAI, "gpt-4.1", 1024, false, false, APIResponses},
		{"anthropic_request.json", control.Anthropic, "claude-sonnet-4-20250514", 1024, true, false, APIMessages},
	} {
		body := readTestdata(t, tc.file)
		r := InspectRequest(tc.p, body)
		if string(r.Model) != tc.model || r.MaxTokens != tc.maxTokens || r.Stream != tc.stream ||
			r.IncludeUsage != tc.includeUsage || r.API != tc.api || !r.Object || r.ModelEscaped {
			t.Errorf("%s: got %+v model %q", tc.file, r, r.Model)
		}
		if want := int64((len(body) + 3) / 4); r.InputTokens != want {
			t.Errorf("%s: InputTokens %d, want %d", tc.file, r.InputTokens, want)
		}
	}
}

func TestInspectRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         control.Provider
		body      string
		model     string
		escaped   bool
		maxTokens int64
		stream    bool
		object    bool
	}{
		{"empty", control.OpenAI, ``, "", false, -1, false, false},
		{"not object", control.OpenAI, `[1,2]`, "", false, -1, false, false},
		{"empty object", control.OpenAI, ` {} `, "", false, -1, false, true},
		{"no max", control.OpenAI, `{"model":"m","messages":[]}`, "m", false, -1, false, true},
		{"max_tokens", control.OpenAI, `{"model":"m","max_tokens":10}`, "m", false, 10, false, true},
		{"largest wins", control.OpenAI, `{"max_tokens":10,"max_completion_tokens":30,"max_output_tokens":20}`, "", false, 30, false, true},
		{"duplicate last model", control.OpenAI, `{"model":"a","model":"b"}`, "b", false, -1, false, true},
		{"duplicate max largest", control.OpenAI, `{"max_tokens":5,"max_tokens":500}`, "", false, 500, false, true},
		{"escaped key", control.OpenAI, `{"max\u005ftokens":77}`, "", false, 77, false, true},
		{"escaped model", control.OpenAI, `{"model":"gpt-4\u006f"}`, `gpt-4\u006f`, true, -1, false, true},
		{"float max", control.OpenAI, `{"max_tokens":100.5}`, "", false, 101, false, true},
		{"exp max", control.OpenAI, `{"max_tokens":1e5}`, "", false, 100000, false, true},
		{"string max", control.OpenAI, `{"max_tokens":"300"}`, "", false, 300, false, true},
		{"huge max", control.OpenAI, `{"max_tokens":99999999999999999999999}`, "", false, math.MaxInt64, false, true},
		{"negative max", control.OpenAI, `{"max_tokens":-5}`, "", false, -1, false, true},
		{"null max", control.OpenAI, `{"max_tokens":null}`, "", false, -1, false, true},
		{"anthropic ignores openai keys", control.Anthropic, `{"max_completion_tokens":9,"max_tokens":3}`, "", false, 3, false, true},
		{"nested keys ignored", control.OpenAI, `{"messages":[{"max_tokens":9,"model":"x"}],"metadata":{"stream":true}}`, "", false, -1, false, true},
		{"stream string not true", control.OpenAI, `{"stream":"true"}`, "", false, -1, false, true},
		{"stream", control.OpenAI, `{"stream" : true , "model" : "m"}`, "m", false, -1, true, true},
		{"strings with braces", control.OpenAI, `{"messages":[{"content":"}]{[\"\\"}],"model":"m"}`, "m", false, -1, false, true},
		{"truncated", control.OpenAI, `{"model":"m","max_tokens":5,"messages":[`, "m", false, 5, false, false},
		{"model not string", control.OpenAI, `{"model":42}`, "", false, -1, false, true},
	} {
		r := InspectRequest(tc.p, []byte(tc.body))
		if string(r.Model) != tc.model || r.ModelEscaped != tc.escaped || r.MaxTokens != tc.maxTokens ||
			r.Stream != tc.stream || r.Object != tc.object {
			t.Errorf("%s: got %+v model %q", tc.name, r, r.Model)
		}
	}
}

func TestEstimateInputTokens(t *testing.T) {
	for _, tc := range []struct{ n, want int64 }{{0, 0}, {1, 1}, {4, 1}, {5, 2}, {8, 2}, {1000, 250}, {1001, 251}} {
		if got := EstimateInputTokens(int(tc.n)); got != tc.want {
			t.Errorf("EstimateInputTokens(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"12", 12, true}, {"12.0", 12, true}, {"12.01", 13, true},
		{"1.5e1", 15, true}, {"1.55e1", 16, true}, {"125e-2", 2, true}, {"1E2", 100, true},
		{"0.0000001", 1, true}, {`"42"`, 42, true}, {"9223372036854775807", math.MaxInt64, true},
		{"9223372036854775808", math.MaxInt64, true}, {"1e999999999", math.MaxInt64, true},
		{"1e-999999999", 1, true}, {"0e-999999999", 0, true},
		{"-1", 0, false}, {"", 0, false}, {"1.", 0, false}, {".5", 0, false}, {"1e", 0, false},
		{"null", 0, false}, {"true", 0, false}, {"1x", 0, false}, {`"a"`, 0, false},
	} {
		got, ok := parseCount([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseCount(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
