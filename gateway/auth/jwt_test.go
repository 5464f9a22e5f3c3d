package auth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

const (
	issRS  = "https://rs.example"
	issRS2 = "https://rs2.example"
	issES  = "https://es.example"
	issED  = "https://ed.example"
	issHS  = "https://hs.example"
	issMix = "https://mix.example"
	aud    = "caracal-gateway"
	secret = "0123456789abcdef0123456789abcdef-test-secret"
)

func testIssuers(t testing.TB) []control.JWTIssuer {
	k := mustKeys(t)
	base := func(iss string, algs ...string) control.JWTIssuer {
		return control.JWTIssuer{Issuer: iss, Algorithms: algs, Audiences: []string{"other", aud}, AgentClaim: "agent", Leeway: 30 * time.Second}
	}
	rs := base(issRS, "RS256")
	rs.PublicKeysPEM = pemOf(t, &k.rsa.PublicKey, nil)
	rs2 := base(issRS2, "RS256")
	rs2.PublicKeysPEM = pemOf(t, &k.rsa2.PublicKey, map[string]string{"kid": "rs2-key"})
	es := base(issES, "ES256")
	es.PublicKeysPEM = pemOf(t, &k.ec.PublicKey, nil)
	ed := base(issED, "EdDSA")
	ed.PublicKeysPEM = pemOf(t, k.ed.Public(), nil)
	hs := base(issHS, "HS256")
	hs.HMACSecretRef = "env:TEST_JWT_SECRET"
	mix := base(issMix, "RS256", "HS256")
	mix.PublicKeysPEM = rs.PublicKeysPEM
	mix.HMACSecretRef = hs.HMACSecretRef
	return []control.JWTIssuer{rs, rs2, es, ed, hs, mix}
}

func testVerifier(t testing.TB) *JWTVerifier {
	t.Helper()
	return testVerifierWith(t, func() time.Time { return testNow }, 0)
}

// testVerifierWith is testVerifier on clock now with a token cache of
// cacheSize entries (0: the default, negative: none).
func testVerifierWith(t testing.TB, now func() time.Time, cacheSize int) *JWTVerifier {
	t.Helper()
	v, err := NewJWTVerifier(testIssuers(t), JWTOptions{
		Now:            now,
		Getenv:         func(string) string { return secret },
		TokenCacheSize: cacheSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func claimsFor(iss string, edits ...func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss":   iss,
		"sub":   "user-1",
		"agent": "agent-7",
		"aud":   aud,
		"exp":   testNow.Add(time.Hour).Unix(),
		"iat":   testNow.Add(-time.Minute).Unix(),
		"nbf":   testNow.Add(-time.Minute).Unix(),
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func set(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
func del(k string) func(map[string]any)        { return func(m map[string]any) { delete(m, k) } }

func hdr(alg string, kv ...any) map[string]any {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i].(string)] = kv[i+1]
	}
	return h
}

func TestJWTAccepts(t *testing.T) {
	k := mustKeys(t)
	v := testVerifier(t)
	rsKid := thumb(t, &k.rsa.PublicKey)
	cases := []struct {
		name  string
		token string
	}{
		{"RS256 with thumbprint kid", signToken(t, hdr("RS256", "kid", rsKid), claimsFor(issRS), k.rsa)},
		{"RS256 without kid, single key", signToken(t, hdr("RS256"), claimsFor(issRS), k.rsa)},
		{"RS256 with PEM header kid", signToken(t, hdr("RS256", "kid", "rs2-key"), claimsFor(issRS2), k.rsa2)},
		{"ES256", signToken(t, hdr("ES256", "kid", thumb(t, &k.ec.PublicKey)), claimsFor(issES), k.ec)},
		{"EdDSA", signToken(t, hdr("EdDSA"), claimsFor(issED), k.ed)},
		{"HS256", signToken(t, hdr("HS256"), claimsFor(issHS), []byte(secret))},
		{"HS256 on a mixed issuer", signToken(t, hdr("HS256"), claimsFor(issMix), []byte(secret))},
		{"aud array", signToken(t, hdr("RS256"), claimsFor(issRS, set("aud", []string{"x", aud})), k.rsa)},
		{"expired within leeway", signToken(t, hdr("RS256"), claimsFor(issRS, set("exp", testNow.Add(-29*time.Second).Unix())), k.rsa)},
		{"nbf within leeway", signToken(t, hdr("RS256"), claimsFor(issRS, set("nbf", testNow.Add(29*time.Second).Unix())), k.rsa)},
		{"fractional exp", signToken(t, hdr("RS256"), claimsFor(issRS, set("exp", float64(testNow.Unix())+0.5)), k.rsa)},
		{"jku header is ignored", signToken(t, hdr("RS256", "jku", "https://evil.example/jwks"), claimsFor(issRS), k.rsa)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, r := v.Verify(context.Background(), []byte(c.token))
			if r != ReasonOK {
				t.Fatalf("got %s, want ok", r)
			}
			if cl.Agent != "agent-7" || cl.Subject != "user-1" || cl.Issuer == "" {
				t.Fatalf("claims %+v", cl)
			}
		})
	}
}

type jwtCase struct {
	name  string
	token string
	want  Reason
}

func TestJWTAttacks(t *testing.T) {
	v := testVerifier(t)
	_, cases := jwtAttacks(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, r := v.Verify(context.Background(), []byte(c.token)); r != c.want {
				t.Fatalf("got %s, want %s", r, c.want)
			}
		})
	}
}

// jwtAttacks returns a valid RS256 token of issRS (the one most attacks are
// made from) and the attacks with the reason each must be refused for.
func jwtAttacks(t testing.TB) (string, []jwtCase) {
	k := mustKeys(t)
	rsPEM := []byte(pemOf(t, &k.rsa.PublicKey, nil))
	rsDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	good := signToken(t, hdr("RS256"), claimsFor(issRS), k.rsa)
	parts := strings.Split(good, ".")
	esInput := seg(hdr("ES256")) + "." + seg(claimsFor(issES))
	attackerJWK := map[string]any{"kty": "RSA", "n": bigB64(k.attacker.N), "e": "AQAB"}
	noneTok := func(alg string) string { return seg(hdr(alg)) + "." + seg(claimsFor(issRS)) + "." }
	cases := []jwtCase{
		{"empty", "", ReasonMissing},
		{"alg none", noneTok("none"), ReasonAlgNotAllowed},
		{"alg None", noneTok("None"), ReasonAlgNotAllowed},
		{"alg NONE", noneTok("NONE"), ReasonAlgNotAllowed},
		{"alg nOnE", noneTok("nOnE"), ReasonAlgNotAllowed},
		{"alg none with a signature", signToken(t, hdr("none"), claimsFor(issRS), k.rsa), ReasonAlgNotAllowed},
		{"alg rs256 lower case", signToken(t, hdr("rs256"), claimsFor(issRS), k.rsa), ReasonAlgNotAllowed},
		{"alg HS512", signToken(t, hdr("HS512"), claimsFor(issHS), []byte(secret)), ReasonAlgNotAllowed},
		{"alg member in upper case only", signToken(t, map[string]any{"ALG": "RS256"}, claimsFor(issRS), k.rsa), ReasonMalformed},
		{"RS/HS confusion, PEM as secret, RS-only issuer", signToken(t, hdr("HS256"), claimsFor(issRS), rsPEM), ReasonAlgNotAllowed},
		{"RS/HS confusion, PEM as secret, mixed issuer", signToken(t, hdr("HS256"), claimsFor(issMix), rsPEM), ReasonBadSignature},
		{"RS/HS confusion, DER as secret, mixed issuer", signToken(t, hdr("HS256"), claimsFor(issMix), rsDER), ReasonBadSignature},
		{"ES256 token to an RS256 issuer", signToken(t, hdr("ES256"), claimsFor(issRS), k.ec), ReasonAlgNotAllowed},
		{"stripped signature", parts[0] + "." + parts[1] + ".", ReasonBadSignature},
		{"tampered payload", parts[0] + "." + seg(claimsFor(issRS, set("agent", "root"))) + "." + parts[2], ReasonBadSignature},
		{"tampered header", seg(hdr("RS256", "x", 1)) + "." + parts[1] + "." + parts[2], ReasonBadSignature},
		{"HS256 wrong secret", signToken(t, hdr("HS256"), claimsFor(issHS), []byte(secret+"x")), ReasonBadSignature},
		{"expired beyond leeway", signToken(t, hdr("RS256"), claimsFor(issRS, set("exp", testNow.Add(-31*time.Second).Unix())), k.rsa), ReasonExpiredToken},
		{"nbf beyond leeway", signToken(t, hdr("RS256"), claimsFor(issRS, set("nbf", testNow.Add(31*time.Second).Unix())), k.rsa), ReasonNotYetValid},
		{"iat in the future beyond leeway", signToken(t, hdr("RS256"), claimsFor(issRS, set("iat", testNow.Add(time.Hour).Unix())), k.rsa), ReasonNotYetValid},
		{"no exp", signToken(t, hdr("RS256"), claimsFor(issRS, del("exp")), k.rsa), ReasonMissingClaim},
		{"exp as a string", signToken(t, hdr("RS256"), claimsFor(issRS, set("exp", "tomorrow")), k.rsa), ReasonMalformed},
		{"wrong aud", signToken(t, hdr("RS256"), claimsFor(issRS, set("aud", "someone-else")), k.rsa), ReasonWrongAudience},
		{"wrong aud array", signToken(t, hdr("RS256"), claimsFor(issRS, set("aud", []string{"a", "b"})), k.rsa), ReasonWrongAudience},
		{"no aud", signToken(t, hdr("RS256"), claimsFor(issRS, del("aud")), k.rsa), ReasonWrongAudience},
		{"aud as a number", signToken(t, hdr("RS256"), claimsFor(issRS, set("aud", 7)), k.rsa), ReasonWrongAudience},
		{"unknown iss", signToken(t, hdr("RS256"), claimsFor("https://evil.example"), k.rsa), ReasonWrongIssuer},
		{"no iss", signToken(t, hdr("RS256"), claimsFor(issRS, del("iss")), k.rsa), ReasonWrongIssuer},
		{"iss of another issuer, its kid", signToken(t, hdr("RS256", "kid", "rs2-key"), claimsFor(issRS), k.rsa2), ReasonUnknownKid},
		{"iss of another issuer, no kid", signToken(t, hdr("RS256"), claimsFor(issRS), k.rsa2), ReasonBadSignature},
		{"no agent claim", signToken(t, hdr("RS256"), claimsFor(issRS, del("agent")), k.rsa), ReasonMissingClaim},
		{"agent claim not a string", signToken(t, hdr("RS256"), claimsFor(issRS, set("agent", 42)), k.rsa), ReasonMissingClaim},
		{"unknown kid", signToken(t, hdr("RS256", "kid", "nope"), claimsFor(issRS), k.rsa), ReasonUnknownKid},
		{"kid path traversal", signToken(t, hdr("RS256", "kid", "../../../../dev/null"), claimsFor(issRS), k.rsa), ReasonUnknownKid},
		{"kid SQL", signToken(t, hdr("RS256", "kid", "x' UNION SELECT 'secret' --"), claimsFor(issRS), k.rsa), ReasonUnknownKid},
		{"kid NUL", signToken(t, hdr("RS256", "kid", "a\x00b"), claimsFor(issRS), k.rsa), ReasonUnknownKid},
		{"kid too long", signToken(t, hdr("RS256", "kid", strings.Repeat("k", 300)), claimsFor(issRS), k.rsa), ReasonUnknownKid},
		{"kid empty", signToken(t, hdr("RS256", "kid", ""), claimsFor(issRS), k.rsa), ReasonUnknownKid},
		{"kid not a string", signToken(t, hdr("RS256", "kid", 7), claimsFor(issRS), k.rsa), ReasonUnknownKid},
		{"kid of the HMAC secret", signToken(t, hdr("HS256", "kid", "../secret"), claimsFor(issRS), []byte(secret)), ReasonAlgNotAllowed},
		{"embedded jwk, attacker key", signToken(t, hdr("RS256", "jwk", attackerJWK), claimsFor(issRS), k.attacker), ReasonBadSignature},
		{"embedded jwk with its thumbprint kid", signToken(t, hdr("RS256", "jwk", attackerJWK, "kid", thumb(t, &k.attacker.PublicKey)), claimsFor(issRS), k.attacker), ReasonUnknownKid},
		{"jku to attacker keys", signToken(t, hdr("RS256", "jku", "https://evil.example/jwks.json"), claimsFor(issRS), k.attacker), ReasonBadSignature},
		{"x5u to attacker cert", signToken(t, hdr("RS256", "x5u", "https://evil.example/c.pem"), claimsFor(issRS), k.attacker), ReasonBadSignature},
		{"crit header", signToken(t, hdr("RS256", "crit", []string{"exp"}), claimsFor(issRS), k.rsa), ReasonMalformed},
		{"ES256 with DER signature", esInput + "." + base64.RawURLEncoding.EncodeToString(derSig(t, esInput, k.ec)), ReasonBadSignature},
		{"ES256 signed on P-384", signToken(t, hdr("ES256"), claimsFor(issES), k.ec384), ReasonBadSignature},
		{"ES256 zero signature", esInput + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64)), ReasonBadSignature},
		{"EdDSA signed by another key", signToken(t, hdr("EdDSA"), claimsFor(issED), mustOtherEd(t)), ReasonBadSignature},
		{"oversize token", good + strings.Repeat("A", MaxTokenLen), ReasonMalformed},
		{"oversize claims", signToken(t, hdr("RS256"), claimsFor(issRS, set("pad", strings.Repeat("p", 5000))), k.rsa), ReasonMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], ReasonMalformed},
		{"padded base64 payload", parts[0] + "." + parts[1] + "==." + parts[2], ReasonMalformed},
		{"std base64 signature", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/", ReasonMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("alg=RS256")) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header JSON array", seg([]string{"RS256"}) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"claims JSON null", parts[0] + "." + seg(nil) + "." + parts[2], ReasonMalformed},
		{"empty header", "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"two segments", parts[0] + "." + parts[1], ReasonMalformed},
		{"four segments", good + ".AAAA", ReasonMalformed},
		{"JWE five segments", parts[0] + "..." + parts[1] + "." + parts[2], ReasonMalformed},
	}
	return good, cases
}

func mustOtherEd(t testing.TB) any {
	_, priv, err := ed25519GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestJWTConfigErrors(t *testing.T) {
	k := mustKeys(t)
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := control.JWTIssuer{Issuer: issRS, Algorithms: []string{"RS256"}, Audiences: []string{aud}, PublicKeysPEM: pemOf(t, &k.rsa.PublicKey, nil)}
	with := func(f func(*control.JWTIssuer)) control.JWTIssuer { c := ok; f(&c); return c }
	cases := []struct {
		name string
		iss  control.JWTIssuer
	}{
		{"alg none pinned", with(func(c *control.JWTIssuer) { c.Algorithms = []string{"none"} })},
		{"unknown alg", with(func(c *control.JWTIssuer) { c.Algorithms = []string{"PS256"} })},
		{"no audiences", with(func(c *control.JWTIssuer) { c.Audiences = nil })},
		{"empty issuer", with(func(c *control.JWTIssuer) { c.Issuer = "" })},
		{"no keys", with(func(c *control.JWTIssuer) { c.PublicKeysPEM = "" })},
		{"P-384 key", with(func(c *control.JWTIssuer) { c.PublicKeysPEM = pemOf(t, &k.ec384.PublicKey, nil) })},
		{"garbage PEM", with(func(c *control.JWTIssuer) {
			c.PublicKeysPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}))
		})},
		{"private key PEM", with(func(c *control.JWTIssuer) {
			c.PublicKeysPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}))
		})},
		{"HS256 without secret", with(func(c *control.JWTIssuer) { c.Algorithms = []string{"HS256"} })},
		{"HS256 short env secret", with(func(c *control.JWTIssuer) { c.Algorithms = []string{"HS256"}; c.HMACSecretRef = "env:SHORT" })},
		{"HS256 short file secret", with(func(c *control.JWTIssuer) { c.Algorithms = []string{"HS256"}; c.HMACSecretRef = "file:" + short })},
		{"HS256 missing file", with(func(c *control.JWTIssuer) {
			c.Algorithms = []string{"HS256"}
			c.HMACSecretRef = "file:" + dir + "/none"
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewJWTVerifier([]control.JWTIssuer{c.iss}, JWTOptions{Getenv: func(string) string { return "short" }})
			if err == nil {
				t.Fatal("configuration accepted")
			}
		})
	}
	if _, err := NewJWTVerifier([]control.JWTIssuer{ok, ok}, JWTOptions{}); err == nil {
		t.Fatal("duplicate issuer accepted")
	}
}

func TestJWTSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewJWTVerifier([]control.JWTIssuer{{Issuer: issHS, Algorithms: []string{"HS256"}, Audiences: []string{aud},
		HMACSecretRef: "file:" + path, AgentClaim: "agent"}}, JWTOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	tok := signToken(t, hdr("HS256"), claimsFor(issHS), []byte(secret))
	if _, r := v.Verify(context.Background(), []byte(tok)); r != ReasonOK {
		t.Fatalf("got %s", r)
	}
}

func TestJWTThumbprintRFC7638(t *testing.T) {
	// The example key of RFC 7638 section 3.1 and its published thumbprint.
	j := jwk{Kty: "RSA", Kid: "x", E: "AQAB", N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
	raw, err := j.public()
	if err != nil {
		t.Fatal(err)
	}
	// The example modulus is 2048 bits, so newPubKey accepts it.
	if got := thumb(t, raw); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %s", got)
	}
}
