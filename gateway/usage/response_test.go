package usage

import (
	"math"
	"strings"
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
)

func TestParseUsageJSONTestdata(t *testing.T) {
	for _, tc := range []struct {
		file string
		p    control.Provider
		want Usage
	}{
		// The content strings hold decoy usage objects that must be ignored.
		{"openai_chat.json", control.OpenAI, Usage{InputTokens: 1117, OutputTokens: 46}},
		{"openai_responses.json", control.OpenAI, Usage{InputTokens: 36, OutputTokens: 87}},
		// 2095 + 120 cache creation + 1500 cache read.
		{"anthropic_message.json", control.Anthropic, Usage{InputTokens: 3715, OutputTokens: 503, CacheWriteTokens: 120, CacheReadTokens: 1500}},
	} {
		got, ok := ParseUsageJSON(tc.p, readTestdata(t, tc.file))
		if !ok || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.file, got, ok, tc.want)
		}
	}
}

func TestParseUsageJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    control.Provider
		body string
		want Usage
		ok   bool
	}{
		{"none", control.OpenAI, `{"id":"x"}`, Usage{}, false},
		{"null", control.OpenAI, `{"usage":null}`, Usage{}, false},
		{"empty usage", control.OpenAI, `{"usage":{}}`, Usage{}, true},
		{"not json", control.OpenAI, `<html>`, Usage{}, false},
		{"nested only", control.OpenAI, `{"choices":[{"usage":{"prompt_tokens":5}}]}`, Usage{}, false},
		{"openai ignores cache keys", control.OpenAI, `{"usage":{"prompt_tokens":5,"completion_tokens":6,"cache_read_input_tokens":100}}`, Usage{InputTokens: 5, OutputTokens: 6}, true},
		{"generic as openai", control.Generic, `{"usage":{"prompt_tokens":5,"completion_tokens":6}}`, Usage{InputTokens: 5, OutputTokens: 6}, true},
		{"negative ignored", control.OpenAI, `{"usage":{"prompt_tokens":-5,"completion_tokens":6}}`, Usage{InputTokens: 0, OutputTokens: 6}, true},
		{"anthropic cache", control.Anthropic, `{"usage":{"input_tokens":7,"cache_creation_input_tokens":1000,"cache_read_input_tokens":20000,"output_tokens":3}}`,
			Usage{InputTokens: 21007, OutputTokens: 3, CacheWriteTokens: 1000, CacheReadTokens: 20000}, true},
		{"anthropic cache write only", control.Anthropic, `{"usage":{"cache_creation_input_tokens":"12","input_tokens":1}}`,
			Usage{InputTokens: 13, CacheWriteTokens: 12}, true},
		{"anthropic cache null", control.Anthropic, `{"usage":{"input_tokens":4,"cache_creation_input_tokens":null,"cache_read_input_tokens":-3}}`,
			Usage{InputTokens: 4}, true},
		{"anthropic cache saturates", control.Anthropic, `{"usage":{"input_tokens":9223372036854775807,"cache_read_input_tokens":5}}`,
			Usage{InputTokens: math.MaxInt64, CacheReadTokens: 5}, true},
		{"truncated after usage", control.Anthropic, `{"usage":{"input_tokens":5,"output_tokens":6},"content":[`, Usage{InputTokens: 5, OutputTokens: 6}, true},
	} {
		got, ok := ParseUsageJSON(tc.p, []byte(tc.body))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestScannerTestdata(t *testing.T) {
	for _, tc := range []struct {
		file   string
		p      control.Provider
		want   Usage
		events int
	}{
		{"openai_chat_stream.sse", control.OpenAI, Usage{InputTokens: 19, OutputTokens: 10}, 6},
		{"openai_responses_stream.sse", control.OpenAI, Usage{InputTokens: 37, OutputTokens: 11}, 4},
		// 25 + 10 cache read.
		{"anthropic_stream.sse", control.Anthropic, Usage{InputTokens: 35, OutputTokens: 15, CacheReadTokens: 10}, 8},
	} {
		stream := readTestdata(t, tc.file)
		// Every chunk size from 1 byte to the whole stream splits events,
		// lines and CRLF pairs at every possible place.
		s := NewScanner(tc.p)
		for size := 1; size <= len(stream); size++ {
			s.Reset(tc.p)
			events := 0
			for off := 0; off < len(stream); off += size {
				chunk := stream[off:min(off+size, len(stream))]
				if s.Feed(chunk) > 0 {
					events++
				}
			}
			got, ok := s.Usage()
			if !ok || got != tc.want || !s.Done() {
				t.Fatalf("%s chunk %d: got %+v, %v, done %v; want %+v", tc.file, size, got, ok, s.Done(), tc.want)
			}
			if events < 1 || events > tc.events || (size == 1 && events != tc.events) {
				t.Fatalf("%s chunk %d: %d flush points", tc.file, size, events)
			}
		}
	}
}

func TestScannerFlushPoints(t *testing.T) {
	s := NewScanner(control.OpenAI)
	for _, tc := range []struct {
		chunk string
		want  int
	}{
		{"data: {}\n", 0},
		{"\n", 1},
		{"data: a\n\ndata: b\n\ndata: c", 18},
		{"\r", 0},
		{"\n\r\n", 3}, // ends "data: c", then a blank line
		{"\r\n", 2},
	} {
		if got := s.Feed([]byte(tc.chunk)); got != tc.want {
			t.Errorf("Feed(%q) = %d, want %d", tc.chunk, got, tc.want)
		}
	}
}

func TestScannerLongLines(t *testing.T) {
	s := NewScanner(control.OpenAI)
	long := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", MaxLine) + "\"}}],\"usage\":{\"prompt_tokens\":999}}\n\n"
	final := "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n"
	// Split across chunks, the long line is skipped; whole in one chunk,
	// it is read in place (no buffering needed) and the final chunk still
	// wins.
	for _, tc := range []struct{ size, skipped int }{{1000, 1}, {7, 1}, {len(long), 0}} {
		size := tc.size
		s.Reset(control.OpenAI)
		in := []byte(long + final)
		for off := 0; off < len(in); off += size {
			s.Feed(in[off:min(off+size, len(in))])
		}
		if u, ok := s.Usage(); !ok || u != (Usage{InputTokens: 3, OutputTokens: 4}) || s.SkippedLines() != tc.skipped {
			t.Errorf("size %d: %+v %v skipped %d", size, u, ok, s.SkippedLines())
		}
	}
	// A line of exactly MaxLine bytes still fits.
	s.Reset(control.OpenAI)
	line := "data: {\"usage\":{\"prompt_tokens\":8}}"
	line += strings.Repeat(" ", MaxLine-len(line))
	s.Feed([]byte(line[:100]))
	s.Feed([]byte(line[100:] + "\n"))
	if u, _ := s.Usage(); u.InputTokens != 8 || s.SkippedLines() != 0 {
		t.Errorf("MaxLine line: %+v skipped %d", u, s.SkippedLines())
	}
}

func TestScannerAnthropicCumulative(t *testing.T) {
	s := NewScanner(control.Anthropic)
	s.Feed([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n"))
	s.Feed([]byte("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n"))
	s.Feed([]byte("data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":4,\"output_tokens\":9}}\n\n"))
	if u, ok := s.Usage(); !ok || u != (Usage{InputTokens: 16, OutputTokens: 9, CacheReadTokens: 4}) || s.Done() {
		t.Errorf("got %+v %v done %v", u, ok, s.Done())
	}
	s.Feed([]byte("data:{\"type\":\"message_stop\"}\n\n"))
	if !s.Done() {
		t.Error("message_stop not seen")
	}
}

func TestScannerNoUsage(t *testing.T) {
	s := NewScanner(control.OpenAI)
	s.Feed(readTestdata(t, "openai_chat_stream.sse")[:600])
	if _, ok := s.Usage(); ok {
		t.Error("usage reported before the usage chunk")
	}
}

// An Anthropic stream announces its cache counts in message_start; a later
// message_delta that carries them again (cumulative) replaces them, and one
// that does not keeps them.
func TestScannerAnthropicCacheCounts(t *testing.T) {
	stream := "event: message_start\n" +
		"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"cache_creation_input_tokens\":2048,\"cache_read_input_tokens\":50000,\"output_tokens\":1}}}\n\n" +
		"event: message_delta\n" +
		"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":40}}\n\n"
	s := NewScanner(control.Anthropic)
	for _, size := range []int{1, 13, len(stream)} {
		s.Reset(control.Anthropic)
		for off := 0; off < len(stream); off += size {
			s.Feed([]byte(stream[off:min(off+size, len(stream))]))
		}
		want := Usage{InputTokens: 52051, OutputTokens: 40, CacheWriteTokens: 2048, CacheReadTokens: 50000}
		if u, ok := s.Usage(); !ok || u != want {
			t.Fatalf("chunk %d: got %+v %v, want %+v", size, u, ok, want)
		}
	}
	s.Feed([]byte("data: {\"type\":\"message_delta\",\"usage\":{\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":60000,\"output_tokens\":41}}\n\n"))
	want := Usage{InputTokens: 60003, OutputTokens: 41, CacheReadTokens: 60000}
	if u, ok := s.Usage(); !ok || u != want {
		t.Fatalf("cumulative delta: got %+v %v, want %+v", u, ok, want)
	}
	// The same stream on an OpenAI route: cache keys are not Anthropic's there.
	s.Reset(control.OpenAI)
	s.Feed([]byte(stream))
	if u, _ := s.Usage(); u.CacheWriteTokens != 0 || u.CacheReadTokens != 0 || u.InputTokens != 3 {
		t.Fatalf("openai route: %+v", u)
	}
}
