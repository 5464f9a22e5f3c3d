// Package connlimit caps the connections a listener keeps open, per client
// address and in total. A connection over either cap is closed right after
// accept, before any byte is read from it (and before a TLS handshake when the
// limiter is wrapped around the TCP listener).
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Defaults for Options fields left zero. The per-address default leaves
// room for the load tiers (up to 1024 connections from one load generator)
// while one address still cannot take the whole total.
const (
	DefaultPerAddr = 1024
	DefaultTotal   = 10000
)

// Options are the caps; zero takes the default, a negative value disables
// that cap.
type Options struct {
	// PerAddr is the most open connections from one client IP address.
	PerAddr int
	// Total is the most open connections overall.
	Total int
	// OnReject, when set, is called for each connection closed at accept
	// (perAddr reports which cap it hit). It must not block.
	OnReject func(addr netip.Addr, perAddr bool)
}

func (o Options) withDefaults() Options {
	if o.PerAddr == 0 {
		o.PerAddr = DefaultPerAddr
	}
	if o.Total == 0 {
		o.Total = DefaultTotal
	}
	return o
}

// Listener is a net.Listener that enforces Options.
type Listener struct {
	net.Listener
	opt Options

	total atomic.Int64
	// Rejected counts connections closed at accept because of a cap.
	Rejected atomic.Int64

	mu     sync.Mutex
	byAddr map[netip.Addr]int
}

// Wrap returns ln with the caps of opt.
func Wrap(ln net.Listener, opt Options) *Listener {
	return &Listener{Listener: ln, opt: opt.withDefaults(), byAddr: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the caps; excess connections
// are closed and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteIP(c)
		if perAddr, ok := l.acquire(addr); !ok {
			_ = c.Close()
			l.Rejected.Add(1)
			if l.opt.OnReject != nil {
				l.opt.OnReject(addr, perAddr)
			}
			continue
		}
		return &conn{Conn: c, l: l, addr: addr}, nil
	}
}

// Open reports the open connections in total and from addr.
func (l *Listener) Open(addr netip.Addr) (total, fromAddr int) {
	l.mu.Lock()
	n := l.byAddr[addr.Unmap()]
	l.mu.Unlock()
	return int(l.total.Load()), n
}

func (l *Listener) acquire(addr netip.Addr) (perAddr, ok bool) {
	if l.opt.Total > 0 && l.total.Add(1) > int64(l.opt.Total) {
		l.total.Add(-1)
		return false, false
	} else if l.opt.Total <= 0 {
		l.total.Add(1)
	}
	if l.opt.PerAddr <= 0 {
		return false, true
	}
	l.mu.Lock()
	n := l.byAddr[addr]
	if n >= l.opt.PerAddr {
		l.mu.Unlock()
		l.total.Add(-1)
		return true, false
	}
	l.byAddr[addr] = n + 1
	l.mu.Unlock()
	return false, true
}

func (l *Listener) release(addr netip.Addr) {
	l.total.Add(-1)
	if l.opt.PerAddr <= 0 {
		return
	}
	l.mu.Lock()
	if n := l.byAddr[addr]; n <= 1 {
		delete(l.byAddr, addr)
	} else {
		l.byAddr[addr] = n - 1
	}
	l.mu.Unlock()
}

// remoteIP is the connection's peer IP (IPv4-mapped IPv6 unmapped); the zero
// Addr for non-IP connections, which then share one bucket.
func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// conn releases its slot once, on the first Close.
type conn struct {
	net.Conn
	l      *Listener
	addr   netip.Addr
	closed atomic.Bool
}

func (c *conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.addr)
	}
	return c.Conn.Close()
}
