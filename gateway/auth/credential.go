package auth

// Kind is the kind of credential a request presents.
type Kind uint8

const (
	KindNone Kind = iota
	KindAPIKey
	KindJWT
)

// MaxCredentialLen bounds any presented credential (API key or JWT).
const MaxCredentialLen = 8 << 10

const bearerScheme = "bearer "

// ParseCredential reads the credential from the X-API-Key header value or
// the Authorization header value ("Bearer <token>", scheme case-insensitive,
// exactly one space, no trailing data). Sending both headers is refused, so
// no two layers can disagree on which one counts. A bearer token that starts
// with the API-key prefix is an API key; one with two dots is a JWT.
// token aliases the input; ParseCredential never allocates.
func ParseCredential(xAPIKey, authorization []byte) (kind Kind, token []byte, r Reason) {
	switch {
	case len(xAPIKey) > 0 && len(authorization) > 0:
		return KindNone, nil, ReasonMalformed
	case len(xAPIKey) > 0:
		if !IsAPIKey(xAPIKey) {
			return KindNone, nil, ReasonMalformed
		}
		return KindAPIKey, xAPIKey, ReasonOK
	case len(authorization) > 0:
		return parseBearer(authorization)
	}
	return KindNone, nil, ReasonMissing
}

func parseBearer(h []byte) (Kind, []byte, Reason) {
	if len(h) <= len(bearerScheme) || len(h) > len(bearerScheme)+MaxCredentialLen {
		return KindNone, nil, ReasonMalformed
	}
	for i := 0; i < len(bearerScheme); i++ {
		if lower(h[i]) != bearerScheme[i] {
			return KindNone, nil, ReasonMalformed
		}
	}
	tok := h[len(bearerScheme):]
	if !isToken68(tok) {
		return KindNone, nil, ReasonMalformed
	}
	if IsAPIKey(tok) {
		return KindAPIKey, tok, ReasonOK
	}
	if countByte(tok, '.') == 2 {
		return KindJWT, tok, ReasonOK
	}
	return KindNone, nil, ReasonMalformed
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isToken68 checks RFC 7235 token68: 1*( ALPHA / DIGIT / "-" / "." / "_" /
// "~" / "+" / "/" ) *"=".
func isToken68(b []byte) bool {
	i := 0
	for i < len(b) && isToken68Char(b[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(b) && b[i] == '=' {
		i++
	}
	return i == len(b)
}

func isToken68Char(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func countByte(b []byte, c byte) int {
	n := 0
	for _, x := range b {
		if x == c {
			n++
		}
	}
	return n
}
