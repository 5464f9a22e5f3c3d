package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t testing.TB, serial int64, uris []string, dns []string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns,
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake runs a real TLS handshake over loopback TCP and returns the
// server's view of the connection, or the server's handshake error.
func handshake(t *testing.T, server *tls.Config, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan error, 1)
	go func() {
		cc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			done <- err
			return
		}
		_ = cc.SetDeadline(deadline)
		cli := tls.Client(cc, client)
		err = cli.Handshake()
		if err == nil {
			// A TLS 1.3 client finishes before the server has checked its
			// certificate; reading waits for the server's verdict.
			_, err = cli.Read(make([]byte, 1))
		}
		cli.Close()
		done <- err
	}()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = sc.SetDeadline(deadline)
	srv := tls.Server(sc, server)
	err = srv.Handshake()
	if err == nil {
		_, _ = srv.Write([]byte{1})
	}
	cs := srv.ConnectionState()
	srv.Close()
	<-done
	return cs, err
}

func TestVerifyCertHandshake(t *testing.T) {
	ca, other := newCA(t, "caracal test CA"), newCA(t, "other CA")
	serverCert := ca.issue(t, 2, nil, []string{"gateway.test"}, x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	serverCfg := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}

	uriCert := ca.issue(t, 10, []string{"spiffe://caracal/agent/uri"}, []string{"unmapped.test"}, x509.ExtKeyUsageClientAuth)
	dnsCert := ca.issue(t, 11, []string{"spiffe://caracal/unmapped"}, []string{"agent-dns.caracal.test"}, x509.ExtKeyUsageClientAuth)
	fpCert := ca.issue(t, 12, nil, nil, x509.ExtKeyUsageClientAuth)
	unmapped := ca.issue(t, 13, []string{"spiffe://caracal/nobody"}, []string{"nobody.test"}, x509.ExtKeyUsageClientAuth)
	foreign := other.issue(t, 14, []string{"spiffe://caracal/agent/uri"}, nil, x509.ExtKeyUsageClientAuth)

	idURI, idDNS, idFP := event.UUID{1}, event.UUID{2}, event.UUID{3}
	ids := map[control.MTLSKind]map[string]event.UUID{
		control.SANURI:            {"spiffe://caracal/agent/uri": idURI},
		control.SANDNS:            {"agent-dns.caracal.test": idDNS},
		control.FingerprintSHA256: {Fingerprint(fpCert.Certificate[0]): idFP},
	}
	lookup := func(kind control.MTLSKind, v string) (event.UUID, bool) {
		id, ok := ids[kind][v]
		return id, ok
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	clientCfg := func(c *tls.Certificate) *tls.Config {
		cfg := &tls.Config{RootCAs: roots, ServerName: "gateway.test"}
		if c != nil {
			cfg.Certificates = []tls.Certificate{*c}
		}
		return cfg
	}
	cases := []struct {
		name string
		cert *tls.Certificate
		want event.UUID
		r    Reason
	}{
		{"URI SAN", &uriCert, idURI, ReasonOK},
		{"DNS SAN", &dnsCert, idDNS, ReasonOK},
		{"fingerprint", &fpCert, idFP, ReasonOK},
		{"unmapped", &unmapped, event.UUID{}, ReasonUnknownCert},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs, err := handshake(t, serverCfg, clientCfg(c.cert))
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			id, r := VerifyCert(&cs, lookup)
			if id != c.want || r != c.r {
				t.Fatalf("got (%v, %s), want (%v, %s)", id, r, c.want, c.r)
			}
		})
	}
	t.Run("certificate of another CA", func(t *testing.T) {
		if _, err := handshake(t, serverCfg, clientCfg(&foreign)); err == nil {
			t.Fatal("handshake accepted a certificate of another CA")
		}
	})
	t.Run("no certificate", func(t *testing.T) {
		if _, err := handshake(t, serverCfg, clientCfg(nil)); err == nil {
			t.Fatal("handshake accepted a client without certificate")
		}
	})
	t.Run("no certificate, optional client auth", func(t *testing.T) {
		opt := serverCfg.Clone()
		opt.ClientAuth = tls.VerifyClientCertIfGiven
		cs, err := handshake(t, opt, clientCfg(nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, r := VerifyCert(&cs, lookup); r != ReasonNoClientCert {
			t.Fatalf("got %s", r)
		}
	})
	t.Run("unverified certificate", func(t *testing.T) {
		// A server misconfigured to take any certificate: VerifyCert must
		// still refuse one that no chain verified.
		anyCert := serverCfg.Clone()
		anyCert.ClientAuth = tls.RequireAnyClientCert
		anyCert.ClientCAs = nil // else the client only offers certificates of the named CAs
		cs, err := handshake(t, anyCert, clientCfg(&foreign))
		if err != nil {
			t.Fatal(err)
		}
		if _, r := VerifyCert(&cs, lookup); r != ReasonUnknownCert {
			t.Fatalf("got %s", r)
		}
	})
	if _, r := VerifyCert(nil, lookup); r != ReasonNoClientCert {
		t.Fatalf("nil state: %s", r)
	}
}
