package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

const issJWKS = "https://jwks.example"

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	raw, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	e := base64.RawURLEncoding.EncodeToString
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": e(raw[1:33]), "y": e(raw[33:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": base64.RawURLEncoding.EncodeToString(k)}
}

// jwksServer serves whatever body and status it is told, counting requests.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	status int
	hits   atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, keys ...map[string]any) {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	s.serveRaw(status, b)
}

func (s *jwksServer) serveRaw(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func TestJWKSRotationAndFailures(t *testing.T) {
	k := mustKeys(t)
	_, ed2, err := ed25519GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t)
	srv.serve(200, ecJWK("key-a", &k.ec.PublicKey))
	clock := newFakeClock(testNow)
	v, err := NewJWTVerifier([]control.JWTIssuer{{
		Issuer: issJWKS, Algorithms: []string{"ES256", "EdDSA"}, Audiences: []string{aud},
		JWKSURL: srv.URL, AgentClaim: "agent", Leeway: 30 * time.Second,
	}}, JWTOptions{Now: clock.Now, JWKSMinGap: 30 * time.Second, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	verify := func(hdr map[string]any, key any) Reason {
		_, r := v.Verify(ctx, []byte(signToken(t, hdr, claimsFor(issJWKS), key)))
		return r
	}
	expect := func(step string, got, want Reason, hits int64) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: got %s, want %s", step, got, want)
		}
		if h := srv.hits.Load(); h != hits {
			t.Fatalf("%s: %d JWKS fetches, want %d", step, h, hits)
		}
	}

	expect("first token fetches the set", verify(hdr("ES256", "kid", "key-a"), k.ec), ReasonOK, 1)
	expect("cached", verify(hdr("ES256", "kid", "key-a"), k.ec), ReasonOK, 1)
	expect("single key, no kid", verify(hdr("ES256"), k.ec), ReasonOK, 1)

	srv.serve(200, ecJWK("key-a", &k.ec.PublicKey), edJWK("key-b", ed2.Public().(ed25519.PublicKey)))
	expect("new kid within the gap is not fetched", verify(hdr("EdDSA", "kid", "key-b"), ed2), ReasonUnknownKid, 1)
	clock.Advance(31 * time.Second)
	expect("new kid after the gap is fetched", verify(hdr("EdDSA", "kid", "key-b"), ed2), ReasonOK, 2)
	expect("bogus kid right after is not fetched", verify(hdr("EdDSA", "kid", "zzz"), ed2), ReasonUnknownKid, 2)
	expect("two keys, no kid", verify(hdr("EdDSA"), ed2), ReasonUnknownKid, 2)
	expect("kid of an EdDSA key with ES256", verify(hdr("ES256", "kid", "key-b"), k.ec), ReasonAlgNotAllowed, 2)

	srv.serveRaw(500, []byte("down"))
	clock.Advance(31 * time.Second)
	if err := v.Refresh(ctx); err == nil {
		t.Fatal("refresh against a failing JWKS reported success")
	}
	expect("old keys kept after a failed refresh", verify(hdr("ES256", "kid", "key-a"), k.ec), ReasonOK, 3)
	clock.Advance(31 * time.Second)
	expect("unknown kid during the outage", verify(hdr("EdDSA", "kid", "key-c"), ed2), ReasonUnknownKid, 4)
	expect("old keys still kept", verify(hdr("EdDSA", "kid", "key-b"), ed2), ReasonOK, 4)

	for _, body := range []string{`{"keys":[]}`, `not json`, `{"keys":[{"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"}]}`, strings.Repeat(" ", maxJWKSBytes+1)} {
		srv.serveRaw(200, []byte(body))
		if err := v.Refresh(ctx); err == nil {
			t.Fatalf("refresh accepted body %.40q", body)
		}
	}
	expect("old keys kept after bad bodies", verify(hdr("ES256", "kid", "key-a"), k.ec), ReasonOK, 8)
}

func TestJWKSNeverFetched(t *testing.T) {
	srv := newJWKSServer(t)
	srv.serveRaw(503, nil)
	k := mustKeys(t)
	v, err := NewJWTVerifier([]control.JWTIssuer{{Issuer: issJWKS, Algorithms: []string{"ES256"}, Audiences: []string{aud}, JWKSURL: srv.URL, AgentClaim: "agent"}},
		JWTOptions{Now: func() time.Time { return testNow }, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []map[string]any{hdr("ES256"), hdr("ES256", "kid", "a")} {
		if _, r := v.Verify(context.Background(), []byte(signToken(t, h, claimsFor(issJWKS), k.ec))); r != ReasonKeyUnavailable {
			t.Fatalf("header %v: got %s, want %s", h, r, ReasonKeyUnavailable)
		}
	}
	if h := srv.hits.Load(); h != 1 {
		t.Fatalf("%d fetches, want 1 (the second within the rate limit)", h)
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	k := mustKeys(t)
	good := ecJWK("good", &k.ec.PublicKey)
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for key, val := range good {
			m[key] = val
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	rsa := map[string]any{"kty": "RSA", "kid": "rsa", "alg": "RS256", "n": bigB64(k.rsa.N), "e": "AQAB"}
	doc := map[string]any{"keys": []map[string]any{
		good, rsa,
		with("kid", ""),                    // no kid
		with("kid", "enc", "use", "enc"),   // encryption key
		with("kid", "alg", "alg", "RS256"), // alg disagrees with type
		with("kid", "p384", "crv", "P-384"),
		with("kid", "offcurve", "y", base64.RawURLEncoding.EncodeToString(make([]byte, 32))),
		{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, // symmetric keys never come from a JWKS
		{"kty": "RSA", "kid": "even-e", "n": bigB64(k.rsa.N), "e": "Ag"},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys["good"] == nil || keys["rsa"] == nil {
		t.Fatalf("kept %d keys: %v", len(keys), keys)
	}
}

func TestJWKSRunRefreshesAndStops(t *testing.T) {
	srv := newJWKSServer(t)
	k := mustKeys(t)
	srv.serve(200, ecJWK("a", &k.ec.PublicKey))
	v, err := NewJWTVerifier([]control.JWTIssuer{{Issuer: issJWKS, Algorithms: []string{"ES256"}, Audiences: []string{aud}, JWKSURL: srv.URL}},
		JWTOptions{JWKSRefresh: 10 * time.Millisecond, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { v.Run(ctx); close(stopped) }()
	deadline := time.Now().Add(10 * time.Second)
	for srv.hits.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-stopped
	if srv.hits.Load() < 3 {
		t.Fatalf("Run fetched %d times in 10 s", srv.hits.Load())
	}
}
