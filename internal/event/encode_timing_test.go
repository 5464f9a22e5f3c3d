package event

import "testing"

var sinkBytes []byte

// BenchmarkAppendJSON is the gateway's encoding of one metering event into a
// reused buffer (once per request).
func BenchmarkAppendJSON(b *testing.B) {
	e := sampleMetering()
	buf := e.AppendJSON(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
	sinkBytes = buf
}
