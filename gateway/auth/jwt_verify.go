package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"time"
)

var b64 = base64.RawURLEncoding.Strict()

// Verify checks a compact JWS. The issuer is chosen by the unverified iss
// claim; everything else (algorithm, key, signature, times, audience) is
// then checked against that issuer's configuration only. Header members
// that carry or point at keys (jwk, jku, x5u, x5c) are never read. ctx
// bounds a JWKS fetch caused by an unknown kid.
//
// A token that verified is remembered (jwt_cache.go), so presenting it again
// costs a SHA-256 and a map lookup, and gives exactly the answer a fresh
// verification would while the issuers' keys stay the same.
func (v *JWTVerifier) Verify(ctx context.Context, token []byte) (Claims, Reason) {
	if len(token) == 0 {
		return Claims{}, ReasonMissing
	}
	if len(token) > MaxTokenLen || countByte(token, '.') != 2 {
		return Claims{}, ReasonMalformed
	}
	if v.cache == nil {
		vd, r := v.verify(ctx, token)
		return vd.claims, r
	}
	sum := sha256.Sum256(token)
	now := v.now()
	// The generation is read before any key is: a verification that used a
	// key set replaced meanwhile is stored under the old generation, which
	// no lookup accepts.
	gen := v.cache.gen.Load()
	if c, ok := v.cache.get(&sum, gen, now.UnixNano()); ok {
		return c, ReasonOK
	}
	vd, r := v.verify(ctx, token)
	if r == ReasonOK {
		v.cache.put(&sum, gen, now, &vd)
	}
	return vd.claims, r
}

// verify is the full check of a token of bounded length with two dots.
func (v *JWTVerifier) verify(ctx context.Context, token []byte) (verified, Reason) {
	d1 := bytes.IndexByte(token, '.')
	d2 := d1 + 1 + bytes.IndexByte(token[d1+1:], '.')
	hSeg, pSeg, sSeg := token[:d1], token[d1+1:d2], token[d2+1:]
	hdr, r := decodeHeader(hSeg)
	if r != ReasonOK {
		return verified{}, r
	}
	claims, r := decodeSegment(pSeg, maxClaimsJSON)
	if r != ReasonOK {
		return verified{}, r
	}
	iss, ok := jsonString(claims["iss"])
	if !ok {
		return verified{}, ReasonWrongIssuer
	}
	is := v.issuers[iss]
	if is == nil {
		return verified{}, ReasonWrongIssuer
	}
	if !is.algs[hdr.alg] {
		return verified{}, ReasonAlgNotAllowed
	}
	sig := make([]byte, b64.DecodedLen(len(sSeg)))
	n, err := b64.Decode(sig, sSeg)
	if err != nil {
		return verified{}, ReasonMalformed
	}
	if r := is.verifySig(ctx, &hdr, token[:d2], sig[:n]); r != ReasonOK {
		return verified{}, r
	}
	return is.checkClaims(claims, v.now())
}

type header struct {
	alg    alg
	kid    string
	hasKid bool
}

func decodeHeader(seg []byte) (header, Reason) {
	m, r := decodeSegment(seg, maxHeaderJSON)
	if r != ReasonOK {
		return header{}, r
	}
	var h header
	name, ok := jsonString(m["alg"])
	if !ok {
		return header{}, ReasonMalformed
	}
	if h.alg = parseAlg(name); h.alg == algNone {
		// Covers "none" in any case and every algorithm we do not implement.
		return header{}, ReasonAlgNotAllowed
	}
	if _, ok := m["crit"]; ok {
		// RFC 7515 4.1.11: we understand no extension, so must reject.
		return header{}, ReasonMalformed
	}
	if raw, ok := m["kid"]; ok {
		if h.kid, ok = jsonString(raw); !ok || h.kid == "" || len(h.kid) > maxKidLen {
			return header{}, ReasonUnknownKid
		}
		h.hasKid = true
	}
	return h, ReasonOK
}

// decodeSegment decodes one base64url JSON object segment. Members are
// matched by exact name (unlike encoding/json struct fields, which match
// case-insensitively), so "ALG" is not "alg".
func decodeSegment(seg []byte, limit int) (map[string]json.RawMessage, Reason) {
	if len(seg) == 0 || b64.DecodedLen(len(seg)) > limit {
		return nil, ReasonMalformed
	}
	buf := make([]byte, b64.DecodedLen(len(seg)))
	n, err := b64.Decode(buf, seg)
	if err != nil {
		return nil, ReasonMalformed
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(buf[:n], &m); err != nil || m == nil {
		return nil, ReasonMalformed
	}
	return m, ReasonOK
}

func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func (is *issuer) verifySig(ctx context.Context, h *header, input, sig []byte) Reason {
	if h.alg == algHS256 {
		mac := hmac.New(sha256.New, is.hmac)
		mac.Write(input)
		if !hmac.Equal(mac.Sum(nil), sig) {
			return ReasonBadSignature
		}
		return ReasonOK
	}
	k, r := is.key(ctx, h)
	if r != ReasonOK {
		return r
	}
	if k.alg != h.alg {
		return ReasonAlgNotAllowed
	}
	if !k.verify(input, sig) {
		return ReasonBadSignature
	}
	return ReasonOK
}

// key picks the verification key: by kid among the issuer's PEM keys, then
// its JWKS (fetched again, rate-limited, when the kid is unknown); without a
// kid only when the issuer has exactly one key.
func (is *issuer) key(ctx context.Context, h *header) (*pubKey, Reason) {
	if !h.hasKid {
		if is.jwks != nil && len(is.jwks.all()) == 0 {
			is.jwks.refreshForKid(ctx, "") // nothing fetched yet (rate-limited)
		}
		return is.onlyKey()
	}
	if k := is.static[h.kid]; k != nil {
		return k, ReasonOK
	}
	if is.jwks == nil {
		return nil, ReasonUnknownKid
	}
	if k := is.jwks.get(h.kid); k != nil {
		return k, ReasonOK
	}
	if k := is.jwks.refreshForKid(ctx, h.kid); k != nil {
		return k, ReasonOK
	}
	if len(is.staticList) == 0 && len(is.jwks.all()) == 0 {
		return nil, ReasonKeyUnavailable
	}
	return nil, ReasonUnknownKid
}

func (is *issuer) onlyKey() (*pubKey, Reason) {
	var fromJWKS map[string]*pubKey
	if is.jwks != nil {
		fromJWKS = is.jwks.all()
	}
	switch {
	case len(is.staticList) == 1 && len(fromJWKS) == 0:
		return is.staticList[0], ReasonOK
	case len(is.staticList) == 0 && len(fromJWKS) == 1:
		for _, k := range fromJWKS {
			return k, ReasonOK
		}
	case len(is.staticList) == 0 && len(fromJWKS) == 0:
		return nil, ReasonKeyUnavailable
	}
	return nil, ReasonUnknownKid
}

func (k *pubKey) verify(input, sig []byte) bool {
	switch k.alg {
	case algRS256:
		sum := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, sum[:], sig) == nil
	case algES256:
		// JWS uses the fixed-width r||s form (RFC 7518 3.4), never ASN.1.
		if len(sig) != 64 {
			return false
		}
		sum := sha256.Sum256(input)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ec, sum[:], r, s)
	case algEdDSA:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, input, sig)
	}
	return false
}

// verified is a successful verification: the claims and what the token
// cache needs to answer exactly as verification would.
type verified struct {
	claims Claims
	// start is the later of nbf and iat (zero when neither is present).
	start  time.Time
	leeway time.Duration
}

func (is *issuer) checkClaims(m map[string]json.RawMessage, now time.Time) (verified, Reason) {
	leeway := is.cfg.Leeway
	exp, present, ok := numericDate(m["exp"])
	if !ok {
		return verified{}, ReasonMalformed
	}
	if !present {
		return verified{}, ReasonMissingClaim
	}
	if now.After(exp.Add(leeway)) {
		return verified{}, ReasonExpiredToken
	}
	var start time.Time
	for _, name := range [...]string{"nbf", "iat"} {
		t, present, ok := numericDate(m[name])
		if !ok {
			return verified{}, ReasonMalformed
		}
		if present && now.Add(leeway).Before(t) {
			return verified{}, ReasonNotYetValid
		}
		if present && t.After(start) {
			start = t
		}
	}
	if !is.audienceOK(m["aud"]) {
		return verified{}, ReasonWrongAudience
	}
	agent, ok := jsonString(m[is.agentClaim])
	if !ok || agent == "" || len(agent) > maxAgentNameLen {
		return verified{}, ReasonMissingClaim
	}
	sub, _ := jsonString(m["sub"])
	c := Claims{Issuer: is.cfg.Issuer, Agent: agent, Subject: sub, ExpiresAt: exp}
	return verified{claims: c, start: start, leeway: leeway}, ReasonOK
}

// numericDate reads an RFC 7519 NumericDate; present is false when absent,
// ok is false when present but not a sane number.
func numericDate(raw json.RawMessage) (t time.Time, present, ok bool) {
	if len(raw) == 0 {
		return time.Time{}, false, true
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, true, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, true
}

// audienceOK accepts aud as a string or an array of strings containing one
// of the issuer's audiences.
func (is *issuer) audienceOK(raw json.RawMessage) bool {
	var auds []string
	if s, ok := jsonString(raw); ok {
		auds = []string{s}
	} else if len(raw) == 0 || json.Unmarshal(raw, &auds) != nil {
		return false
	}
	for _, a := range auds {
		for _, want := range is.cfg.Audiences {
			if a == want {
				return true
			}
		}
	}
	return false
}
