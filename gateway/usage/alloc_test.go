package usage

import (
	"testing"

	"github.com/caracal-gw/caracal/internal/control"
)

// The whole hot path of this package must not allocate in steady state.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	chatReq := readTestdata(t, "openai_chat_request.json")
	chatResp := readTestdata(t, "openai_chat.json")
	anthropicStream := readTestdata(t, "anthropic_stream.sse")
	chatStream := readTestdata(t, "openai_chat_stream.sse")
	pb, err := NewPricebook([]control.Price{
		{Resource: "openai", Model: "gpt-4o", InputPerMTok: 1},
		{Resource: "openai", Model: "gpt-4o-mini*", InputPerMTok: 3, OutputPerMTok: 9},
		{Resource: "openai", Model: "*", InputPerMTok: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	resource := []byte("openai")
	s := NewScanner(control.Anthropic)
	dst := make([]byte, 0, 4096)
	var sink int64
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"InspectRequest", func() { sink += InspectRequest(control.OpenAI, chatReq).MaxTokens }},
		{"Lookup+Estimate", func() {
			r := InspectRequest(control.OpenAI, chatReq)
			p, _ := pb.Lookup(resource, r.Model)
			sink += Estimate(r, p, 4096) + MaxAffordableOutput(1_000_000, r.InputTokens, p)
		}},
		{"ClampMaxTokens", func() { dst, _ = ClampMaxTokens(dst[:0], chatReq, control.OpenAI, 10) }},
		{"EnsureIncludeUsage", func() { dst, _ = EnsureIncludeUsage(dst[:0], chatReq) }},
		{"ParseUsageJSON+Cost", func() {
			u, _ := ParseUsageJSON(control.OpenAI, chatResp)
			sink += Cost(u, control.Price{InputPerMTok: 3, OutputPerMTok: 5})
		}},
		{"Scanner split", func() {
			s.Reset(control.Anthropic)
			for off := 0; off < len(anthropicStream); off += 37 {
				s.Feed(anthropicStream[off:min(off+37, len(anthropicStream))])
			}
			u, _ := s.Usage()
			sink += Cost(u, anthropicPrice) + Estimate(Request{InputTokens: 100, MaxTokens: 10}, anthropicPrice, 0)
		}},
		{"Scanner whole", func() {
			s.Reset(control.OpenAI)
			s.Feed(chatStream)
			u, _ := s.Usage()
			sink += u.InputTokens
		}},
		{"HeaderCost", func() { v, _ := HeaderCost([]byte("0.012345")); sink += v }},
		{"Lookup miss", func() { _, ok := pb.Lookup([]byte("nope"), []byte("x")); _ = ok }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tc.name, n)
		}
	}
	_ = sink
}
