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

	// The deadlines last set on the socket (zero: none), for coarse updates.
	rdl, wdl time.Time
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

// Deadline updates are coarse. A server or client that moves a deadline before
// every request (fasthttp does, for its read, write and idle timeouts) costs a
// runtime timer update each time; here a new deadline within a small slack of
// the one already set is skipped. The slack is 1/64 of the time left until the
// deadline, at most 100 ms, so a 30 s timeout may fire up to 100 ms early or
// late and a short one stays exact to within 1.6 %. Clearing a deadline, or
// moving it by more than the slack, always takes effect.
const maxSlack = 100 * time.Millisecond

func coarseSkip(cur, t time.Time) bool {
	if cur.IsZero() || t.IsZero() {
		return cur.IsZero() && t.IsZero()
	}
	left := time.Until(t)
	if left <= 0 {
		return false
	}
	slack := min(left/64, maxSlack)
	d := t.Sub(cur)
	return d < slack && d > -slack
}

// SetReadDeadline sets the read deadline, coarsely (see maxSlack).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if coarseSkip(c.rdl, t) {
		return nil
	}
	if err := c.TCPConn.SetReadDeadline(t); err != nil {
		return err
	}
	c.rdl = t
	return nil
}

// SetWriteDeadline sets the write deadline, coarsely (see maxSlack).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if coarseSkip(c.wdl, t) {
		return nil
	}
	if err := c.TCPConn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.wdl = t
	return nil
}

// SetDeadline sets both deadlines, coarsely (see maxSlack).
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
