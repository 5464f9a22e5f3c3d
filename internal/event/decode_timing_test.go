package event

import "testing"

func benchmarkDecode(b *testing.B, decode func([]byte, *Metering) error) {
	data := sampleMetering().AppendJSON(nil)
	var e Metering
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := decode(data, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMetering(b *testing.B) { benchmarkDecode(b, DecodeMetering) }

// BenchmarkDecodeMeteringJSON is the encoding/json decoder it replaced.
func BenchmarkDecodeMeteringJSON(b *testing.B) { benchmarkDecode(b, decodeMeteringJSON) }
