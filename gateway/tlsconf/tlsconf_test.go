package tlsconf

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

type certKey struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// makeCert makes a certificate for 127.0.0.1 with the given serial, signed by parent
// (self-signed when parent is nil).
func makeCert(t *testing.T, serial int64, isCA bool, parent *certKey, usage x509.ExtKeyUsage) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "caracal test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certKey{c, key, der}
}

func (ck *certKey) write(t *testing.T, certFile, keyFile string) {
	t.Helper()
	kd, err := x509.MarshalECPrivateKey(ck.key)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ck.der}))
}

func (ck *certKey) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{ck.der}, PrivateKey: ck.key}
}

func writeAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	srv      *Server
	addr     string
	certFile string
	keyFile  string
	roots    *x509.CertPool
}

func start(t *testing.T, opts Options, first *certKey) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), roots: x509.NewCertPool()}
	first.write(t, f.certFile, f.keyFile)
	f.roots.AddCert(first.cert)
	opts.CertFile, opts.KeyFile = f.certFile, f.keyFile
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		st := ctx.TLSConnectionState()
		if st != nil && len(st.VerifiedChains) > 0 {
			ctx.SetBodyString("client " + st.VerifiedChains[0][0].SerialNumber.String())
			return
		}
		ctx.SetBodyString("ok")
	}, CloseOnShutdown: true}
	go hs.Serve(tls.NewListener(ln, srv.Config())) //nolint:errcheck
	t.Cleanup(func() { _ = hs.Shutdown() })
	f.addr = ln.Addr().String()
	return f
}

func (f *fixture) dial(t *testing.T, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs = f.roots
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f.addr, cfg)
}

func serialOf(c *tls.Conn) int64 { return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64() }

// get sends one keep-alive request on c and returns the body.
func get(t *testing.T, c *tls.Conn, br *bufio.Reader) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("cannot write on the existing connection: %s", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("cannot read on the existing connection: %s", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

func TestReloadKeepsExistingConnections(t *testing.T) {
	f := start(t, Options{PollInterval: time.Hour}, makeCert(t, 1, true, nil, x509.ExtKeyUsageServerAuth))
	old, err := f.dial(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldBR := bufio.NewReader(old)
	if serialOf(old) != 1 || get(t, old, oldBR) != "ok" {
		t.Fatal("first connection")
	}
	if v := old.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %x, want TLS 1.3", v)
	}

	second := makeCert(t, 2, true, nil, x509.ExtKeyUsageServerAuth)
	f.roots.AddCert(second.cert)
	second.write(t, f.certFile, f.keyFile)
	if err := f.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh, err := f.dial(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := serialOf(fresh); got != 2 {
		t.Errorf("new handshake got serial %d, want 2", got)
	}
	if body := get(t, old, oldBR); body != "ok" || serialOf(old) != 1 {
		t.Errorf("existing connection: %q serial %d", body, serialOf(old))
	}

	// A bad file keeps the current certificate and reports the error.
	writeAtomic(t, f.certFile, []byte("not a certificate"))
	if err := f.srv.Reload(); err == nil {
		t.Fatal("bad certificate accepted")
	}
	reloads, fails, lastErr := f.srv.Stats()
	if reloads != 1 || fails != 1 || lastErr == nil {
		t.Errorf("stats: %d reloads, %d failures, last %v", reloads, fails, lastErr)
	}
	again, err := f.dial(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got := serialOf(again); got != 2 {
		t.Errorf("after a bad reload got serial %d, want 2", got)
	}
}

func TestReloadOnFileChange(t *testing.T) {
	f := start(t, Options{PollInterval: 20 * time.Millisecond}, makeCert(t, 1, true, nil, x509.ExtKeyUsageServerAuth))
	next := makeCert(t, 3, true, nil, x509.ExtKeyUsageServerAuth)
	f.roots.AddCert(next.cert)
	// Make sure the new files differ in mtime or size even on a coarse clock.
	time.Sleep(10 * time.Millisecond)
	next.write(t, f.certFile, f.keyFile)
	now := time.Now().Add(time.Second)
	_ = os.Chtimes(f.certFile, now, now)
	for i := 0; i < 500; i++ {
		if f.srv.Certificate().Leaf.SerialNumber.Int64() == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := f.dial(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := serialOf(c); got != 3 {
		t.Errorf("after the files changed got serial %d, want 3", got)
	}
}

func TestProtocolAndSuites(t *testing.T) {
	f := start(t, Options{PollInterval: time.Hour}, makeCert(t, 1, true, nil, x509.ExtKeyUsageServerAuth))
	if _, err := f.dial(t, &tls.Config{MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	if _, err := f.dial(t, &tls.Config{MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Error("a CBC suite accepted on TLS 1.2")
	}
	c, err := f.dial(t, &tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.ConnectionState(); st.Version != tls.VersionTLS12 || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("TLS 1.2 negotiated %x / %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
	}
}

func TestSessionTicketsRotate(t *testing.T) {
	f := start(t, Options{PollInterval: time.Hour}, makeCert(t, 1, true, nil, x509.ExtKeyUsageServerAuth))
	cache := tls.NewLRUClientSessionCache(4)
	resumed := func() bool {
		c, err := f.dial(t, &tls.Config{ClientSessionCache: cache, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().DidResume
	}
	if resumed() {
		t.Fatal("first connection resumed")
	}
	if !resumed() {
		t.Fatal("session ticket not accepted")
	}
	if err := f.srv.rotateTicketKey(); err != nil {
		t.Fatal(err)
	}
	if !resumed() {
		t.Error("a ticket under the previous key was refused")
	}
	for i := 0; i < ticketKeys; i++ {
		if err := f.srv.rotateTicketKey(); err != nil {
			t.Fatal(err)
		}
	}
	if resumed() {
		t.Error("a ticket under a retired key was accepted")
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := makeCert(t, 100, true, nil, x509.ExtKeyUsageClientAuth)
	caFile := filepath.Join(dir, "ca.pem")
	writeAtomic(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}))
	f := start(t, Options{PollInterval: time.Hour, ClientCAFile: caFile}, makeCert(t, 1, true, nil, x509.ExtKeyUsageServerAuth))

	client := makeCert(t, 101, false, ca, x509.ExtKeyUsageClientAuth)
	stranger := makeCert(t, 102, false, nil, x509.ExtKeyUsageClientAuth)
	cases := []struct {
		name string
		cert *certKey
		want string // body, "" when the handshake must fail
	}{
		{"no certificate (API key client)", nil, "ok"},
		{"certificate from the client CA", client, "client 101"},
		{"certificate from an unknown CA", stranger, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := &tls.Config{}
			if c.cert != nil {
				tc := c.cert.tlsCert()
				cfg.Certificates = []tls.Certificate{tc}
			}
			conn, err := f.dial(t, cfg)
			if err == nil {
				defer conn.Close()
			}
			body := ""
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, werr := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); werr == nil {
					if resp, rerr := http.ReadResponse(bufio.NewReader(conn), nil); rerr == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						body = string(b)
					}
				}
			}
			if body != c.want {
				t.Errorf("got %q (dial error %v), want %q", body, err, c.want)
			}
		})
	}
}

func TestNewFailsOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Options{CertFile: filepath.Join(dir, "none.crt"), KeyFile: filepath.Join(dir, "none.key")}); err == nil {
		t.Error("missing files accepted")
	}
}
