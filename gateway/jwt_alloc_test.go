package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/store"
)

const (
	testJWTIssuer   = "https://idp.test"
	testJWTAudience = "caracal"
	jwtHitMetric    = `caracal_jwt_cache_requests_total{result="hit"}`
)

// TestSteadyStateJWTRequestAllocatesNothing is the allocation test with an
// agent presenting the same JWT on every request: after the first request
// the token is verified from the cache, and the whole request allocates
// nothing, as with an API key.
func TestSteadyStateJWTRequestAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	s := allocStack(t)
	pub, priv := newEd25519(t)
	s.addJWTIssuer(t, pub)
	tok := signJWT(t, priv, s.bot, time.Now().Add(time.Hour))
	s.waitJWTAccepted(t, tok)
	hits := s.metric(t, jwtHitMetric)
	assertRequestAllocatesNothing(t, s, "Bearer "+tok)
	if got := s.metric(t, jwtHitMetric) - hits; got < 5000 {
		t.Fatalf("%d of 5000 requests verified their token from the cache", got)
	}
}

// TestGatewayJWTCacheKeepsPolicyAndIssuerChecks: a token verified from the
// cache still meets the policy checks that follow authentication (a disabled
// agent or ancestor is refused at once), and a change of the issuer's keys
// or the issuer's removal (NOTIFY) refuses a cached token at once.
func TestGatewayJWTCacheKeepsPolicyAndIssuerChecks(t *testing.T) {
	s := newStack(t, 5_000_000)
	ctx := context.Background()
	pubA, privA := newEd25519(t)
	pubB, privB := newEd25519(t)
	s.addJWTIssuer(t, pubA)
	bot, err := store.GetAgent(ctx, s.db, s.bot)
	if err != nil || bot.ParentID == "" {
		t.Fatalf("the test agent has no parent: %+v %v", bot, err)
	}
	org := bot.ParentID
	tokA := signJWT(t, privA, s.bot, time.Now().Add(time.Hour))
	tokB := signJWT(t, privB, s.bot, time.Now().Add(time.Hour))
	s.waitJWTAccepted(t, tokA)

	expect := func(step, tok string, status int, code string) {
		t.Helper()
		resp, body := s.post(t, "/openai/chat/completions", tok, chatBody)
		if resp.StatusCode != status || !strings.Contains(string(body), code) {
			t.Fatalf("%s: %d %s, want %d %s", step, resp.StatusCode, body, status, code)
		}
	}
	expectHit := func(step, tok string, status int, code string) {
		t.Helper()
		hits := s.metric(t, jwtHitMetric)
		expect(step, tok, status, code)
		if s.metric(t, jwtHitMetric) == hits {
			t.Fatalf("%s: the token was not verified from the cache", step)
		}
	}
	change := func(step string, f func() error) {
		t.Helper()
		applied := s.rg.listenerApplied()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		s.waitNotified(t, applied, step+": the change notification")
	}
	setActive := func(agent string, active bool) func() error {
		return func() error { _, err := store.SetAgentStatus(ctx, s.db, agent, active); return err }
	}

	expectHit("cached", tokA, 200, "")
	change("disable the agent", setActive(s.bot, false))
	expectHit("agent disabled", tokA, 403, "agent_disabled")
	change("enable the agent", setActive(s.bot, true))
	expectHit("agent enabled again", tokA, 200, "")
	change("disable the parent", setActive(org, false))
	expectHit("parent disabled", tokA, 403, "agent_disabled")
	change("enable the parent", setActive(org, true))
	expectHit("parent enabled again", tokA, 200, "")

	change("replace the issuer's key", func() error {
		_, err := s.db.Exec(ctx, `UPDATE jwt_issuers SET public_keys = $1 WHERE issuer = $2`, pemOf(t, pubB), testJWTIssuer)
		return err
	})
	expect("token of the removed key", tokA, 401, "bad_signature")
	expect("token of the new key", tokB, 200, "")
	expectHit("token of the new key, cached", tokB, 200, "")
	change("remove the issuer", func() error {
		_, err := s.db.Exec(ctx, `DELETE FROM jwt_issuers WHERE issuer = $1`, testJWTIssuer)
		return err
	})
	expect("issuer removed", tokB, 401, "wrong_issuer")
}

// addJWTIssuer trusts testJWTIssuer with EdDSA key pub and waits for the
// notification.
func (s *stack) addJWTIssuer(t *testing.T, pub ed25519.PublicKey) {
	t.Helper()
	applied := s.rg.listenerApplied()
	if _, err := store.AddJWTIssuer(context.Background(), s.db, store.JWTIssuerSpec{Issuer: testJWTIssuer, Algorithms: []string{"EdDSA"},
		Audiences: []string{testJWTAudience}, PublicKeysPEM: pemOf(t, pub), AgentClaim: "sub"}); err != nil {
		t.Fatal(err)
	}
	s.waitNotified(t, applied, "the issuer notification")
}

// waitJWTAccepted sends tok until it is accepted (bounded).
func (s *stack) waitJWTAccepted(t *testing.T, tok string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, body := s.post(t, "/openai/chat/completions", tok, chatBody)
		if resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the JWT was never accepted: %d %s", resp.StatusCode, body)
		}
	}
}

func newEd25519(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func pemOf(t *testing.T, pub ed25519.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// signJWT is a compact EdDSA JWS from testJWTIssuer naming agent in sub.
func signJWT(t *testing.T, priv ed25519.PrivateKey, agent string, exp time.Time) string {
	t.Helper()
	return signJWTKid(t, priv, "", agent, exp)
}

// signJWTKid is signJWT with a kid in the header (none when kid is empty).
func signJWTKid(t *testing.T, priv ed25519.PrivateKey, kid, agent string, exp time.Time) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	hdr := map[string]any{"alg": "EdDSA", "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	input := seg(hdr) + "." + seg(map[string]any{
		"iss": testJWTIssuer, "aud": testJWTAudience, "sub": agent, "exp": exp.Unix(), "iat": time.Now().Add(-time.Minute).Unix(),
	})
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input)))
}
