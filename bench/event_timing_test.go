package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/event"
)

// sampleEvent is a metering event as the gateway writes it for a chat
// completion of an agent two levels under its root.
func sampleEvent() *event.Metering {
	e := &event.Metering{
		ID: event.NewIDGen().New(time.Unix(1_764_000_000, 0)), TimeUnixUs: 1_764_000_000_123_456, Kind: event.KindUsage,
		Agent: event.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Root: event.UUID{9: 1},
		Route: []byte("openai"), Model: []byte("gpt-4o-mini-2024-07-18"), RequestID: []byte("01JBENCHREQUEST0000000000"),
		Gateway: []byte("gw-7f9c4d-0"), InputTokens: 1234, OutputTokens: 321, CostMicros: 378, ReservedMicros: 5000,
		Currency: [3]byte{'U', 'S', 'D'}, Status: 200, LatencyUs: 812_345, Pricing: event.PricingTokens,
	}
	e.Ancestors[0], e.Ancestors[1], e.NumAncestors = event.UUID{7: 1}, event.UUID{9: 1}, 2
	return e
}

// BenchmarkEventAppendJSON is the gateway's encoder into a reused buffer;
// it reports the encoded size of one event (bytes/event) for capacity planning.
func BenchmarkEventAppendJSON(b *testing.B) {
	e := sampleEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes/event")
	sinkInt += len(buf)
}

// meteringJSON mirrors the wire format for the encoding/json twin.
type meteringJSON struct {
	V            int      `json:"v"`
	ID           string   `json:"id"`
	TsUs         int64    `json:"ts_us"`
	Kind         string   `json:"kind"`
	Agent        string   `json:"agent"`
	Root         string   `json:"root"`
	Ancestors    []string `json:"ancestors"`
	Route        string   `json:"route"`
	Model        string   `json:"model"`
	RequestID    string   `json:"request_id"`
	Gateway      string   `json:"gateway"`
	InputTokens  int64    `json:"input_tokens"`
	OutputTokens int64    `json:"output_tokens"`
	Cost         int64    `json:"cost_micros"`
	Reserved     int64    `json:"reserved_micros"`
	Currency     string   `json:"currency"`
	Status       int      `json:"status"`
	LatencyUs    int64    `json:"latency_us"`
	Pricing      string   `json:"pricing"`
}

// BenchmarkEventEncodingJSON is the naive twin: build the struct with
// strings and json.Marshal it, as a straightforward producer would.
func BenchmarkEventEncodingJSON(b *testing.B) {
	e := sampleEvent()
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		m := meteringJSON{V: event.Version, ID: e.ID.String(), TsUs: e.TimeUnixUs, Kind: e.Kind.String(),
			Agent: e.Agent.String(), Root: e.Root.String(), Route: string(e.Route), Model: string(e.Model),
			RequestID: string(e.RequestID), Gateway: string(e.Gateway), InputTokens: e.InputTokens,
			OutputTokens: e.OutputTokens, Cost: e.CostMicros, Reserved: e.ReservedMicros, Currency: string(e.Currency[:]),
			Status: e.Status, LatencyUs: e.LatencyUs, Pricing: e.Pricing.String()}
		for i := range e.NumAncestors {
			m.Ancestors = append(m.Ancestors, e.Ancestors[i].String())
		}
		var err error
		if out, err = json.Marshal(&m); err != nil {
			b.Fatal(err)
		}
	}
	sinkInt += len(out)
}

// TestEncodedEventDecodes keeps the benchmark's event honest: what
// AppendJSON writes is what the consumers accept.
func TestEncodedEventDecodes(t *testing.T) {
	e := sampleEvent()
	var got event.Metering
	if err := event.DecodeMetering(e.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	if got.CostMicros != e.CostMicros || got.NumAncestors != 2 || string(got.Model) != string(e.Model) {
		t.Fatalf("decoded %+v", got)
	}
}
