package connlimit

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// serve accepts from l and keeps every accepted connection open until it is
// closed by the peer; it returns the accepted connections on a channel.
func serve(t *testing.T, l *Listener) chan net.Conn {
	t.Helper()
	acc := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(acc)
				return
			}
			acc <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return acc
}

func listen(t *testing.T, opt Options) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Wrap(ln, opt)
}

// closedByPeer reports whether c reads EOF (or a reset) within wait.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func TestPerAddrCap(t *testing.T) {
	tests := []struct {
		name           string
		opt            Options
		dial, accepted int
	}{
		{"per address", Options{PerAddr: 3, Total: 100}, 6, 3},
		{"total", Options{PerAddr: 100, Total: 2}, 5, 2},
		{"per address disabled", Options{PerAddr: -1, Total: 4}, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			rejected := 0
			tt.opt.OnReject = func(netip.Addr, bool) { mu.Lock(); rejected++; mu.Unlock() }
			l := listen(t, tt.opt)
			acc := serve(t, l)
			var conns []net.Conn
			for i := 0; i < tt.dial; i++ {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
			var kept []net.Conn
			for i := 0; i < tt.accepted; i++ {
				select {
				case c := <-acc:
					kept = append(kept, c)
				case <-time.After(5 * time.Second):
					t.Fatalf("accepted %d connections, want %d", i, tt.accepted)
				}
			}
			closed := 0
			for _, c := range conns {
				if closedByPeer(c, 300*time.Millisecond) {
					closed++
				}
			}
			if want := tt.dial - tt.accepted; closed != want {
				t.Fatalf("%d connections closed at accept, want %d", closed, want)
			}
			if got := l.Rejected.Load(); got != int64(tt.dial-tt.accepted) {
				t.Fatalf("Rejected = %d, want %d", got, tt.dial-tt.accepted)
			}
			mu.Lock()
			if rejected != tt.dial-tt.accepted {
				t.Fatalf("OnReject called %d times, want %d", rejected, tt.dial-tt.accepted)
			}
			mu.Unlock()
			// Closing one accepted connection frees its slot for a new one.
			kept[0].Close()
			kept[0].Close() // a second Close must not release twice
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case nc := <-acc:
				nc.Close()
			case <-time.After(5 * time.Second):
				t.Fatal("a freed slot was not reused")
			}
			total, from := l.Open(netip.MustParseAddr("127.0.0.1"))
			wantFrom := tt.accepted - 1
			if tt.opt.PerAddr < 0 {
				wantFrom = 0 // not tracked
			}
			if total != tt.accepted-1 || from != wantFrom {
				t.Fatalf("open total=%d from=%d, want %d and %d", total, from, tt.accepted-1, wantFrom)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.PerAddr != DefaultPerAddr || o.Total != DefaultTotal {
		t.Fatalf("defaults %+v", o)
	}
}

// TestPassThrough: bytes flow both ways through a limited connection.
func TestPassThrough(t *testing.T) {
	l := listen(t, Options{})
	acc := serve(t, l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-acc
	go func() { io.Copy(sc, sc); sc.Close() }()    //nolint:errcheck
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo %q %v", b, err)
	}
}
