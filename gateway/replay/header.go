package replay

// Header names.
const (
	NonceHeader     = "X-Caracal-Nonce"
	TimestampHeader = "X-Caracal-Timestamp"
)

// Nonce length bounds.
const (
	MinNonceLen = 8
	MaxNonceLen = 128
)

// validNonce checks 8..128 characters of [A-Za-z0-9_-].
func validNonce(b []byte) bool {
	if len(b) < MinNonceLen || len(b) > MaxNonceLen {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseUnix parses unix seconds: 1..12 ASCII digits, nothing else (no sign,
// no space, no fraction).
func parseUnix(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
