package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// maxJWKSBytes bounds a JWKS response body.
const maxJWKSBytes = 1 << 20

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the usable signature keys of a JWKS document. Keys
// without a kid, of another use, of an unsupported type or curve, or whose
// alg disagrees with their type are skipped; a set with no usable key is an
// error, so a broken response never replaces a good set.
func parseJWKS(body []byte) (map[string]*pubKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("cannot decode JWKS: %w", err)
	}
	keys := make(map[string]*pubKey, len(doc.Keys))
	for i := range doc.Keys {
		k, err := doc.Keys[i].key()
		if err != nil {
			continue
		}
		keys[k.kid] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no usable signature key")
	}
	return keys, nil
}

func (j *jwk) key() (*pubKey, error) {
	if j.Kid == "" || len(j.Kid) > maxKidLen || (j.Use != "" && j.Use != "sig") {
		return nil, errors.New("key without kid or not for signatures")
	}
	raw, err := j.public()
	if err != nil {
		return nil, err
	}
	k, err := newPubKey(raw)
	if err != nil {
		return nil, err
	}
	if j.Alg != "" && parseAlg(j.Alg) != k.alg {
		return nil, fmt.Errorf("alg %q does not match key type %s", j.Alg, j.Kty)
	}
	k.kid = j.Kid
	return k, nil
}

func (j *jwk) public() (any, error) {
	dec := base64.RawURLEncoding.DecodeString
	switch {
	case j.Kty == "RSA":
		n, err1 := dec(j.N)
		e, err2 := dec(j.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA members")
		}
		ev := int(new(big.Int).SetBytes(e).Int64())
		if ev < 3 || ev%2 == 0 {
			return nil, errors.New("bad RSA exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}, nil
	case j.Kty == "EC" && j.Crv == "P-256":
		x, err1 := dec(j.X)
		y, err2 := dec(j.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad EC members")
		}
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		x, err := dec(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP members")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported key type %q curve %q", j.Kty, j.Crv)
}

// jwksCache holds the keys of one issuer's JWKS URL. The last good set stays
// in use when a refresh fails. Refreshes happen on an interval (Run) and
// when a token names an unknown kid, at most once per minGap.
type jwksCache struct {
	url    string
	client *http.Client
	now    func() time.Time
	minGap time.Duration

	keys atomic.Pointer[map[string]*pubKey]
	// tokens is flushed when a fetch changes the key set (nil: no cache).
	tokens *tokenCache

	mu          sync.Mutex // serialises fetches
	lastAttempt time.Time
	fetches     atomic.Int64
	failures    atomic.Int64
}

func (c *jwksCache) get(kid string) *pubKey {
	m := c.keys.Load()
	if m == nil {
		return nil
	}
	return (*m)[kid]
}

func (c *jwksCache) all() map[string]*pubKey {
	if m := c.keys.Load(); m != nil {
		return *m
	}
	return nil
}

// refreshForKid fetches the set again if kid is still unknown and the last
// attempt is at least minGap old.
func (c *jwksCache) refreshForKid(ctx context.Context, kid string) *pubKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.get(kid); k != nil {
		return k
	}
	if now := c.now(); !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.minGap {
		return nil
	}
	_ = c.fetchLocked(ctx) // failures are counted; the old set stays
	return c.get(kid)
}

func (c *jwksCache) refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetchLocked(ctx)
}

func (c *jwksCache) fetchLocked(ctx context.Context) error {
	c.lastAttempt = c.now()
	c.fetches.Add(1)
	keys, err := c.fetch(ctx)
	if err != nil {
		c.failures.Add(1)
		return fmt.Errorf("cannot refresh JWKS from %s: %w", c.url, err)
	}
	old := c.keys.Swap(&keys)
	// The new set is in place before the flush: a verification that reads
	// the new generation also reads the new keys.
	if c.tokens != nil && (old == nil || !sameKeys(*old, keys)) {
		c.tokens.flush()
	}
	return nil
}

// sameKeys reports whether two key sets hold the same kids with the same
// algorithms and key material.
func sameKeys(a, b map[string]*pubKey) bool {
	if len(a) != len(b) {
		return false
	}
	for kid, ka := range a {
		kb := b[kid]
		if kb == nil || !ka.equal(kb) {
			return false
		}
	}
	return true
}

func (c *jwksCache) fetch(ctx context.Context) (map[string]*pubKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("response larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}
