package auth

import (
	"strings"
	"testing"
)

func TestParseCredential(t *testing.T) {
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
	cases := []struct {
		name        string
		xKey, authz string
		kind        Kind
		token       string
		reason      Reason
	}{
		{"nothing", "", "", KindNone, "", ReasonMissing},
		{"x-api-key", goodKey, "", KindAPIKey, goodKey, ReasonOK},
		{"bearer api key", "", "Bearer " + goodKey, KindAPIKey, goodKey, ReasonOK},
		{"bearer lower case", "", "bearer " + goodKey, KindAPIKey, goodKey, ReasonOK},
		{"bearer mixed case", "", "BeArEr " + jwt, KindJWT, jwt, ReasonOK},
		{"bearer jwt", "", "Bearer " + jwt, KindJWT, jwt, ReasonOK},
		{"both headers", goodKey, "Bearer " + goodKey, KindNone, "", ReasonMalformed},
		{"x-api-key malformed", "secret", "", KindNone, "", ReasonMalformed},
		{"x-api-key with a space", " " + goodKey, "", KindNone, "", ReasonMalformed},
		{"basic scheme", "", "Basic dXNlcjpwYXNz", KindNone, "", ReasonMalformed},
		{"two spaces", "", "Bearer  " + goodKey, KindNone, "", ReasonMalformed},
		{"tab", "", "Bearer\t" + goodKey, KindNone, "", ReasonMalformed},
		{"no token", "", "Bearer ", KindNone, "", ReasonMalformed},
		{"scheme only", "", "Bearer", KindNone, "", ReasonMalformed},
		{"trailing space", "", "Bearer " + goodKey + " ", KindNone, "", ReasonMalformed},
		{"two tokens", "", "Bearer " + goodKey + " " + goodKey, KindNone, "", ReasonMalformed},
		{"comma list", "", "Bearer " + goodKey + ",Bearer x", KindNone, "", ReasonMalformed},
		{"bearer opaque token", "", "Bearer abcdef", KindNone, "", ReasonMalformed},
		{"bearer jwt with 3 dots", "", "Bearer a.b.c.d", KindNone, "", ReasonMalformed},
		{"padding inside", "", "Bearer ab=cd.e.f", KindNone, "", ReasonMalformed},
		{"control char", "", "Bearer a.b\x01.c", KindNone, "", ReasonMalformed},
		{"non-ASCII", "", "Bearer a.bé.c", KindNone, "", ReasonMalformed},
		{"over-long", "", "Bearer " + strings.Repeat("a", MaxCredentialLen-3) + ".b.c", KindNone, "", ReasonMalformed},
		{"longest allowed", "", "Bearer " + strings.Repeat("a", MaxCredentialLen-4) + ".b.", KindJWT, strings.Repeat("a", MaxCredentialLen-4) + ".b.", ReasonOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kind, tok, r := ParseCredential([]byte(c.xKey), []byte(c.authz))
			if kind != c.kind || string(tok) != c.token || r != c.reason {
				t.Fatalf("got (%d, %d bytes, %s), want (%d, %d bytes, %s)", kind, len(tok), r, c.kind, len(c.token), c.reason)
			}
		})
	}
}
