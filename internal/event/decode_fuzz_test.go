package event

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// sameMetering compares two decoded events field by field (byte slices by
// content: nil and empty are the same).
func sameMetering(a, b *Metering) bool {
	if !bytes.Equal(a.Route, b.Route) || !bytes.Equal(a.Model, b.Model) || !bytes.Equal(a.RequestID, b.RequestID) || !bytes.Equal(a.Gateway, b.Gateway) {
		return false
	}
	x, y := *a, *b
	x.Route, x.Model, x.RequestID, x.Gateway = nil, nil, nil, nil
	y.Route, y.Model, y.RequestID, y.Gateway = nil, nil, nil, nil
	return reflect.DeepEqual(x, y)
}

func sameAudit(a, b *Audit) bool {
	for _, p := range [][2][]byte{{a.Type, b.Type}, {a.Route, b.Route}, {a.Reason, b.Reason}, {a.ClientIP, b.ClientIP},
		{a.KeyPrefix, b.KeyPrefix}, {a.RequestID, b.RequestID}, {a.Gateway, b.Gateway}} {
		if !bytes.Equal(p[0], p[1]) {
			return false
		}
	}
	return a.ID == b.ID && a.TimeUnixUs == b.TimeUnixUs && a.Agent == b.Agent && a.Status == b.Status
}

// FuzzDecodeMetering: decoding never panics, and whatever decodes
// re-encodes to JSON that decodes to the same event.
func FuzzDecodeMetering(f *testing.F) {
	f.Add(sampleMetering().AppendJSON(nil))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"ancestors":["","","","","","","","","","","","","","","","","","","","","","","","","","","","","","","","","",""]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Metering
		if err := DecodeMetering(data, &e); err != nil {
			return
		}
		enc := e.AppendJSON(nil)
		var d Metering
		if err := DecodeMetering(enc, &d); err != nil {
			t.Fatalf("a decoded event re-encodes to something that does not decode: %v\n%s", err, enc)
		}
		if !sameMetering(&e, &d) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v\n%s", e, d, enc)
		}
		// Decoding into a used value gives the same result (Reset is complete).
		if err := DecodeMetering(data, &d); err != nil || !sameMetering(&e, &d) {
			t.Fatalf("decoding into a reused event differs: %v", err)
		}
	})
}

// FuzzDecodeAudit: the same round-trip property for audit records.
func FuzzDecodeAudit(f *testing.F) {
	a := &Audit{ID: NewIDGen().New(time.UnixMilli(1_780_000_000_000)), TimeUnixUs: 1_780_000_000_000_123, Type: []byte("auth_failure"),
		Agent: UUID{1, 2}, Route: []byte("openai"), Reason: []byte("bad key \"x\"\n"), Status: 401, ClientIP: []byte("127.0.0.1"),
		KeyPrefix: []byte("ck_live_ab"), RequestID: []byte("r-1"), Gateway: []byte("gw-a")}
	f.Add(a.AppendJSON(nil))
	a.Agent = UUID{}
	f.Add(a.AppendJSON(nil))
	f.Add([]byte(`{"v":1,"agent":"00000000-0000-0000-0000-000000000000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Audit
		if err := DecodeAudit(data, &a); err != nil {
			return
		}
		enc := a.AppendJSON(nil)
		var d Audit
		if err := DecodeAudit(enc, &d); err != nil {
			t.Fatalf("a decoded audit record re-encodes to something that does not decode: %v\n%s", err, enc)
		}
		if !sameAudit(&a, &d) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v\n%s", a, d, enc)
		}
	})
}
