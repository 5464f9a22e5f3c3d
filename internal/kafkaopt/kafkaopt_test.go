package kafkaopt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/rawconn"
)

// TestRawDialerPlain: without TLS the broker connection is a raw socket.
func TestRawDialerPlain(t *testing.T) {
	ln := echoServer(t, nil)
	c, err := rawDialer(nil)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*rawconn.Conn); !ok {
		t.Fatalf("dialed %T, want *rawconn.Conn", c)
	}
	roundTrip(t, c)
}

// TestRawDialerTLS: with kafka.tls the handshake runs over the raw socket and
// verifies the broker's certificate against its host name.
func TestRawDialerTLS(t *testing.T) {
	cert, pool := selfSigned(t, "localhost")
	ln := echoServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	c, err := rawDialer(tc)(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	if err != nil {
		t.Fatalf("TLS dial with the right name: %v", err)
	}
	defer c.Close()
	if _, ok := c.(*tls.Conn); !ok {
		t.Fatalf("dialed %T, want *tls.Conn", c)
	}
	roundTrip(t, c)
	// The same certificate under another name must be refused.
	if c, err := rawDialer(tc)(context.Background(), "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("TLS dial to 127.0.0.1 accepted a certificate for localhost")
	}
	if tc.ServerName != "" {
		t.Fatalf("the dialer changed the shared config (ServerName %q)", tc.ServerName)
	}
}

func echoServer(t *testing.T, tc *tls.Config) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln
}

func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("metadata?")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 9)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "metadata?" {
		t.Fatalf("echo = %q, %v", b, err)
	}
}

func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: []string{name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
