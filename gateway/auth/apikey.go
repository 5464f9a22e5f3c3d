package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// API key layout (see control.APIKey): "crk_" + 12 alphanumerics is the
// prefix, then "_" and 32 alphanumerics of secret.
const (
	apiKeyTag       = "crk_"
	APIKeyPrefixLen = len(apiKeyTag) + 12
	APIKeyLen       = APIKeyPrefixLen + 1 + 32
)

// IsAPIKey reports whether b has the exact API key format.
func IsAPIKey(b []byte) bool {
	if len(b) != APIKeyLen || string(b[:len(apiKeyTag)]) != apiKeyTag || b[APIKeyPrefixLen] != '_' {
		return false
	}
	for i := len(apiKeyTag); i < len(b); i++ {
		if i != APIKeyPrefixLen && !isAlnum(b[i]) {
			return false
		}
	}
	return true
}

// KeyLookup finds a stored key by its prefix in O(1) (the caller backs it
// with a cache). It must not allocate on a hit for the API-key path to stay
// allocation-free; m[string(prefix)] does not.
type KeyLookup func(prefix []byte) (control.APIKey, bool)

// APIKeyVerifier checks presented API keys against stored hashes.
type APIKeyVerifier struct {
	lookup KeyLookup
	now    func() time.Time
}

// NewAPIKeyVerifier returns a verifier; now defaults to time.Now.
func NewAPIKeyVerifier(lookup KeyLookup, now func() time.Time) *APIKeyVerifier {
	if now == nil {
		now = time.Now
	}
	return &APIKeyVerifier{lookup: lookup, now: now}
}

// Verify returns the agent id of a valid key. An unknown prefix and a wrong
// secret both give ReasonUnknownKey, so a caller cannot learn which prefixes
// exist; revocation and expiry are only told to holders of the real key.
func (v *APIKeyVerifier) Verify(key []byte) (event.UUID, Reason) {
	if len(key) == 0 {
		return event.UUID{}, ReasonMissing
	}
	if !IsAPIKey(key) {
		return event.UUID{}, ReasonMalformed
	}
	stored, ok := v.lookup(key[:APIKeyPrefixLen])
	return v.Check(key, stored, ok)
}

// Check is Verify for a caller that has already looked the key's prefix up
// (found tells whether a key with that prefix is stored).
func (v *APIKeyVerifier) Check(key []byte, stored control.APIKey, found bool) (event.UUID, Reason) {
	if len(key) == 0 {
		return event.UUID{}, ReasonMissing
	}
	if !IsAPIKey(key) {
		return event.UUID{}, ReasonMalformed
	}
	if !found {
		return event.UUID{}, ReasonUnknownKey
	}
	sum := sha256.Sum256(key)
	if subtle.ConstantTimeCompare(sum[:], stored.Hash[:]) != 1 {
		return event.UUID{}, ReasonUnknownKey
	}
	if stored.Revoked {
		return event.UUID{}, ReasonRevoked
	}
	if !stored.ExpiresAt.IsZero() && !v.now().Before(stored.ExpiresAt) {
		return event.UUID{}, ReasonExpired
	}
	return stored.AgentID, ReasonOK
}
