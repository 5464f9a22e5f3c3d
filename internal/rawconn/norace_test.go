//go:build !race

package rawconn

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestNoAllocs: a write and a read on a ready connection allocate nothing
// (the gateway's hot path counts on it).
func TestNoAllocs(t *testing.T) {
	c, s := pair(t)
	out, in := []byte("ping pong ping pong"), make([]byte, 64)
	rt := func() {
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Read(in); err != nil {
			t.Fatal(err)
		}
	}
	rt()
	if n := testing.AllocsPerRun(1000, rt); n != 0 {
		t.Fatalf("write+read allocates %.1f times, want 0", n)
	}
}

// BenchmarkPingPong: one byte each way over loopback, raw against the Go
// runtime's ordinary socket I/O (the twin), in the same run.
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range []string{"raw", "net"} {
		b.Run(mode, func(b *testing.B) {
			c, s := pair(b)
			if mode == "net" {
				c, s = c.(*Conn).TCPConn, s.(*Conn).TCPConn
			}
			go func() {
				buf := make([]byte, 1)
				for {
					if _, err := s.Read(buf); err != nil {
						return
					}
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 1)
			b.ReportAllocs()
			var r0, r1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			// What the change is for: CPU time and thread switches of the
			// process per round trip (both ends are in it).
			cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(r1.Nvcsw+r1.Nivcsw-r0.Nvcsw-r0.Nivcsw)/float64(b.N), "ctxsw/op")
		})
	}
}

var _ net.Conn = (*Conn)(nil)
