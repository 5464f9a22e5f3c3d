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
	"syscall"
	"unsafe"
)

// Conn is a TCP connection with raw reads and writes. It is not safe for
// concurrent Reads (nor for concurrent Writes), like the net.Conn it wraps is
// in practice; one reader and one writer at a time are fine.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The read and write operations, bound once so that a call allocates
	// nothing, and their arguments and results.
	readFn, writeFn func(uintptr) bool
	rbuf            []byte
	rn              int
	rerr            error
	wbuf            []byte
	wn              int
	werr            error
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
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n, rerr := c.rn, c.rerr
	c.rbuf, c.rerr = nil, nil
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
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n, werr := c.wn, c.werr
	c.wbuf, c.werr = nil, nil
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
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
