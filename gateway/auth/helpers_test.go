package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Unix(1_800_000_000, 0)

// fakeClock is a settable clock for expiry and rate-limit tests.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type testKeys struct {
	rsa, rsa2, attacker *rsa.PrivateKey
	ec                  *ecdsa.PrivateKey
	ec384               *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func mustKeys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		gen := func() *rsa.PrivateKey {
			k, e := rsa.GenerateKey(rand.Reader, 2048)
			if e != nil {
				err = e
			}
			return k
		}
		keys.rsa, keys.rsa2, keys.attacker = gen(), gen(), gen()
		if keys.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if keys.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if _, keys.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return &keys
}

func pemOf(t testing.TB, pub any, headers map[string]string) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: headers, Bytes: der}))
}

func thumb(t testing.TB, pub any) string {
	t.Helper()
	k, err := newPubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k.thumbprint()
}

func seg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signToken builds a compact JWS; alg in hdr decides nothing here, key does.
func signToken(t testing.TB, hdr, claims map[string]any, key any) string {
	t.Helper()
	input := seg(hdr) + "." + seg(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(signRaw(t, input, key))
}

func signRaw(t testing.TB, input string, key any) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(input))
	switch k := key.(type) {
	case *rsa.PrivateKey:
		s, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return s
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*n)
		r.FillBytes(out[:n])
		s.FillBytes(out[n:])
		return out
	case ed25519.PrivateKey:
		return ed25519.Sign(k, []byte(input))
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
	t.Fatalf("unsupported key %T", key)
	return nil
}

func derSig(t testing.TB, input string, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(input))
	s, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bigB64(b *big.Int) string { return base64.RawURLEncoding.EncodeToString(b.Bytes()) }

func ed25519GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}
