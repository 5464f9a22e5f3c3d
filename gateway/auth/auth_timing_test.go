package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

var (
	sinkID     event.UUID
	sinkReason Reason
	sinkOK     bool
)

func BenchmarkParseCredential(b *testing.B) {
	authz := []byte("Bearer " + goodKey)
	b.ReportAllocs()
	for b.Loop() {
		_, _, sinkReason = ParseCredential(nil, authz)
	}
}

// BenchmarkAPIKeyVerify is the real path: prefix lookup, SHA-256 of the
// whole key, constant-time compare, revocation and expiry.
func BenchmarkAPIKeyVerify(b *testing.B) {
	v := testAPIKeyVerifier()
	key := []byte(goodKey)
	b.ReportAllocs()
	for b.Loop() {
		sinkID, sinkReason = v.Verify(key)
	}
}

// BenchmarkAPIKeyNaiveHashEqual is the twin with bytes.Equal instead of
// subtle.ConstantTimeCompare: the constant-time compare costs nothing
// measurable next to the hash.
func BenchmarkAPIKeyNaiveHashEqual(b *testing.B) {
	m := storedKeys()
	key := []byte(goodKey)
	b.ReportAllocs()
	for b.Loop() {
		k, ok := m[string(key[:APIKeyPrefixLen])]
		sum := sha256.Sum256(key)
		sinkOK = ok && bytes.Equal(sum[:], k.Hash[:])
	}
}

// BenchmarkAPIKeyNaivePlaintextMap is the floor: keys stored in plain text,
// one map lookup (what we must not do: a database leak would leak keys).
func BenchmarkAPIKeyNaivePlaintextMap(b *testing.B) {
	m := map[string]event.UUID{goodKey: agentA}
	key := []byte(goodKey)
	b.ReportAllocs()
	for b.Loop() {
		sinkID, sinkOK = m[string(key)]
	}
}

// BenchmarkJWTVerifyCached is the steady state: an agent presents the same
// token on every request, so after the first one Verify is a SHA-256 of the
// token and a map lookup (jwt_cache.go), whatever the algorithm; RS256 has
// the longest tokens, so the most to hash. bench-smoke requires 0 allocs/op.
func BenchmarkJWTVerifyCached(b *testing.B) {
	v := testVerifier(b)
	tok := []byte(signToken(b, hdr("RS256"), claimsFor(issRS), mustKeys(b).rsa))
	ctx := context.Background()
	_, sinkReason = v.Verify(ctx, tok) // fills the cache
	b.ReportAllocs()
	for b.Loop() {
		_, sinkReason = v.Verify(ctx, tok)
	}
	if sinkReason != ReasonOK {
		b.Fatal(sinkReason)
	}
}

// BenchmarkJWTVerifyUncached is the twin: the full verification every time
// (JSON into maps, base64, the signature), as for a token seen the first
// time.
func BenchmarkJWTVerifyUncached(b *testing.B) {
	k := mustKeys(b)
	v := testVerifierWith(b, func() time.Time { return testNow }, -1)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		token string
	}{
		{"RS256", signToken(b, hdr("RS256"), claimsFor(issRS), k.rsa)},
		{"ES256", signToken(b, hdr("ES256"), claimsFor(issES), k.ec)},
		{"EdDSA", signToken(b, hdr("EdDSA"), claimsFor(issED), k.ed)},
		{"HS256", signToken(b, hdr("HS256"), claimsFor(issHS), []byte(secret))},
	} {
		tok := []byte(c.token)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, sinkReason = v.Verify(ctx, tok)
			}
			if sinkReason != ReasonOK {
				b.Fatal(sinkReason)
			}
		})
	}
}

func BenchmarkVerifyCert(b *testing.B) {
	ca := newCA(b, "bench CA")
	c := ca.issue(b, 2, []string{"spiffe://caracal/agent/a"}, []string{"agent-a.test"}, x509.ExtKeyUsageClientAuth)
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		b.Fatal(err)
	}
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca.cert}}}
	for _, kind := range []control.MTLSKind{control.SANURI, control.SANDNS, control.FingerprintSHA256} {
		b.Run([...]string{control.SANURI: "uri", control.SANDNS: "dns", control.FingerprintSHA256: "fingerprint"}[kind], func(b *testing.B) {
			lookup := func(k control.MTLSKind, _ string) (event.UUID, bool) { return agentA, k == kind }
			b.ReportAllocs()
			for b.Loop() {
				sinkID, sinkReason = VerifyCert(cs, lookup)
			}
		})
	}
}
