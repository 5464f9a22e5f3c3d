package auth

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

var sinkClaims Claims

// validTokens are one accepted token per test issuer.
func validTokens(t testing.TB) []string {
	k := mustKeys(t)
	return []string{
		signToken(t, hdr("RS256"), claimsFor(issRS), k.rsa),
		signToken(t, hdr("RS256", "kid", "rs2-key"), claimsFor(issRS2), k.rsa2),
		signToken(t, hdr("ES256"), claimsFor(issES), k.ec),
		signToken(t, hdr("EdDSA"), claimsFor(issED), k.ed),
		signToken(t, hdr("HS256"), claimsFor(issHS), []byte(secret)),
		signToken(t, hdr("HS256"), claimsFor(issMix), []byte(secret)),
	}
}

// mustHit verifies tok and fails unless it was accepted from the cache.
func mustHit(t *testing.T, v *JWTVerifier, tok string) Claims {
	t.Helper()
	before := tokenCacheHits.Get()
	c, r := v.Verify(context.Background(), []byte(tok))
	if r != ReasonOK {
		t.Fatalf("cached token refused: %s", r)
	}
	if tokenCacheHits.Get() != before+1 {
		t.Fatal("a repeated valid token was verified again instead of served from the cache")
	}
	return c
}

// The attack table again, each token sent twice (the second time is the
// lookup path), with a valid token of every issuer cached, among them the
// very token most attacks are made from.
func TestJWTAttacksWithCachedTokens(t *testing.T) {
	v := testVerifier(t)
	good, cases := jwtAttacks(t)
	ctx := context.Background()
	valid := validTokens(t)
	if valid[0] != good { // RS256 signatures are deterministic: the same token
		t.Fatal("the attacks are not made from the cached RS256 token")
	}
	for _, tok := range valid {
		if _, r := v.Verify(ctx, []byte(tok)); r != ReasonOK {
			t.Fatalf("valid token refused: %s", r)
		}
		mustHit(t, v, tok)
	}
	cached := v.cache.size()
	if cached != len(valid) {
		t.Fatalf("%d tokens cached, want %d", cached, len(valid))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range 2 {
				if _, r := v.Verify(ctx, []byte(c.token)); r != c.want {
					t.Fatalf("send %d: got %s, want %s", i+1, r, c.want)
				}
			}
			if n := v.cache.size(); n != cached {
				t.Fatalf("a refused token changed the cache: %d entries, want %d", n, cached)
			}
		})
	}
	for _, tok := range valid {
		mustHit(t, v, tok)
	}
}

// Every accepted token is accepted again from the cache with the same claims.
func TestJWTCacheHitReturnsTheSameClaims(t *testing.T) {
	v := testVerifier(t)
	for _, tok := range validTokens(t) {
		want, r := v.Verify(context.Background(), []byte(tok))
		if r != ReasonOK {
			t.Fatalf("valid token refused: %s", r)
		}
		if got := mustHit(t, v, tok); got != want {
			t.Fatalf("cached claims %+v, verified %+v", got, want)
		}
	}
}

// A cached token is refused from the same instant a fresh verification
// refuses it: exp + leeway inclusive, and when the clock steps back before
// nbf - leeway. The cached verifier and one without a cache share a clock and
// must agree at every step; the steps straddle each bound by a nanosecond.
func TestJWTCacheExpiryMatchesFreshVerification(t *testing.T) {
	k := mustKeys(t)
	for _, leeway := range []time.Duration{0, 30 * time.Second} {
		t.Run(fmt.Sprintf("leeway %s", leeway), func(t *testing.T) {
			clock := newFakeClock(testNow)
			issuers := testIssuers(t)[:1] // issRS
			issuers[0].Leeway = leeway
			mk := func(size int) *JWTVerifier {
				v, err := NewJWTVerifier(issuers, JWTOptions{Now: clock.Now, TokenCacheSize: size})
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			cached, fresh := mk(0), mk(-1)
			exp := testNow.Add(45 * time.Second)
			nbf := testNow.Add(-10 * time.Second)
			tok := []byte(signToken(t, hdr("RS256"), claimsFor(issRS, set("exp", exp.Unix()), set("nbf", nbf.Unix()), set("iat", nbf.Unix())), k.rsa))
			steps := []struct {
				at   time.Time
				want Reason
			}{
				{testNow, ReasonOK},
				{testNow.Add(time.Second), ReasonOK},
				{exp.Add(leeway).Add(-time.Nanosecond), ReasonOK},
				{exp.Add(leeway), ReasonOK},
				{exp.Add(leeway).Add(time.Nanosecond), ReasonExpiredToken},
				{exp.Add(time.Hour), ReasonExpiredToken},
				{testNow, ReasonOK}, // clock stepped back
				{nbf.Add(-leeway), ReasonOK},
				{nbf.Add(-leeway).Add(-time.Nanosecond), ReasonNotYetValid},
				{testNow, ReasonOK},
			}
			hits := tokenCacheHits.Get()
			for i, s := range steps {
				clock.ns.Store(s.at.UnixNano())
				_, rc := cached.Verify(context.Background(), tok)
				_, rf := fresh.Verify(context.Background(), tok)
				if rc != s.want || rf != s.want {
					t.Fatalf("step %d (%s from now): cached %s, fresh %s, want %s", i, s.at.Sub(testNow), rc, rf, s.want)
				}
			}
			if tokenCacheHits.Get() == hits {
				t.Fatal("no step was answered from the cache")
			}
		})
	}
}

// A verification is reused for at most the cache TTL, then made again.
func TestJWTCacheTTL(t *testing.T) {
	clock := newFakeClock(testNow)
	v, err := NewJWTVerifier(testIssuers(t), JWTOptions{Now: clock.Now, Getenv: func(string) string { return secret }, TokenCacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tok := signToken(t, hdr("HS256"), claimsFor(issHS), []byte(secret)) // exp in an hour
	if _, r := v.Verify(context.Background(), []byte(tok)); r != ReasonOK {
		t.Fatal(r)
	}
	clock.Advance(time.Minute)
	mustHit(t, v, tok)
	clock.Advance(time.Nanosecond)
	hits := tokenCacheHits.Get()
	if _, r := v.Verify(context.Background(), []byte(tok)); r != ReasonOK || tokenCacheHits.Get() != hits {
		t.Fatalf("after the TTL: %s, %d hits (want ok, verified again)", r, tokenCacheHits.Get()-hits)
	}
	mustHit(t, v, tok)
}

// A token accepted only thanks to the leeway on nbf or iat is not cached
// until they have passed.
func TestJWTCacheWaitsForNbf(t *testing.T) {
	for _, claim := range []string{"nbf", "iat"} {
		t.Run(claim, func(t *testing.T) {
			clock := newFakeClock(testNow)
			v := testVerifierWith(t, clock.Now, 0)
			tok := signToken(t, hdr("HS256"), claimsFor(issHS, set(claim, testNow.Add(10*time.Second).Unix())), []byte(secret))
			for range 2 {
				if _, r := v.Verify(context.Background(), []byte(tok)); r != ReasonOK {
					t.Fatalf("within the leeway: %s", r)
				}
			}
			if n := v.cache.size(); n != 0 {
				t.Fatalf("cached before %s passed (%d entries)", claim, n)
			}
			clock.Advance(10 * time.Second)
			if _, r := v.Verify(context.Background(), []byte(tok)); r != ReasonOK {
				t.Fatal(r)
			}
			mustHit(t, v, tok)
		})
	}
}

// After the JWKS key set changes, tokens signed by a removed or replaced key
// are refused although they were cached; a refresh that brings the same set
// keeps the cache.
func TestJWTCacheFlushedWhenJWKSKeysChange(t *testing.T) {
	k := mustKeys(t)
	_, edB, err := ed25519GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	edA := k.ed
	pubA, pubB := edA.Public().(ed25519.PublicKey), edB.Public().(ed25519.PublicKey)
	srv := newJWKSServer(t)
	srv.serve(200, edJWK("key-a", pubA), edJWK("key-b", pubB))
	clock := newFakeClock(testNow)
	v, err := NewJWTVerifier([]control.JWTIssuer{{
		Issuer: issJWKS, Algorithms: []string{"EdDSA"}, Audiences: []string{aud}, JWKSURL: srv.URL, AgentClaim: "agent",
	}}, JWTOptions{Now: clock.Now, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The first fetch flushes (keys appear), so verify only after it.
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tokA := signToken(t, hdr("EdDSA", "kid", "key-a"), claimsFor(issJWKS), edA)
	tokB := signToken(t, hdr("EdDSA", "kid", "key-b"), claimsFor(issJWKS), edB)
	for _, tok := range []string{tokA, tokB} {
		if _, r := v.Verify(ctx, []byte(tok)); r != ReasonOK {
			t.Fatal(r)
		}
		mustHit(t, v, tok)
	}
	expect := func(step, tok string, want Reason) {
		t.Helper()
		if _, r := v.Verify(ctx, []byte(tok)); r != want {
			t.Fatalf("%s: got %s, want %s", step, r, want)
		}
	}

	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	mustHit(t, v, tokA) // the same set: nothing flushed

	srv.serve(200, edJWK("key-b", pubB))
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expect("key-a removed", tokA, ReasonUnknownKid)
	expect("key-a removed, again", tokA, ReasonUnknownKid)
	expect("key-b kept", tokB, ReasonOK)
	mustHit(t, v, tokB)

	// The kid stays, its key changes: the old signature no longer verifies.
	srv.serve(200, edJWK("key-b", pubA))
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expect("key-b replaced", tokB, ReasonBadSignature)

	// A fetch caused by an unknown kid that changes the set flushes too.
	srv.serve(200, edJWK("key-c", pubB))
	clock.Advance(time.Hour)
	tokC := signToken(t, hdr("EdDSA", "kid", "key-c"), claimsFor(issJWKS), edB)
	expect("unknown kid fetched", tokC, ReasonOK)
	expect("key-b gone after the kid fetch", tokB, ReasonUnknownKid)

	// A failed refresh keeps the last good set and so the cache.
	expect("key-c, stored now", tokC, ReasonOK) // the fetch above flushed during its verification
	mustHit(t, v, tokC)
	srv.serveRaw(500, []byte("down"))
	if err := v.Refresh(ctx); err == nil {
		t.Fatal("refresh against a failing JWKS reported success")
	}
	mustHit(t, v, tokC)
}

// A verification that races with a key change is never served after it:
// once Refresh has returned with the key gone, the token is refused, however
// many goroutines were verifying it meanwhile. Run with -race.
func TestJWTCacheConcurrentVerifyAndRefresh(t *testing.T) {
	k := mustKeys(t)
	pub := k.ed.Public().(ed25519.PublicKey)
	_, other, err := ed25519GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t)
	srv.serve(200, edJWK("key-a", pub))
	v, err := NewJWTVerifier([]control.JWTIssuer{{
		Issuer: issJWKS, Algorithms: []string{"EdDSA"}, Audiences: []string{aud}, JWKSURL: srv.URL, AgentClaim: "agent",
	}}, JWTOptions{Now: func() time.Time { return testNow }, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := []byte(signToken(t, hdr("EdDSA", "kid", "key-a"), claimsFor(issJWKS), k.ed))
	for round := range 20 {
		srv.serve(200, edJWK("key-a", pub))
		if err := v.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					v.Verify(ctx, tok)
				}
			}()
		}
		srv.serve(200, edJWK("key-b", other.Public().(ed25519.PublicKey)))
		if err := v.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, r := v.Verify(ctx, tok); r != ReasonUnknownKid {
			t.Fatalf("round %d: right after the key was removed: %s", round, r)
		}
		wg.Wait()
		if _, r := v.Verify(ctx, tok); r != ReasonUnknownKid {
			t.Fatalf("round %d: after the verifiers finished: %s", round, r)
		}
	}
}

// The cache holds at most its size, and evicting never refuses a valid token.
func TestJWTCacheBounded(t *testing.T) {
	const size = 32
	v := testVerifierWith(t, func() time.Time { return testNow }, size)
	toks := make([]string, 300)
	for i := range toks {
		toks[i] = signToken(t, hdr("HS256"), claimsFor(issHS, set("jti", fmt.Sprint(i))), []byte(secret))
	}
	for range 2 {
		for _, tok := range toks {
			if _, r := v.Verify(context.Background(), []byte(tok)); r != ReasonOK {
				t.Fatal(r)
			}
			if n := v.cache.size(); n > size {
				t.Fatalf("%d entries in a cache of %d", n, size)
			}
		}
	}
	if n := v.cache.size(); n < size/2 {
		t.Fatalf("only %d entries kept of %d", n, size)
	}
}

// Repeating a token does not allocate: hash, lookup, claims returned as
// stored.
func TestJWTCachedVerifyAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	v := testVerifier(t)
	for _, s := range validTokens(t) {
		tok := []byte(s)
		if _, r := v.Verify(context.Background(), tok); r != ReasonOK {
			t.Fatal(r)
		}
		if n := testing.AllocsPerRun(1000, func() { sinkClaims, sinkReason = v.Verify(context.Background(), tok) }); n != 0 {
			t.Fatalf("a cached verification allocates %.1f times", n)
		}
		if sinkReason != ReasonOK {
			t.Fatal(sinkReason)
		}
	}
}

// Without issuers there is nothing to cache and every token is refused.
func TestJWTNoIssuersNoCache(t *testing.T) {
	v, err := NewJWTVerifier(nil, JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.cache != nil {
		t.Fatal("a cache without issuers")
	}
	if _, r := v.Verify(context.Background(), []byte(validTokens(t)[0])); r != ReasonWrongIssuer {
		t.Fatal(r)
	}
}

// A verification that read the keys before a flush and finishes after it is
// neither stored nor, if it were in the map, served: both guards, each alone.
func TestTokenCacheStaleGeneration(t *testing.T) {
	c := newTokenCache(0, 0)
	k := tokenKey{1}
	vd := verified{claims: Claims{Issuer: issRS, Agent: "a", ExpiresAt: testNow.Add(time.Hour)}}
	old := c.gen.Load()
	c.flush()
	c.put(&k, old, testNow, &vd)
	if n := c.size(); n != 0 {
		t.Fatalf("a verification from before the flush was stored (%d entries)", n)
	}
	c.shard(&k).m = map[tokenKey]tokenEntry{k: {claims: vd.claims, gen: old, notBefore: 0, until: testNow.Add(time.Hour).UnixNano()}}
	if _, ok := c.get(&k, c.gen.Load(), testNow.UnixNano()); ok {
		t.Fatal("an entry of an older key generation was served")
	}
	c.put(&k, c.gen.Load(), testNow, &vd)
	if _, ok := c.get(&k, c.gen.Load(), testNow.UnixNano()); !ok {
		t.Fatal("an entry of the current generation was not served")
	}
}
