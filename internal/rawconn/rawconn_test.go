package rawconn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pair returns a connected client and server, both wrapped.
func pair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln = Listener(ln)
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	client = Wrap(c)
	if _, ok := client.(*Conn); !ok {
		t.Fatalf("Wrap(%T) = %T, want *Conn", c, client)
	}
	if _, ok := r.c.(*Conn); !ok {
		t.Fatalf("Listener accepted %T, want *Conn", r.c)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe) = %T, want the pipe itself", got)
	}
}

// TestLargeTransferBothWays sends more than the socket buffers hold in both
// directions at once, so writes meet EAGAIN and wait in the poller, and checks
// every byte.
func TestLargeTransferBothWays(t *testing.T) {
	c, s := pair(t)
	const size = 16 << 20
	mk := func(seed uint64) []byte {
		b := make([]byte, size)
		r := rand.New(rand.NewPCG(seed, seed))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	up, down := mk(1), mk(2)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	got := make([][]byte, 2)
	send := func(conn net.Conn, b []byte) {
		defer wg.Done()
		// Odd-sized chunks, so reads and writes do not line up.
		for off := 0; off < len(b); {
			n := min(len(b)-off, 70001)
			w, err := conn.Write(b[off : off+n])
			if err != nil || w != n {
				errs <- errors.Join(err, errors.New("short write"))
				return
			}
			off += n
		}
	}
	recv := func(conn net.Conn, i int) {
		defer wg.Done()
		buf := make([]byte, 0, size)
		tmp := make([]byte, 33333)
		for len(buf) < size {
			n, err := conn.Read(tmp)
			buf = append(buf, tmp[:n]...)
			if err != nil {
				errs <- err
				return
			}
		}
		got[i] = buf
	}
	wg.Add(4)
	go send(c, up)
	go send(s, down)
	go recv(s, 0)
	go recv(c, 1)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if sha256.Sum256(got[0]) != sha256.Sum256(up) || sha256.Sum256(got[1]) != sha256.Sum256(down) {
		t.Fatal("bytes received differ from bytes sent")
	}
}

func TestEOFWhenPeerCloses(t *testing.T) {
	c, s := pair(t)
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	b, err := io.ReadAll(s)
	if err != nil || string(b) != "last words" {
		t.Fatalf("ReadAll = %q, %v; want the bytes then EOF", b, err)
	}
	n, err := s.Read(make([]byte, 8))
	if n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	_, s := pair(t)
	if err := s.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := s.Read(make([]byte, 8))
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %d, %v; want a timeout net.Error", n, err)
	}
	// A past deadline fails at once, before any system call.
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second Read = %v, want the deadline error again", err)
	}
	// Clearing it makes the connection usable again.
	if err := s.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
}

func TestWriteDeadlineWhenPeerDoesNotRead(t *testing.T) {
	c, _ := pair(t)
	if err := c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	var err error
	// The peer never reads: the socket buffers fill and a write must time out.
	for i := 0; i < 1024 && err == nil; i++ {
		_, err = c.Write(chunk)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that does not read = %v, want a deadline error", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	_, s := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the reader park; the test holds either way
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed connection = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked 10 s after Close")
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

func TestWriteToResetPeerFails(t *testing.T) {
	c, s := pair(t)
	// Linger 0: closing sends RST, so the next writes see ECONNRESET/EPIPE.
	if err := s.(*Conn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write([]byte("after reset"))
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if err == nil || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a reset peer = %v, want a *net.OpError from write", err)
	}
}

// TestTLSOverRawConn runs a TLS 1.3 exchange over wrapped connections, the way
// the gateway stacks crypto/tls on rawconn.
func TestTLSOverRawConn(t *testing.T) {
	c, s := pair(t)
	cert := selfSigned(t)
	srv := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	cli := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) // #nosec G402 -- test against its own self-signed certificate
	msg := bytes.Repeat([]byte("caracal "), 50000)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(srv, buf); err != nil {
			errc <- err
			return
		}
		_, err := srv.Write(buf)
		errc <- err
	}()
	if _, err := cli.Write(msg); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(cli, back); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, msg) {
		t.Fatal("TLS echo differs")
	}
}

// TestLazyDeadlines: a later deadline waits until the armed one fires; an
// earlier one, the first one, is armed at once; the alternation fasthttp makes
// before every request arms nothing.
func TestLazyDeadlines(t *testing.T) {
	now := time.Now()
	var d deadline
	if !d.set(now.Add(30 * time.Second)) {
		t.Error("the first deadline was not armed")
	}
	d.armed = d.want
	if d.set(now.Add(60*time.Second)) || d.set(now.Add(31*time.Second)) || d.set(time.Time{}) {
		t.Error("a later deadline, or clearing one, was armed at once")
	}
	if !d.set(now.Add(time.Second)) {
		t.Error("an earlier deadline was not armed at once")
	}
	d.armed = d.want
	for i := 1; i <= 100; i++ {
		at := now.Add(time.Duration(i) * time.Millisecond)
		if d.set(at.Add(60*time.Second)) || d.set(at.Add(30*time.Second)) {
			t.Fatalf("request %d: the idle/read alternation armed the socket", i)
		}
	}
}

// TestEarlierDeadlineHolds: a far deadline, then a near one: the near one holds.
func TestEarlierDeadlineHolds(t *testing.T) {
	_, s := pair(t)
	if err := s.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := time.Now().Add(30 * time.Millisecond)
	if err := s.SetReadDeadline(want); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 1))
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v, want the deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shortened deadline did not take effect within 10 s")
	}
}

// TestLaterDeadlineIsNotEarly: a near deadline, then a later one (left
// lazily on the socket): the read fails only once the later one is due, and
// never at the near one.
func TestLaterDeadlineIsNotEarly(t *testing.T) {
	_, s := pair(t)
	if err := s.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	want := time.Now().Add(150 * time.Millisecond)
	if err := s.SetReadDeadline(want); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want the deadline error", err)
	}
	if at := time.Now(); at.Before(want) {
		t.Fatalf("the read failed %v before its deadline", want.Sub(at))
	}
}

// TestMovedAndClearedDeadlinesLetDataThrough: after the armed deadline has
// passed, a read under a later deadline, or none, still gets its data.
func TestMovedAndClearedDeadlinesLetDataThrough(t *testing.T) {
	for _, later := range []time.Duration{time.Hour, 0} {
		c, s := pair(t)
		if err := s.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		var next time.Time
		if later > 0 {
			next = time.Now().Add(later)
		}
		if err := s.SetReadDeadline(next); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(50 * time.Millisecond) // past the first deadline
			c.Write([]byte("x"))              //nolint:errcheck
		}()
		buf := make([]byte, 1)
		if n, err := s.Read(buf); err != nil || n != 1 || buf[0] != 'x' {
			t.Fatalf("later=%v: Read = %d, %v; want the byte sent after the first deadline", later, n, err)
		}
		// And once more, with the socket's deadline long expired.
		go c.Write([]byte("y")) //nolint:errcheck
		if n, err := s.Read(buf); err != nil || n != 1 || buf[0] != 'y' {
			t.Fatalf("later=%v: second Read = %d, %v", later, n, err)
		}
	}
}

// TestWriteUnderMovedDeadline: a write blocked on a full send buffer outlives
// an armed deadline that was moved later, and completes once the peer reads.
func TestWriteUnderMovedDeadline(t *testing.T) {
	c, s := pair(t)
	if err := c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 16<<20) // more than the socket buffers hold
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // the write is blocked past the first deadline
	if err := s.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, rerr := io.CopyN(io.Discard, s, int64(len(msg)))
	if err := <-errc; err != nil {
		t.Fatalf("Write = %v, want success under the later deadline", err)
	}
	if rerr != nil {
		t.Fatalf("the peer read %v", rerr)
	}
}

// TestReadFromUsesTheWantedDeadline: ReadFrom (the embedded connection's)
// runs under the deadline set last, not the one left on the socket.
func TestReadFromUsesTheWantedDeadline(t *testing.T) {
	c, s := pair(t)
	if err := c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	msg := []byte("through ReadFrom")
	if n, err := c.(io.ReaderFrom).ReadFrom(bytes.NewReader(msg)); err != nil || n != int64(len(msg)) {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(s, back); err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("peer read %q, %v", back, err)
	}
}
