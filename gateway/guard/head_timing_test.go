package guard

import "testing"

var sinkVerdict verdict

// BenchmarkCheckHead is the guard's check of a typical SDK request head, run
// before fasthttp parses it, on every request.
func BenchmarkCheckHead(b *testing.B) {
	head := []byte("POST /openai/v1/chat/completions HTTP/1.1\r\nHost: gateway.internal:8443\r\n" +
		"User-Agent: OpenAI/Python 1.52.0\r\nAccept: application/json\r\nAccept-Encoding: gzip, deflate\r\n" +
		"Content-Type: application/json\r\nAuthorization: Bearer crk_abcdefghijkl_0123456789abcdefghijklmnopqrstuv\r\n" +
		"X-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.52.0\r\nContent-Length: 183\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		sinkVerdict = checkHead(head, 100)
	}
	if sinkVerdict.status != 0 {
		b.Fatalf("the head was refused: %+v", sinkVerdict)
	}
}
