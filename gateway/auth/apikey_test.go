package auth

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

const (
	goodKey    = "crk_AbCdEf123456_0123456789abcdefghijABCDEFGHIJkl"
	revokedKey = "crk_RevokedKey01_0123456789abcdefghijABCDEFGHIJkl"
	expiredKey = "crk_ExpiredKey01_0123456789abcdefghijABCDEFGHIJkl"
	futureKey  = "crk_FutureKey001_0123456789abcdefghijABCDEFGHIJkl"
)

var agentA = event.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func storedKeys() map[string]control.APIKey {
	m := make(map[string]control.APIKey)
	add := func(key string, f func(*control.APIKey)) {
		k := control.APIKey{Prefix: key[:APIKeyPrefixLen], Hash: sha256.Sum256([]byte(key)), AgentID: agentA}
		f(&k)
		m[k.Prefix] = k
	}
	add(goodKey, func(*control.APIKey) {})
	add(revokedKey, func(k *control.APIKey) { k.Revoked = true })
	add(expiredKey, func(k *control.APIKey) { k.ExpiresAt = testNow })
	add(futureKey, func(k *control.APIKey) { k.ExpiresAt = testNow.Add(time.Second) })
	return m
}

func testAPIKeyVerifier() *APIKeyVerifier {
	m := storedKeys()
	return NewAPIKeyVerifier(func(p []byte) (control.APIKey, bool) {
		k, ok := m[string(p)]
		return k, ok
	}, func() time.Time { return testNow })
}

func TestAPIKeyVerify(t *testing.T) {
	v := testAPIKeyVerifier()
	cases := []struct {
		name string
		key  string
		want Reason
	}{
		{"valid", goodKey, ReasonOK},
		{"valid until a second later", futureKey, ReasonOK},
		{"empty", "", ReasonMissing},
		{"wrong secret", goodKey[:len(goodKey)-1] + "X", ReasonUnknownKey},
		{"unknown prefix", "crk_ZZZZZZZZZZZZ" + goodKey[APIKeyPrefixLen:], ReasonUnknownKey},
		{"revoked", revokedKey, ReasonRevoked},
		{"expired at the instant", expiredKey, ReasonExpired},
		{"revoked key with a wrong secret tells nothing", revokedKey[:len(revokedKey)-1] + "Y", ReasonUnknownKey},
		{"too short", goodKey[:len(goodKey)-1], ReasonMalformed},
		{"too long", goodKey + "a", ReasonMalformed},
		{"wrong tag", "crx" + goodKey[3:], ReasonMalformed},
		{"no separator", goodKey[:APIKeyPrefixLen] + "-" + goodKey[APIKeyPrefixLen+1:], ReasonMalformed},
		{"non-alphanumeric secret", goodKey[:len(goodKey)-1] + "=", ReasonMalformed},
		{"non-alphanumeric prefix", "crk_AbCdEf12345/" + goodKey[APIKeyPrefixLen:], ReasonMalformed},
		{"NUL inside", goodKey[:20] + "\x00" + goodKey[21:], ReasonMalformed},
		{"unicode", strings.Replace(goodKey, "AbC", "Ä€", 1)[:APIKeyLen], ReasonMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, r := v.Verify([]byte(c.key))
			if r != c.want {
				t.Fatalf("got %s, want %s", r, c.want)
			}
			if (r == ReasonOK) != (id == agentA) {
				t.Fatalf("agent %v with reason %s", id, r)
			}
		})
	}
}

func TestAPIKeyVerifyDoesNotAllocate(t *testing.T) {
	v := testAPIKeyVerifier()
	xKey := []byte(goodKey)
	authz := []byte("Bearer " + goodKey)
	allocs := testing.AllocsPerRun(200, func() {
		for _, h := range [][2][]byte{{xKey, nil}, {nil, authz}} {
			kind, tok, r := ParseCredential(h[0], h[1])
			if kind != KindAPIKey || r != ReasonOK {
				panic("not an API key")
			}
			if id, r := v.Verify(tok); r != ReasonOK || id != agentA {
				panic("key refused")
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("API key path allocates %.1f times per run", allocs)
	}
}

func TestReasonNames(t *testing.T) {
	seen := make(map[string]Reason)
	for r := ReasonOK; r < reasonCount; r++ {
		s := r.String()
		if s == "" || s == "unknown_reason" || strings.ToLower(s) != s || strings.ContainsAny(s, " -") {
			t.Fatalf("reason %d has name %q", r, s)
		}
		if prev, dup := seen[s]; dup {
			t.Fatalf("reasons %d and %d share %q", prev, r, s)
		}
		seen[s] = r
	}
	if reasonCount.String() != "unknown_reason" {
		t.Fatal("out-of-range reason has a name")
	}
}
