package gateway

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/store"
)

// TestGatewayJWKSRefreshedOnSchedule: the gateway fetches its issuers' JWKS
// again every gateway.jwksRefresh, so a key the identity provider removed
// stops being trusted within that interval — even for a token the gateway has
// verified before and holds in its token cache (whose entries live up to 60 s,
// longer than this test waits), and although nothing in the control tables
// changed.
func TestGatewayJWKSRefreshedOnSchedule(t *testing.T) {
	testConfigure = func(c *config.Config) { c.Gateway.JWKSRefresh = config.Duration(200 * time.Millisecond) }
	t.Cleanup(func() { testConfigure = nil })
	s := newStack(t, 5_000_000)
	pubA, privA := newEd25519(t)
	pubB, privB := newEd25519(t)
	var jwks atomic.Value
	jwks.Store(jwkSet(t, map[string]ed25519.PublicKey{"key-a": pubA}))
	var fetches atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks.Load().([]byte))
	}))
	t.Cleanup(idp.Close)

	applied := s.rg.listenerApplied()
	if _, err := store.AddJWTIssuer(context.Background(), s.db, store.JWTIssuerSpec{Issuer: testJWTIssuer, Algorithms: []string{"EdDSA"},
		Audiences: []string{testJWTAudience}, JWKSURL: idp.URL + "/jwks.json", AgentClaim: "sub"}); err != nil {
		t.Fatal(err)
	}
	s.waitNotified(t, applied, "the issuer notification")
	tokA := signJWTKid(t, privA, "key-a", s.bot, time.Now().Add(time.Hour))
	tokB := signJWTKid(t, privB, "key-b", s.bot, time.Now().Add(time.Hour))
	s.waitJWTAccepted(t, tokA)
	if resp, body := s.post(t, "/openai/chat/completions", tokA, chatBody); resp.StatusCode != 200 {
		t.Fatalf("key-a token, second request: %d %s", resp.StatusCode, body)
	}

	// The identity provider rotates: key-a is gone, key-b is new. No table
	// changes, no unknown kid in the tokens sent: only the schedule can tell.
	jwks.Store(jwkSet(t, map[string]ed25519.PublicKey{"key-b": pubB}))
	before := fetches.Load()
	var status int
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var resp *http.Response
		resp, body = s.post(t, "/openai/chat/completions", tokA, chatBody)
		status = resp.StatusCode
		if status == 401 || time.Now().After(deadline) {
			break
		}
	}
	if status != 401 || !strings.Contains(string(body), "unknown_kid") {
		t.Fatalf("a token of the removed key after the JWKS rotation: %d %s (JWKS fetched %d times since), want 401 unknown_kid",
			status, body, fetches.Load()-before)
	}
	if fetches.Load() == before {
		t.Fatal("the JWKS was not fetched again")
	}
	if resp, body := s.post(t, "/openai/chat/completions", tokB, chatBody); resp.StatusCode != 200 {
		t.Fatalf("a token of the new key: %d %s", resp.StatusCode, body)
	}
}

func jwkSet(t *testing.T, keys map[string]ed25519.PublicKey) []byte {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for kid, pub := range keys {
		set.Keys = append(set.Keys, map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
			"x": base64.RawURLEncoding.EncodeToString(pub)})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
