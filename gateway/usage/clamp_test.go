package usage

import (
	"encoding/json"
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
)

func TestClampMaxTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    control.Provider
		in   string
		want string
		ok   bool
	}{
		{"rewrite", control.OpenAI, `{"model":"m","max_tokens":4096}`, `{"model":"m","max_tokens":10}`, true},
		{"rewrite all", control.OpenAI, `{"max_tokens":1,"max_completion_tokens":2, "max_tokens" : 3.5e3 }`, `{"max_tokens":10,"max_completion_tokens":10, "max_tokens" : 10 }`, true},
		{"escaped key", control.OpenAI, `{"max\u005ftokens":900}`, `{"max\u005ftokens":10}`, true},
		{"insert chat", control.OpenAI, `{"model":"m"}`, `{"max_completion_tokens":10,"model":"m"}`, true},
		{"insert empty", control.OpenAI, ` { } `, ` {"max_completion_tokens":10 } `, true},
		{"insert responses", control.OpenAI, `{"input":"hi"}`, `{"max_output_tokens":10,"input":"hi"}`, true},
		{"insert generic", control.Generic, `{"messages":[]}`, `{"max_tokens":10,"messages":[]}`, true},
		{"anthropic", control.Anthropic, `{"max_tokens":4096,"max_completion_tokens":1}`, `{"max_tokens":10,"max_completion_tokens":1}`, true},
		{"nested untouched", control.OpenAI, `{"messages":[{"max_tokens":5}],"max_tokens":"99"}`, `{"messages":[{"max_tokens":5}],"max_tokens":10}`, true},
		{"truncated", control.OpenAI, `{"max_tokens":5,"messages":[`, ``, false},
		{"not object", control.OpenAI, `"x"`, ``, false},
	} {
		got, ok := ClampMaxTokens(nil, []byte(tc.in), tc.p, 10)
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("%s: got %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
		if ok {
			if r := InspectRequest(tc.p, got); r.MaxTokens != 10 || !r.Object {
				t.Errorf("%s: clamped body reads %+v", tc.name, r)
			}
		}
	}
}

func TestClampTestdataStaysValidJSON(t *testing.T) {
	for _, tc := range []struct {
		file string
		p    control.Provider
	}{
		{"openai_chat_request.json", control.OpenAI},
		{"openai_responses_request.json", control.OpenAI},
		{"anthropic_request.json", control.Anthropic},
	} {
		got, ok := ClampMaxTokens([]byte("prefix"), readTestdata(t, tc.file), tc.p, 7)
		if !ok || string(got[:6]) != "prefix" || !json.Valid(got[6:]) {
			t.Fatalf("%s: %q %v", tc.file, got, ok)
		}
		if r := InspectRequest(tc.p, got[6:]); r.MaxTokens != 7 {
			t.Errorf("%s: MaxTokens %d", tc.file, r.MaxTokens)
		}
	}
}

func TestEnsureIncludeUsage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"stream":true}`, `{"stream_options":{"include_usage":true},"stream":true}`},
		{`{"stream_options":null}`, `{"stream_options":{"include_usage":true}}`},
		{`{"stream_options":{"include_usage":false,"x":1}}`, `{"stream_options":{"include_usage":true,"x":1}}`},
		{`{"stream_options":{"x":1}}`, `{"stream_options":{"include_usage":true,"x":1}}`},
		{`{}`, `{"stream_options":{"include_usage":true}}`},
	} {
		got, ok := EnsureIncludeUsage(nil, []byte(tc.in))
		if !ok || string(got) != tc.want {
			t.Errorf("EnsureIncludeUsage(%s) = %s, %v; want %s", tc.in, got, ok, tc.want)
		}
		if r := InspectRequest(control.OpenAI, got); !r.IncludeUsage {
			t.Errorf("%s: IncludeUsage not read back", got)
		}
	}
	if _, ok := EnsureIncludeUsage(nil, []byte(`{"stream":`)); ok {
		t.Error("truncated body accepted")
	}
}
