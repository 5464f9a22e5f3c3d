package auth

import (
	"fmt"
	"os"
	"strings"
)

// minHMACSecret is the shortest HS256 secret accepted (RFC 7518 3.2: a key
// of the same size as the hash output or larger).
const minHMACSecret = 32

// resolveSecret reads an env:NAME or file:/path reference.
func resolveSecret(ref string, getenv func(string) string) ([]byte, error) {
	var s []byte
	switch {
	case strings.HasPrefix(ref, "env:"):
		s = []byte(getenv(ref[len("env:"):]))
	case strings.HasPrefix(ref, "file:"):
		b, err := os.ReadFile(ref[len("file:"):])
		if err != nil {
			return nil, fmt.Errorf("cannot read HMAC secret: %w", err)
		}
		s = []byte(strings.TrimRight(string(b), "\r\n"))
	default:
		return nil, fmt.Errorf("cannot resolve HMAC secret reference %q: want env:NAME or file:/path", ref)
	}
	if len(s) < minHMACSecret {
		return nil, fmt.Errorf("HMAC secret from %q is %d bytes, want at least %d", ref, len(s), minHMACSecret)
	}
	return s, nil
}
