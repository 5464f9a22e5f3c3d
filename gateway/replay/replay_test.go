package replay

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

var now = time.Unix(1_800_000_000, 0)

func ts(t time.Time) []byte { return []byte(strconv.FormatInt(t.Unix(), 10)) }

// Header validation and the window never reach Redis, so a nil client does.
func TestCheckRejectsBeforeRedis(t *testing.T) {
	c, err := New(nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "abcDEF012_-x"
	cases := []struct {
		name      string
		nonce, ts string
		want      Result
	}{
		{"no headers", "", "", Missing},
		{"nonce only", nonce, "", Malformed},
		{"timestamp only", "", string(ts(now)), Malformed},
		{"nonce too short", "abcdefg", string(ts(now)), Malformed},
		{"nonce too long", strings.Repeat("a", 129), string(ts(now)), Malformed},
		{"nonce with a dot", "abcdefgh.", string(ts(now)), Malformed},
		{"nonce with a space", "abcd efgh", string(ts(now)), Malformed},
		{"nonce with a colon (key injection)", "abcdefgh:x", string(ts(now)), Malformed},
		{"nonce non-ASCII", "abcdefghé", string(ts(now)), Malformed},
		{"timestamp negative", nonce, "-1", Malformed},
		{"timestamp with sign", nonce, "+" + string(ts(now)), Malformed},
		{"timestamp fraction", nonce, string(ts(now)) + ".5", Malformed},
		{"timestamp in milliseconds", nonce, strconv.FormatInt(now.UnixMilli(), 10), Malformed},
		{"timestamp too long", nonce, "1234567890123", Malformed},
		{"timestamp with space", nonce, " " + string(ts(now)), Malformed},
		{"stale beyond window", nonce, string(ts(now.Add(-301 * time.Second))), Stale},
		{"future beyond window", nonce, string(ts(now.Add(301 * time.Second))), Stale},
		{"zero timestamp", nonce, "0", Stale},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Check([]byte(tc.nonce), []byte(tc.ts), now); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestWindowEdges(t *testing.T) {
	c, err := New(nil, Config{Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{-10 * time.Second, 10 * time.Second, 0} {
		if r := c.validate([]byte("abcdefgh"), ts(now.Add(d)), now); r != Accepted {
			t.Fatalf("offset %s: %s", d, r)
		}
	}
	for _, d := range []time.Duration{-11 * time.Second, 11 * time.Second} {
		if r := c.validate([]byte("abcdefgh"), ts(now.Add(d)), now); r != Stale {
			t.Fatalf("offset %s: %s", d, r)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{Window: time.Millisecond}, {Window: -time.Second}, {LocalEntries: -1}} {
		if _, err := New(nil, cfg); err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
	}
}

func TestLocalRejectDoesNotAllocate(t *testing.T) {
	c, err := New(nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	nonce, stamp := []byte("seen-nonce-0001"), ts(now)
	c.local.add(nonce, now.Add(time.Minute).UnixNano(), now.UnixNano())
	allocs := testing.AllocsPerRun(500, func() {
		if c.Check(nonce, stamp, now) != Replayed {
			panic("not rejected")
		}
	})
	if allocs != 0 {
		t.Fatalf("local rejection allocates %.1f times", allocs)
	}
}

func TestSeenCacheBoundedAndExpiring(t *testing.T) {
	c := newSeenCache(cacheShards * 8)
	base := now.UnixNano()
	for i := range 10_000 {
		c.add([]byte("nonce-"+strconv.Itoa(i)), base+int64(time.Minute), base)
	}
	if n := c.len(); n > cacheShards*8 {
		t.Fatalf("cache holds %d entries, bound %d", n, cacheShards*8)
	}
	c.add([]byte("short-lived"), base+int64(time.Second), base)
	if !c.seen([]byte("short-lived"), base) {
		t.Fatal("fresh entry not seen")
	}
	if c.seen([]byte("short-lived"), base+int64(time.Second)) {
		t.Fatal("expired entry still seen")
	}
}

func TestResultNames(t *testing.T) {
	seen := map[string]bool{}
	for r := Accepted; r < resultCount; r++ {
		s := r.String()
		if s == "" || seen[s] || strings.ToLower(s) != s {
			t.Fatalf("result %d: bad or duplicate name %q", r, s)
		}
		seen[s] = true
	}
}
