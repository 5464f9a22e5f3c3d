package event

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func sampleAudit() *Audit {
	return &Audit{ID: NewIDGen().New(time.UnixMilli(1_780_000_000_000)), TimeUnixUs: 1_780_000_000_000_123, Type: []byte("auth_failure"),
		Agent: UUID{1, 2}, Route: []byte("openai"), Reason: []byte("bad key \"x\"\n\xff"), Status: 401, ClientIP: []byte("127.0.0.1"),
		KeyPrefix: []byte("ck_live_ab"), RequestID: []byte("r-1"), Gateway: []byte("gw-a")}
}

// checkSameAuditDecode fails unless DecodeAudit and the encoding/json
// reference both accept data with the same record or both reject it.
func checkSameAuditDecode(t *testing.T, data []byte) {
	t.Helper()
	var got, want Audit
	got.Type, got.Reason, got.Agent, got.Status = append(got.Type, "stale"...), append(got.Reason, "stale"...), UUID{7}, 500
	errGot := DecodeAudit(data, &got)
	errWant := decodeAuditJSON(data, &want)
	if (errGot == nil) != (errWant == nil) {
		t.Fatalf("decoders disagree on %q:\nnew: %v\nold: %v", data, errGot, errWant)
	}
	if errGot != nil {
		if !errors.Is(errGot, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", errGot)
		}
		return
	}
	if !sameAudit(&got, &want) {
		t.Fatalf("decoders disagree on %q:\nnew: %+v\nold: %+v", data, got, want)
	}
}

func auditVariants() [][]byte {
	a := sampleAudit()
	base := string(a.AppendJSON(nil))
	a.Agent, a.Status = UUID{}, 0
	anon := string(a.AppendJSON(nil))
	agent := `"agent":"01020000-0000-0000-0000-000000000000"`
	rep := func(old, new string) []byte { return []byte(strings.Replace(base, old, new, 1)) }
	return [][]byte{
		[]byte(base), []byte(anon),
		[]byte(" \n" + strings.ReplaceAll(base, ",", "\t,\r ") + " "),
		rep(agent, agent+`,"agent":null`),
		rep(agent, `"agent":null,`+agent),
		rep(agent, `"agent":""`),
		rep(agent, `"Agent":"01020000-0000-0000-0000-00000000000\u0030"`),
		rep(agent, `"agent":1`),
		rep(`"type":"auth_failure"`, `"type":""`),
		rep(`"type":"auth_failure"`, `"type":null`),
		rep(`"type":"auth_failure"`, `"\u0074ype":"d\u00e9cision\ud83d\ude00\udc00"`),
		rep(`"status":401`, `"status":0`),
		rep(`"status":401`, `"status":99`),
		rep(`"status":401`, `"status":401.5`),
		rep(`"status":401`, `"ſtatus":402,"status":null`),
		rep(`{"v":1,`, `{"x":[{"y":[true,false,null,-1.5E+2,"z"]}],"v":1,`),
		rep(`{"v":1,`, `{"v":1,"v":null,`),
		rep(`{"v":1,`, `{"v":"1",`),
		[]byte(base + ","), []byte(`{"v":1}`), []byte(`null`), []byte(``),
	}
}

func TestDecodeAuditMatchesReference(t *testing.T) {
	n := 0
	for _, data := range auditVariants() {
		checkSameAuditDecode(t, data)
		var a Audit
		if DecodeAudit(data, &a) == nil {
			n++
		}
	}
	if n < 8 {
		t.Fatalf("only %d variants decode", n)
	}
}

func TestDecodeAuditAllocs(t *testing.T) {
	b := sampleAudit().AppendJSON(nil)
	var a Audit
	if err := DecodeAudit(b, &a); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := DecodeAudit(b, &a); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per decode, want 0", n)
	}
}

// FuzzDecodeAuditDifferential: DecodeAudit accepts exactly what the
// encoding/json reference accepts, with the same record.
func FuzzDecodeAuditDifferential(f *testing.F) {
	for _, v := range auditVariants() {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAuditDecode(t, data)
		var a Audit
		if decodeAuditJSON(data, &a) == nil {
			checkSameAuditDecode(t, a.AppendJSON(nil))
		}
	})
}
