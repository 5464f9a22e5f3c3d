package auth

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func FuzzParseCredential(f *testing.F) {
	f.Add([]byte(goodKey), []byte(nil))
	f.Add([]byte(nil), []byte("Bearer "+goodKey))
	f.Add([]byte(nil), []byte("bEaReR a.b.c"))
	f.Add([]byte(goodKey), []byte("Bearer x"))
	f.Add([]byte(nil), []byte("Bearer  a.b.c"))
	v := testAPIKeyVerifier()
	f.Fuzz(func(t *testing.T, xKey, authz []byte) {
		kind, tok, r := ParseCredential(xKey, authz)
		if r != ReasonOK {
			if kind != KindNone || tok != nil {
				t.Fatalf("refused (%s) but returned kind %d, token %q", r, kind, tok)
			}
			return
		}
		if len(tok) == 0 || len(tok) > MaxCredentialLen || (!bytes.HasSuffix(xKey, tok) && !bytes.HasSuffix(authz, tok)) {
			t.Fatalf("token %q is not a bounded suffix of the input", tok)
		}
		switch kind {
		case KindAPIKey:
			if !IsAPIKey(tok) {
				t.Fatalf("API key %q has the wrong format", tok)
			}
			if id, r := v.Verify(tok); (r == ReasonOK) != (id == agentA) {
				t.Fatalf("verify gave %v, %s", id, r)
			}
		case KindJWT:
			if bytes.Count(tok, []byte(".")) != 2 {
				t.Fatalf("JWT %q without 3 segments", tok)
			}
		default:
			t.Fatalf("accepted with kind %d", kind)
		}
	})
}

func FuzzJWT(f *testing.F) {
	k := mustKeys(f)
	f.Add([]byte(signToken(f, hdr("RS256"), claimsFor(issRS), k.rsa)))
	f.Add([]byte(signToken(f, hdr("ES256"), claimsFor(issES), k.ec)))
	f.Add([]byte(signToken(f, hdr("EdDSA"), claimsFor(issED), k.ed)))
	f.Add([]byte(signToken(f, hdr("HS256"), claimsFor(issHS), []byte(secret))))
	f.Add([]byte(seg(hdr("none")) + "." + seg(claimsFor(issRS)) + "."))
	v := testVerifier(f)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f.Fuzz(func(t *testing.T, token []byte) {
		cl, r := v.Verify(ctx, token)
		if r >= reasonCount {
			t.Fatalf("reason %d out of range", r)
		}
		if r == ReasonOK && (cl.Agent == "" || cl.Issuer == "") {
			t.Fatalf("accepted with claims %+v", cl)
		}
	})
}
