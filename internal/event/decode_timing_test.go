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

func benchmarkDecodeAudit(b *testing.B, decode func([]byte, *Audit) error) {
	data := sampleAudit().AppendJSON(nil)
	var a Audit
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := decode(data, &a); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAudit(b *testing.B) { benchmarkDecodeAudit(b, DecodeAudit) }

// BenchmarkDecodeAuditJSON is the encoding/json decoder it replaced.
func BenchmarkDecodeAuditJSON(b *testing.B) { benchmarkDecodeAudit(b, decodeAuditJSON) }
