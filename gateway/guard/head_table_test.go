package guard

import (
	"strings"
	"testing"
)

// TestByteTables: the byte tables say what RFC 9110 says, for every byte.
func TestByteTables(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		token := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
		if tchar[c] != token {
			t.Errorf("tchar[%#x] = %v, want %v", c, tchar[c], token)
		}
		if nameChar[c] != (token && b != '_') {
			t.Errorf("nameChar[%#x] = %v", c, nameChar[c])
		}
		if bad := (b < 0x20 && b != '\t') || b == 0x7f; badValue[c] != bad {
			t.Errorf("badValue[%#x] = %v, want %v", c, badValue[c], bad)
		}
	}
}
