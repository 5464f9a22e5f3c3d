package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// alg is a JWS algorithm the gateway implements.
type alg uint8

const (
	algNone alg = iota
	algRS256
	algES256
	algEdDSA
	algHS256
)

func parseAlg(s string) alg {
	switch s {
	case "RS256":
		return algRS256
	case "ES256":
		return algES256
	case "EdDSA":
		return algEdDSA
	case "HS256":
		return algHS256
	}
	return algNone
}

// minRSABits is the smallest RSA modulus accepted for RS256 (RFC 7518 3.3).
const minRSABits = 2048

// pubKey is one verification key; exactly one of rsa, ec, ed is set. alg is
// the only algorithm it may verify.
type pubKey struct {
	kid string
	alg alg
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
}

func newPubKey(k any) (*pubKey, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is below %d", k.N.BitLen(), minRSABits)
		}
		return &pubKey{alg: algRS256, rsa: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA key is not on P-256")
		}
		return &pubKey{alg: algES256, ec: k}, nil
	case ed25519.PublicKey:
		return &pubKey{alg: algEdDSA, ed: k}, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", k)
}

func (k *pubKey) equal(o *pubKey) bool {
	if k.kid != o.kid || k.alg != o.alg {
		return false
	}
	switch k.alg {
	case algRS256:
		return k.rsa.Equal(o.rsa)
	case algES256:
		return k.ec.Equal(o.ec)
	case algEdDSA:
		return k.ed.Equal(o.ed)
	}
	return false
}

// thumbprint is the RFC 7638 JWK thumbprint: base64url SHA-256 of the
// required members in lexicographic order, without white space.
func (k *pubKey) thumbprint() string {
	b64 := base64.RawURLEncoding.EncodeToString
	var j string
	switch k.alg {
	case algRS256:
		j = `{"e":"` + b64(big.NewInt(int64(k.rsa.E)).Bytes()) + `","kty":"RSA","n":"` + b64(k.rsa.N.Bytes()) + `"}`
	case algES256:
		raw, err := k.ec.Bytes() // 0x04 || X || Y, fixed width
		if err != nil {
			panic(fmt.Sprintf("BUG: cannot encode a validated P-256 key: %v", err))
		}
		j = `{"crv":"P-256","kty":"EC","x":"` + b64(raw[1:33]) + `","y":"` + b64(raw[33:]) + `"}`
	case algEdDSA:
		j = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(k.ed) + `"}`
	}
	sum := sha256.Sum256([]byte(j))
	return b64(sum[:])
}

// parsePEMKeys reads PUBLIC KEY, RSA PUBLIC KEY and CERTIFICATE blocks. Each
// key is known by its RFC 7638 thumbprint and, when the block has a "kid"
// PEM header, also by that kid.
func parsePEMKeys(data string) (map[string]*pubKey, []*pubKey, error) {
	keys := make(map[string]*pubKey)
	var list []*pubKey
	rest := []byte(data)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		pk, err := parsePEMBlock(b)
		if err != nil {
			return nil, nil, err
		}
		pk.kid = pk.thumbprint()
		list = append(list, pk)
		keys[pk.kid] = pk
		if kid := b.Headers["kid"]; kid != "" {
			alias := *pk
			alias.kid = kid
			keys[kid] = &alias
		}
	}
	return keys, list, nil
}

func parsePEMBlock(b *pem.Block) (*pubKey, error) {
	var k any
	var err error
	switch b.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(b.Bytes); err == nil {
			k = c.PublicKey
		}
	default:
		return nil, fmt.Errorf("cannot use PEM block %q as a public key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse PEM %s: %w", b.Type, err)
	}
	return newPubKey(k)
}
