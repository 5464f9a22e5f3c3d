package proxy

import (
	"net"
	"time"

	"github.com/caracal-gw/caracal/internal/rawconn"
)

// idleConn extends the read deadline before every Read, so the upstream may stream for
// as long as it keeps sending but may not stall for longer than idle. A deadline set by
// fasthttp itself (a request timeout) still applies: the earlier one wins.
type idleConn struct {
	net.Conn
	idle time.Duration
	hard time.Time
}

func (c *idleConn) Read(p []byte) (int, error) {
	d := time.Now().Add(c.idle)
	if !c.hard.IsZero() && c.hard.Before(d) {
		d = c.hard
	}
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.hard = t
	return nil
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.hard = t
	return c.Conn.SetWriteDeadline(t)
}

func idleDialer(dial func(string) (net.Conn, error), dialTimeout, idle time.Duration, raw bool) func(string) (net.Conn, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: dialTimeout}
		dial = func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) }
	}
	return func(addr string) (net.Conn, error) {
		c, err := dial(addr)
		if err != nil {
			return nil, err
		}
		if raw {
			c = rawconn.Wrap(c)
		}
		return &idleConn{Conn: c, idle: idle}, nil
	}
}
