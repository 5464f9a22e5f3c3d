package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/config"
)

// issueRSA returns a server certificate with an RSA key signed by ca, so that
// the RSA key-exchange and ECDHE-RSA suites can be negotiated at all.
func (ca *testCA) issueRSA(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// accepted is one protocol version and cipher suite a server negotiated.
type accepted struct {
	version string // "TLSv1.2" style
	suite   string // IANA (Go) or OpenSSL name
}

// weakReason says why a negotiated version and suite is weak, or "" when it
// is TLS 1.3, or TLS 1.2 with an ECDHE key exchange and an AEAD cipher.
func weakReason(a accepted) string {
	switch a.version {
	case "TLSv1.3":
		return "" // every TLS 1.3 suite is AEAD with (EC)DHE
	case "TLSv1.2":
	default:
		return "protocol " + a.version
	}
	s := strings.ToUpper(a.suite)
	if !strings.Contains(s, "GCM") && !strings.Contains(s, "CHACHA20") && !strings.Contains(s, "CCM") {
		return "non-AEAD cipher " + a.suite
	}
	if !strings.HasPrefix(s, "ECDHE-") && !strings.HasPrefix(s, "TLS_ECDHE_") {
		return "non-ECDHE key exchange " + a.suite
	}
	return ""
}

var tlsVersionNames = map[uint16]string{
	0x0300 /* SSL 3.0 */ : "SSLv3", tls.VersionTLS10: "TLSv1.0", tls.VersionTLS11: "TLSv1.1", tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3",
}

// goScan tries a handshake with every protocol version and every cipher
// suite crypto/tls knows, insecure ones included, and returns what the
// server accepted. SSLv3 cannot be offered by crypto/tls; sslscan covers it.
func goScan(t *testing.T, addr string) []accepted {
	t.Helper()
	var out []accepted
	try := func(cfg *tls.Config) (uint16, uint16, bool) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			return 0, 0, false
		}
		st := c.ConnectionState()
		c.Close()
		return st.Version, st.CipherSuite, true
	}
	suites := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12} {
		for _, s := range suites {
			if !slices.Contains(s.SupportedVersions, v) {
				continue
			}
			// A scan, not a client: the certificate is not what is tested.
			cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v, CipherSuites: []uint16{s.ID}} // #nosec G402 -- scanner
			if gv, gs, ok := try(cfg); ok {
				out = append(out, accepted{tlsVersionNames[gv], tls.CipherSuiteName(gs)})
			}
		}
	}
	if gv, gs, ok := try(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); ok { // #nosec G402 -- scanner
		out = append(out, accepted{tlsVersionNames[gv], tls.CipherSuiteName(gs)})
	}
	return out
}

type sslscanDoc struct {
	Tests []struct {
		Protocols []struct {
			Type    string `xml:"type,attr"`
			Version string `xml:"version,attr"`
			Enabled string `xml:"enabled,attr"`
		} `xml:"protocol"`
		Ciphers []struct {
			Status  string `xml:"status,attr"`
			Version string `xml:"sslversion,attr"`
			Cipher  string `xml:"cipher,attr"`
		} `xml:"cipher"`
	} `xml:"ssltest"`
}

// sslscan runs sslscan against addr and returns the enabled protocols and
// accepted suites; ok is false when sslscan is not installed.
func sslscan(t *testing.T, addr string) (protocols []string, out []accepted, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("sslscan")
	if err != nil {
		return nil, nil, false
	}
	cmd := exec.Command(bin, "--no-colour", "--xml=-", addr)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("sslscan %s: %v\n%s", addr, err, b)
	}
	var doc sslscanDoc
	if err := xml.Unmarshal(b, &doc); err != nil || len(doc.Tests) != 1 {
		t.Fatalf("cannot parse the sslscan report (%v):\n%s", err, b)
	}
	for _, p := range doc.Tests[0].Protocols {
		if p.Enabled == "1" {
			name := "TLSv" + p.Version
			if p.Type == "ssl" {
				name = "SSLv" + p.Version
			}
			protocols = append(protocols, name)
		}
	}
	for _, c := range doc.Tests[0].Ciphers {
		out = append(out, accepted{c.Version, c.Cipher})
	}
	return protocols, out, true
}

// weaknesses scans addr with both scanners and lists every weak protocol or
// suite accepted; scanned says which scanners ran.
func weaknesses(t *testing.T, addr string) (weak []string, scanned []string, n int) {
	t.Helper()
	all := goScan(t, addr)
	scanned = append(scanned, "crypto/tls")
	protocols, more, ok := sslscan(t, addr)
	if ok {
		scanned = append(scanned, "sslscan")
		all = append(all, more...)
		for _, p := range protocols {
			if p != "TLSv1.2" && p != "TLSv1.3" {
				weak = append(weak, "sslscan: protocol "+p+" enabled")
			}
		}
	}
	for _, a := range all {
		if r := weakReason(a); r != "" {
			weak = append(weak, a.version+" "+a.suite+": "+r)
		}
	}
	return weak, scanned, len(all)
}

// TestTLSScanDetectsWeakServer: the scanners find the weak protocols and
// suites of a deliberately weak server, so a clean gateway scan means
// something.
func TestTLSScanDetectsWeakServer(t *testing.T) {
	t.Setenv("GODEBUG", "tls10server=1,tlsrsakex=1,tls3des=1")
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issueRSA(t, 7)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		ids = append(ids, s.ID)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, CipherSuites: ids}) // #nosec G402 -- the weak server under test
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	weak, scanned, _ := weaknesses(t, ln.Addr().String())
	joined := strings.Join(weak, "\n")
	for _, want := range []string{"TLSv1.0 ", "TLSv1.1 ", "non-AEAD", "non-ECDHE", "RC4"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("scanners %v missed %q on a weak server; found:\n%s", scanned, want, joined)
		}
	}
	if _, _, ok := sslscan(t, ln.Addr().String()); ok && !strings.Contains(joined, "sslscan: protocol TLSv1.0 enabled") {
		t.Fatalf("sslscan missed TLS 1.0 on a weak server:\n%s", joined)
	}
}

// TestGatewayTLSScan: the gateway, with an RSA and then (after reload) an
// ECDSA certificate, accepts only TLS 1.2+ with ECDHE and AEAD suites.
func TestGatewayTLSScan(t *testing.T) {
	if _, err := exec.LookPath("sslscan"); err != nil {
		t.Logf("sslscan is not installed (apt-get install -y sslscan): the crypto/tls scan alone runs")
	}
	dir := t.TempDir()
	ca := newTestCA(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rsaCert, rsaKey := ca.issueRSA(t, 2)
	certFile, keyFile := write("tls.crt", rsaCert), write("tls.key", rsaKey)
	testConfigure = func(c *config.Config) {
		c.Gateway.Plaintext, c.Gateway.CertFile, c.Gateway.KeyFile = false, certFile, keyFile
	}
	defer func() { testConfigure = nil }()
	s := newStack(t, 5_000_000)
	for _, kind := range []string{"RSA", "ECDSA"} {
		if kind == "ECDSA" {
			c, k := ca.issue(t, 3, []string{"localhost"}, nil, x509.ExtKeyUsageServerAuth)
			write("tls.crt", c)
			write("tls.key", k)
			if err := s.rg.TLS.Reload(); err != nil {
				t.Fatal(err)
			}
		}
		weak, scanned, n := weaknesses(t, s.rg.Addr)
		t.Logf("%s certificate: %d accepted protocol/suite pairs seen by %v", kind, n, scanned)
		if n == 0 {
			t.Fatalf("%s certificate: no handshake succeeded at all", kind)
		}
		if len(weak) > 0 {
			t.Fatalf("%s certificate: the gateway accepts weak TLS:\n%s", kind, strings.Join(weak, "\n"))
		}
	}
}
