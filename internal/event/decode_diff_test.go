package event

import (
	"errors"
	"strings"
	"testing"
)

// checkSameDecode decodes data with DecodeMetering and with the encoding/json
// reference and fails unless both accept with the same event or both reject.
func checkSameDecode(t *testing.T, data []byte) {
	t.Helper()
	var got, want Metering
	// Dirty targets: the result must not depend on what e held before.
	got.Route, got.Model = append(got.Route, "stale"...), append(got.Model, "stale"...)
	got.NumAncestors, got.Ancestors[3], got.CostMicros = 5, UUID{7}, 99
	errGot := DecodeMetering(data, &got)
	errWant := decodeMeteringJSON(data, &want)
	if (errGot == nil) != (errWant == nil) {
		t.Fatalf("decoders disagree on %q:\nnew: %v\nold: %v", data, errGot, errWant)
	}
	if errGot != nil {
		if !errors.Is(errGot, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", errGot)
		}
		return
	}
	if !sameMetering(&got, &want) {
		t.Fatalf("decoders disagree on %q:\nnew: %+v\nold: %+v", data, got, want)
	}
}

func meteringVariants() [][]byte {
	e := sampleMetering()
	base := string(e.AppendJSON(nil))
	noAnc := *e
	noAnc.NumAncestors, noAnc.Root = 0, noAnc.Agent
	flat := string(noAnc.AppendJSON(nil))
	ts := `"ts_us":1780000000000123`
	anc := `"ancestors":["05000000-0000-0000-0000-000000000000","09090000-0000-0000-0000-000000000000"]`
	rep := func(old, new string) []byte { return []byte(strings.Replace(base, old, new, 1)) }
	return [][]byte{
		[]byte(base), []byte(flat),
		[]byte(" \t\r\n" + strings.ReplaceAll(strings.ReplaceAll(base, ",", " ,\n "), ":", "\t: ") + "\n "),
		rep(`{"v":1,`, `{"x":{"a":[1,2.5e-3,{"b":null}],"c":"\u00e9\ud83d\ude00"},"v":1,"zz":[],"yy":{},`),
		rep(`"route":"openai"`, `"route":"op\u0065n\/ai\ud83d\ude00\ud800x\udc00\u00e9\n\"\\"`),
		rep(`"route":"openai"`, `"route":"\ud800\u0041 é \xff\xed\xa0\x80"`),
		rep(`"route":"openai"`, `"route":""`),
		rep(`"route":"openai"`, `"route":null`),
		rep(`"route":"openai"`, `"route":"a","route":null`),
		rep(`"route":"openai"`, `"route":"a","ROUTE":"b"`),
		rep(`"route":"openai"`, `"Route":"b"`),
		rep(`"kind":"usage"`, `"\u212aind":"usage"`),
		rep(`"status":200`, `"\u017ftatus":200`),
		rep(`"status":200`, `"ſtatus":201`),
		rep(`"kind":"usage"`, `"kind":"u\u0073age"`),
		rep(`"kind":"usage"`, `"kind":"incomplete"`),
		rep(`"kind":"usage"`, `"kind":"Usage"`),
		rep(`"currency":"USD"`, `"currency":"\u0055SD"`),
		rep(`"currency":"USD"`, `"currency":"usd"`),
		rep(`"currency":"USD"`, `"currency":"USDX"`),
		rep(`"status":200`, `"status":200.0`),
		rep(`"status":200`, `"status":2e2`),
		rep(`"status":200`, `"status":null`),
		rep(`"status":200`, `"status":201,"status":null`),
		rep(`"status":200`, `"status":"200"`),
		rep(`"status":200`, `"status":-0`),
		rep(`"status":200`, `"status":0200`),
		rep(`"status":200`, `"status":200,"status":99999999999999999999`),
		rep(`"input_tokens":12`, `"input_tokens":9223372036854775807`),
		rep(`"input_tokens":12`, `"input_tokens":9223372036854775808`),
		rep(`"input_tokens":12`, `"input_tokens":-9223372036854775808`),
		rep(`"input_tokens":12`, `"input_tokens":18446744073709551616`),
		rep(`"input_tokens":12`, `"input_tokens":true`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_write_tokens":5,"cache_read_tokens":7`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_write_tokens":12`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_write_tokens":6,"cache_read_tokens":7`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_read_tokens":13`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_read_tokens":-1`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_write_tokens":-0,"cache_read_tokens":null`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_read_tokens":5,"cache_read_tokens":null`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_read_tokens":5,"cache_read_tokens":12`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_read_tokens":1.0`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_read_tokens":"1"`),
		rep(`"output_tokens":34`, `"output_tokens":34,"Cache_Write_Tokens":3,"CACHE_READ_TOKENS":4`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_write_toKens":3,"cache_read_tokenſ":4`),
		rep(`"output_tokens":34`, `"output_tokens":34,"cache_write_tokens_":3,"cache_write_tokenss":99`),
		rep(`"input_tokens":12`, `"input_tokens":9223372036854775807,"cache_write_tokens":9223372036854775807,"cache_read_tokens":9223372036854775807`),
		rep(`"input_tokens":12`, `"input_tokens":9223372036854775806,"cache_write_tokens":9223372036854775807,"cache_read_tokens":1`),
		rep(`"input_tokens":12`, `"input_tokens":9223372036854775806,"cache_write_tokens":4611686018427387903,"cache_read_tokens":4611686018427387903`),
		rep(`"cost_micros":56`, `"cost_micros":null`),
		rep(`"cost_micros":56`, `"cost_micros":56,"cost_micros":null`),
		rep(`"cost_micros":56`, `"cost_micros":null,"cost_micros":0`),
		rep(`{"v":1,`, `{"v":1,"v":null,`),
		rep(`{"v":1,`, `{"v":null,"v":1,`),
		rep(`{"v":1,`, `{"V":1,`),
		rep(`{"v":1,`, `{"v":1.0,`),
		rep(`{"v":1,`, `{"v":2,`),
		rep(`{"v":1,`, `{`),
		rep(ts, `"ts_us":0`),
		rep(ts, `"ts_us":1,"ts_us":null`),
		rep(anc, `"ancestors":null`),
		rep(anc, anc+`,"ancestors":[null,null]`),
		rep(anc, `"ancestors":["09090000-0000-0000-0000-000000000000","05000000-0000-0000-0000-000000000000"],"ancestors":["09090000-0000-0000-0000-000000000000"],"ancestors":[null,null]`),
		rep(anc, anc+`,"ancestors":[],"ancestors":[null,null]`),
		rep(anc, anc+`,"ancestors":null,"ancestors":[null,null]`),
		rep(anc, `"ancestors":["a","b","c","d","e","f","g","h","i"],`+anc),
		rep(anc, `"ancestors":["a","b","c","d","e","f","g","h"]`),
		rep(anc, `"ancestors":["05000000-0000-0000-0000-000000000000",1]`),
		rep(anc, `"ancestors":"x"`),
		rep(anc, `"ancestors":["\u0030\u0035000000-0000-0000-0000-000000000000","09090000-0000-0000-0000-000000000000"]`),
		rep(anc, anc+`,`),
		rep(`"pricing":"tokens"`, `"pricing":"per_request"`),
		rep(`"pricing":"tokens"`, `"pricing":"bogus"`),
		rep(`{"v":1,`, `{"x":`+strings.Repeat("[", 9999)+strings.Repeat("]", 9999)+`,"v":1,`),
		rep(`{"v":1,`, `{"x":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`,"v":1,`),
		rep(`{"v":1,`, `{"x":"a\u001fb","v":1,`),
		rep(`{"v":1,`, "{\"x\":\"a\x01b\",\"v\":1,"),
		rep(`{"v":1,`, `{"x":"\x","v":1,`),
		rep(`{"v":1,`, `{"x":tru,"v":1,`),
		rep(`{"v":1,`, `{"x":1.,"v":1,`),
		[]byte(base + "x"), []byte(base + " {}"), []byte(base[:len(base)-1]),
		[]byte(`null`), []byte(`[]`), []byte(`"x"`), []byte(``), []byte(`{}`), []byte(`{"v":1}`),
	}
}

func TestDecodeMeteringMatchesReference(t *testing.T) {
	for _, data := range meteringVariants() {
		checkSameDecode(t, data)
	}
}

// TestDecodeMeteringVariantsAccepted guards the table above: it must hold
// inputs that decode, not only rejections.
func TestDecodeMeteringVariantsAccepted(t *testing.T) {
	n := 0
	for _, data := range meteringVariants() {
		var e Metering
		if DecodeMetering(data, &e) == nil {
			n++
		}
	}
	if n < 20 {
		t.Fatalf("only %d variants decode", n)
	}
}

func TestDecodeMeteringEscapedRoute(t *testing.T) {
	b := []byte(strings.Replace(string(sampleMetering().AppendJSON(nil)), `"route":"openai"`, `"route":"a\u00e9\ud83d\ude00\ud800\/\"b"`, 1))
	var e Metering
	if err := DecodeMetering(b, &e); err != nil {
		t.Fatal(err)
	}
	if want := "a\u00e9\U0001F600\uFFFD/\"b"; string(e.Route) != want {
		t.Fatalf("route %q, want %q", e.Route, want)
	}
}

func TestDecodeMeteringAllocs(t *testing.T) {
	b := sampleMetering().AppendJSON(nil)
	var e Metering
	if err := DecodeMetering(b, &e); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := DecodeMetering(b, &e); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per decode, want 0", n)
	}
}

// FuzzDecodeMeteringDifferential: the hand-written decoder accepts exactly
// what the encoding/json reference accepts, with the same event.
func FuzzDecodeMeteringDifferential(f *testing.F) {
	for _, v := range meteringVariants() {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameDecode(t, data)
		// And on the encoder's output for whatever the reference decoded.
		var e Metering
		if decodeMeteringJSON(data, &e) == nil {
			checkSameDecode(t, e.AppendJSON(nil))
		}
	})
}
