// Package rawconn wraps TCP connections so that their reads and writes are
// made as raw system calls on the non-blocking socket, still waiting in the Go
// netpoller when the socket is not ready.
//
// Why: the Go runtime brackets every ordinary system call with
// entersyscall/exitsyscall. With one P (GOMAXPROCS=1, the way a gateway is
// measured and often deployed), a socket write that lasts longer than a
// sysmon tick (20 µs; a loopback or virtio write that delivers the segment can)
// lets sysmon retake the P and hand it to another thread, and every syscall
// made after an idle spell wakes sysmon from its deep sleep and sets it
// polling every 20 µs again. Each of those is a kernel context switch on the
// gateway's own core — on a virtual machine the dominant per-request cost
// (see BENCHMARKS.md, "Where a Go proxy's CPU goes"). Reads and writes on a
// non-blocking socket never block, so they do not need the syscall bracket:
// made raw, they keep the P on the running thread and leave sysmon asleep.
//
// Deadlines, Close and addresses are those of the wrapped *net.TCPConn: the
// wait for readiness goes through syscall.RawConn, which honours the
// connection's deadlines and wakes on Close.
package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a TCP connection with raw reads and writes. Like any net.Conn its
// methods may be called from several goroutines at once.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// rmu and wmu hold the arguments of one Read or Write at a time; dmu
	// the deadline cache.
	rmu, wmu, dmu sync.Mutex

	// The read and write operations, bound once so that a call allocates
	// nothing, and their arguments and results.
	readFn, writeFn func(uintptr) bool
	rbuf            []byte
	rn              int
	rerr            error
	wbuf            []byte
	wn              int
	werr            error

	// The read and write deadlines, wanted and armed on the socket.
	rdl, wdl deadline
}

// Wrap returns c with raw reads and writes when it is a *net.TCPConn, else c.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	x := &Conn{TCPConn: tc, rc: rc}
	x.readFn = x.read
	x.writeFn = x.write
	return x
}

// Listener wraps every accepted TCP connection of ln.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Read reads up to len(p) bytes, waiting in the netpoller while none are ready.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	for err != nil && c.early(err, true) {
		err = c.rc.Read(c.readFn)
	}
	n, rerr := c.rn, c.rerr
	c.rbuf, c.rerr = nil, nil
	c.rmu.Unlock()
	if err != nil {
		return 0, c.opError("read", err)
	}
	if rerr != nil && rerr != io.EOF {
		return n, c.opError("read", rerr)
	}
	return n, rerr
}

// Write writes all of p, waiting in the netpoller while the send buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	for err != nil && c.early(err, false) {
		err = c.rc.Write(c.writeFn)
	}
	n, werr := c.wn, c.werr
	c.wbuf, c.werr = nil, nil
	c.wmu.Unlock()
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// Deadlines are lazy. A server or client that moves a deadline before every
// request (fasthttp does, alternating its idle and read timeouts, and again for
// its write timeout) would cost a runtime timer update each time. Here the
// socket keeps the deadline it has (armed) while the one set last (want) is
// later: when the armed one fires, the waiting Read or Write sees that want is
// still ahead, arms it and waits on. A deadline earlier than the armed one, or
// the first one, is armed at once. So a deadline takes effect exactly when it
// is due — never early, never late — and a steady keep-alive connection
// touches its timers once per timeout period instead of twice per request.
type deadline struct {
	want, armed time.Time // zero: none
}

// set records t and reports whether the socket must be given it now.
func (d *deadline) set(t time.Time) bool {
	d.want = t
	return !t.IsZero() && (d.armed.IsZero() || t.Before(d.armed))
}

// SetReadDeadline sets the read deadline (lazily, see deadline).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !c.rdl.set(t) {
		return nil
	}
	return c.arm(&c.rdl, true)
}

// SetWriteDeadline sets the write deadline (lazily, see deadline).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !c.wdl.set(t) {
		return nil
	}
	return c.arm(&c.wdl, false)
}

// arm gives the socket d.want; dmu is held.
func (c *Conn) arm(d *deadline, read bool) error {
	var err error
	if read {
		err = c.TCPConn.SetReadDeadline(d.want)
	} else {
		err = c.TCPConn.SetWriteDeadline(d.want)
	}
	if err != nil {
		return err
	}
	d.armed = d.want
	return nil
}

// early reports whether err, returned by a wait on the socket, is an armed
// deadline firing before the one wanted; if so the wanted one is armed (or the
// deadline cleared) and the caller waits again.
func (c *Conn) early(err error, read bool) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	d := &c.wdl
	if read {
		d = &c.rdl
	}
	if !d.want.IsZero() && !time.Now().Before(d.want) {
		return false
	}
	return c.arm(d, read) == nil
}

// exact gives the socket the wanted deadlines before an operation that does
// not go through Read or Write (ReadFrom, WriteTo).
func (c *Conn) exact() error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !c.rdl.want.Equal(c.rdl.armed) {
		if err := c.arm(&c.rdl, true); err != nil {
			return err
		}
	}
	if !c.wdl.want.Equal(c.wdl.armed) {
		return c.arm(&c.wdl, false)
	}
	return nil
}

// ReadFrom is the embedded connection's (splice, sendfile) under the wanted
// deadlines.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.exact(); err != nil {
		return 0, err
	}
	return c.TCPConn.ReadFrom(r)
}

// WriteTo is the embedded connection's under the wanted deadlines.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if err := c.exact(); err != nil {
		return 0, err
	}
	return c.TCPConn.WriteTo(w)
}

// SetDeadline sets both deadlines (lazily, see deadline).
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn = int(n)
			if n == 0 {
				c.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = os.NewSyscallError("read", e)
			return true
		}
	}
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		rest := c.wbuf[c.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// opError shapes err like the errors of net.TCPConn (a *net.OpError whose
// Timeout() is true after a deadline, net.ErrClosed after Close).
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: mapClosed(err)}
}

func mapClosed(err error) error {
	// internal/poll's ErrNetClosing is what RawConn returns after Close; net
	// reports it as net.ErrClosed, which errors.Is understands.
	if err != nil && err.Error() == "use of closed network connection" {
		return net.ErrClosed
	}
	return err
}
