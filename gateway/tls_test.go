package gateway

import (
	"bufio"
	"context"
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
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/store"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) issue(t *testing.T, serial int64, dns []string, uris []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if len(dns) > 0 {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestGatewayTLSAndMTLS: TLS 1.2+ only, an agent authenticated by its client
// certificate (URI SAN), certificate reload without dropping connections,
// and the smuggling guard in front of the parser.
func TestGatewayTLSAndMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, 2, []string{"localhost"}, nil, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, 3, nil, []string{"spiffe://caracal.test/bot"}, x509.ExtKeyUsageClientAuth)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile, caFile := write("tls.crt", srvCert), write("tls.key", srvKey), write("ca.crt", ca.pem)
	testConfigure = func(c *config.Config) {
		c.Gateway.Plaintext, c.Gateway.CertFile, c.Gateway.KeyFile, c.Gateway.ClientCAFile = false, certFile, keyFile, caFile
	}
	defer func() { testConfigure = nil }()
	s := newStack(t, 5_000_000)
	if _, err := store.AddMTLSIdentity(context.Background(), s.db, s.bot, "san_uri", "spiffe://caracal.test/bot"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if tb := s.rg.GW.cache.Tables(); tb != nil && len(tb.Identities) == 1 {
			break
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	pair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + s.rg.Addr
	mtlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	plainClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(c *http.Client, key string) int {
		req, _ := http.NewRequest("POST", base+"/openai/chat/completions", strings.NewReader(chatBody))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := do(mtlsClient, ""); st != 200 {
		t.Fatalf("client certificate mapped to an agent: %d, want 200", st)
	}
	if st := do(plainClient, ""); st != 401 {
		t.Fatalf("no certificate, no key: %d, want 401", st)
	}
	if st := do(plainClient, s.key); st != 200 {
		t.Fatalf("API key over TLS without a client certificate: %d, want 200", st)
	}

	// TLS 1.1 is refused.
	if _, err := tls.Dial("tcp", s.rg.Addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}

	// Reload: a kept-alive connection goes on, a new one sees the new serial.
	kept, err := tls.Dial("tcp", s.rg.Addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	newCert, newKey := ca.issue(t, 99, []string{"localhost"}, nil, x509.ExtKeyUsageServerAuth)
	write("tls.crt", newCert)
	write("tls.key", newKey)
	if err := s.rg.TLS.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh, err := tls.Dial("tcp", s.rg.Addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := fresh.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 99 {
		t.Fatalf("after reload a new connection sees serial %d, want 99", got)
	}
	if _, err := kept.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(kept).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 ") {
		t.Fatalf("the kept connection broke on reload: %q %v", line, err)
	}

	// Request smuggling: Content-Length with Transfer-Encoding → 400 and closed.
	sm, err := tls.Dial("tcp", s.rg.Addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	sm.Write([]byte("POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")) //nolint:errcheck
	sm.SetReadDeadline(time.Now().Add(10 * time.Second))                                                                                      //nolint:errcheck
	all, _ := io.ReadAll(sm)
	if !strings.HasPrefix(string(all), "HTTP/1.1 400") {
		t.Fatalf("CL+TE request answered %q", all)
	}
}

// TestGatewayLimits: oversized headers get 431 and oversized bodies 413.
func TestGatewayLimits(t *testing.T) {
	testConfigure = func(c *config.Config) { c.Gateway.MaxRequestBody = 64 << 10 }
	defer func() { testConfigure = nil }()
	s := newStack(t, 5_000_000)
	raw := func(req string) string {
		c, err := net.Dial("tcp", s.rg.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
		c.Write([]byte(req))                            //nolint:errcheck
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	big := strings.Repeat("a", 20<<10)
	if line := raw("GET /openai/x HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n"); !strings.HasPrefix(line, "HTTP/1.1 431") {
		t.Fatalf("oversized header answered %q", line)
	}
	body := strings.Repeat("b", 65<<10)
	if line := raw("POST /openai/x HTTP/1.1\r\nHost: x\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body); !strings.HasPrefix(line, "HTTP/1.1 413") {
		t.Fatalf("oversized body answered %q", line)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
