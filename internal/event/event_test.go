package event

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleMetering() *Metering {
	g := NewIDGen()
	e := &Metering{
		ID: g.New(time.UnixMilli(1_780_000_000_000)), TimeUnixUs: 1_780_000_000_000_123, Kind: KindUsage,
		Agent: UUID{1, 2, 3}, Root: UUID{9, 9}, NumAncestors: 2,
		Route: []byte("openai"), Model: []byte("gpt-4o-mini\"\n\xff"), RequestID: []byte("r-1"), Gateway: []byte("gw-a"),
		InputTokens: 12, OutputTokens: 34, CostMicros: 56, ReservedMicros: 78, Currency: [3]byte{'U', 'S', 'D'},
		Status: 200, LatencyUs: 1500, Pricing: PricingTokens,
	}
	e.Ancestors[0] = UUID{5}
	e.Ancestors[1] = UUID{9, 9}
	return e
}

func TestMeteringRoundTrip(t *testing.T) {
	e := sampleMetering()
	b := e.AppendJSON(nil)
	if !json.Valid(b) {
		t.Fatalf("not valid JSON: %s", b)
	}
	var d Metering
	if err := DecodeMetering(b, &d); err != nil {
		t.Fatalf("decode: %v\n%s", err, b)
	}
	if d.ID != e.ID || d.Agent != e.Agent || d.Root != e.Root || d.NumAncestors != 2 || d.Ancestors[1] != e.Ancestors[1] ||
		d.CostMicros != 56 || d.ReservedMicros != 78 || d.InputTokens != 12 || d.OutputTokens != 34 ||
		string(d.Route) != "openai" || string(d.Model) != "gpt-4o-mini\"\n\ufffd" || d.Status != 200 || d.Pricing != PricingTokens {
		t.Fatalf("round trip changed the event:\n%+v\n%+v", e, d)
	}
}

func TestMeteringCacheTokens(t *testing.T) {
	e := sampleMetering()
	if b := e.AppendJSON(nil); bytes.Contains(b, []byte("cache_")) {
		t.Fatalf("zero cache counts written: %s", b)
	}
	e.InputTokens, e.CacheWriteTokens, e.CacheReadTokens = 21_007, 1000, 20_000
	b := e.AppendJSON(nil)
	if !bytes.Contains(b, []byte(`"output_tokens":34,"cache_write_tokens":1000,"cache_read_tokens":20000,"cost_micros":56`)) {
		t.Fatalf("cache counts not written: %s", b)
	}
	var d Metering
	if err := DecodeMetering(b, &d); err != nil || d.InputTokens != 21_007 || d.CacheWriteTokens != 1000 || d.CacheReadTokens != 20_000 {
		t.Fatalf("decoded %+v %v", d, err)
	}
	// Decoding an event without them clears what the target held.
	if err := DecodeMetering(sampleMetering().AppendJSON(nil), &d); err != nil || d.CacheWriteTokens != 0 || d.CacheReadTokens != 0 {
		t.Fatalf("stale cache counts: %+v %v", d, err)
	}
	good := string(sampleMetering().AppendJSON(nil)) // input_tokens 12
	for _, tc := range []struct {
		extra string
		ok    bool
	}{
		{`"cache_write_tokens":5,"cache_read_tokens":7`, true},
		{`"cache_read_tokens":12`, true},
		{`"cache_write_tokens":6,"cache_read_tokens":7`, false},
		{`"cache_write_tokens":13`, false},
		{`"cache_read_tokens":-1`, false},
	} {
		in := strings.Replace(good, `"output_tokens":34`, `"output_tokens":34,`+tc.extra, 1)
		err := DecodeMetering([]byte(in), &d)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "within input_tokens")) {
			t.Errorf("%s: %v, want ok %v", tc.extra, err, tc.ok)
		}
	}
}

func TestMeteringEncodeAllocatesNothing(t *testing.T) {
	e := sampleMetering()
	buf := make([]byte, 0, 1024)
	e.InputTokens, e.CacheWriteTokens, e.CacheReadTokens = 1012, 100, 900
	n := testing.AllocsPerRun(1000, func() { buf = e.AppendJSON(buf[:0]) })
	if n != 0 {
		t.Fatalf("AppendJSON allocates %v times per call", n)
	}
}

func TestDecodeMeteringRejects(t *testing.T) {
	good := string(sampleMetering().AppendJSON(nil))
	cases := []struct{ name, in, want string }{
		{"not json", "{", "invalid metering event"},
		{"no version", strings.Replace(good, `"v":1`, `"x":1`, 1), "version"},
		{"future version", strings.Replace(good, `"v":1`, `"v":2`, 1), "version"},
		{"bad id", strings.Replace(good, `"id":"`, `"id":"!`, 1), "event id"},
		{"negative cost", strings.Replace(good, `"cost_micros":56`, `"cost_micros":-1`, 1), "cost_micros"},
		{"float cost", strings.Replace(good, `"cost_micros":56`, `"cost_micros":5.6`, 1), "invalid metering event"},
		{"missing cost", strings.Replace(good, `"cost_micros":56,`, ``, 1), "cost_micros"},
		{"bad currency", strings.Replace(good, `"USD"`, `"usd"`, 1), "currency"},
		{"bad status", strings.Replace(good, `"status":200`, `"status":99`, 1), "status"},
		{"unknown kind", strings.Replace(good, `"kind":"usage"`, `"kind":"gift"`, 1), "kind"},
		{"empty route", strings.Replace(good, `"route":"openai"`, `"route":""`, 1), "route"},
		{"root mismatch", strings.Replace(good, `"root":"09090000`, `"root":"08090000`, 1), "root"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e Metering
			err := DecodeMetering([]byte(tc.in), &e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestAuditRoundTrip(t *testing.T) {
	a := &Audit{ID: NewIDGen().New(time.Now()), TimeUnixUs: 1, Type: []byte("auth_failure"), Reason: []byte("bad_key"),
		Status: 401, ClientIP: []byte("10.0.0.1"), KeyPrefix: []byte("crk_abc"), RequestID: []byte("r")}
	b := a.AppendJSON(nil)
	var d Audit
	if err := DecodeAudit(b, &d); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if d.ID != a.ID || string(d.Reason) != "bad_key" || !d.Agent.IsZero() || d.Status != 401 {
		t.Fatalf("round trip: %+v", d)
	}
	if n := testing.AllocsPerRun(100, func() { b = a.AppendJSON(b[:0]) }); n != 0 {
		t.Fatalf("audit encode allocates %v", n)
	}
}

func TestIDsSortAndParse(t *testing.T) {
	g := NewIDGen()
	now := time.Now()
	prev := g.New(now)
	for i := 0; i < 1000; i++ {
		id := g.New(now.Add(time.Duration(i) * time.Millisecond))
		if bytes.Compare(id[:6], prev[:6]) < 0 {
			t.Fatal("ids do not sort by time")
		}
		back, err := ParseID(id.AppendText(nil))
		if err != nil || back != id {
			t.Fatalf("parse(%s) = %v, %v", id, back, err)
		}
		if id == prev {
			t.Fatal("duplicate id")
		}
		prev = id
	}
	if got := prev.Time().UnixMilli(); got != now.Add(999*time.Millisecond).UnixMilli() {
		t.Fatalf("Time() = %d", got)
	}
}

func TestUUIDText(t *testing.T) {
	const s = "0193a4f2-7c1e-7a2b-9c3d-4e5f60718293"
	u, err := ParseUUID([]byte(s))
	if err != nil || u.String() != s {
		t.Fatalf("%v %s", err, u)
	}
	for _, bad := range []string{"", "0193a4f2x7c1e-7a2b-9c3d-4e5f60718293", "zz93a4f2-7c1e-7a2b-9c3d-4e5f60718293"} {
		if _, err := ParseUUID([]byte(bad)); err == nil {
			t.Errorf("ParseUUID(%q) accepted", bad)
		}
	}
}
