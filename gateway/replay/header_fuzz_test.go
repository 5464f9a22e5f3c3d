package replay

import (
	"strconv"
	"testing"
	"time"
)

// FuzzReplayHeaders: the nonce and timestamp validation never panics and
// accepts exactly what it documents: 8..128 of [A-Za-z0-9_-] and 1..12
// ASCII digits within the window of now.
func FuzzReplayHeaders(f *testing.F) {
	now := int64(1_780_000_000)
	f.Add([]byte("abcdEFGH-_09"), []byte(strconv.FormatInt(now, 10)), now)
	f.Add([]byte(""), []byte(""), now)
	f.Add([]byte("short"), []byte("1780000000"), now)
	f.Add([]byte("abcdefgh"), []byte("+1780000000"), now)
	f.Add([]byte("abcdefgh"), []byte("999999999999"), now)
	f.Add([]byte("abcdefgh\x00"), []byte("1780000300"), now)
	c, err := New(nil, Config{Window: 300 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, nonce, ts []byte, nowSec int64) {
		if nowSec < -1<<40 || nowSec > 1<<40 {
			return // time.Unix range the gateway can be at
		}
		r := c.validate(nonce, ts, time.Unix(nowSec, 0))
		okNonce := len(nonce) >= MinNonceLen && len(nonce) <= MaxNonceLen
		for _, b := range nonce {
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
				okNonce = false
			}
		}
		okTs := len(ts) >= 1 && len(ts) <= 12
		for _, b := range ts {
			if b < '0' || b > '9' {
				okTs = false
			}
		}
		switch r {
		case Missing:
			if len(nonce) != 0 || len(ts) != 0 {
				t.Fatalf("Missing with nonce %q ts %q", nonce, ts)
			}
		case Malformed:
			if okNonce && okTs {
				t.Fatalf("well-formed nonce %q ts %q called malformed", nonce, ts)
			}
		case Stale, Accepted:
			if !okNonce || !okTs {
				t.Fatalf("%v for malformed nonce %q ts %q", r, nonce, ts)
			}
			sec, err := strconv.ParseInt(string(ts), 10, 64)
			if err != nil {
				t.Fatalf("accepted timestamp %q does not parse: %v", ts, err)
			}
			d := nowSec - sec
			inWindow := d <= 300 && d >= -300
			if (r == Accepted) != inWindow {
				t.Fatalf("timestamp %d at now %d: %v", sec, nowSec, r)
			}
		default:
			t.Fatalf("validate returned %v", r)
		}
	})
}
