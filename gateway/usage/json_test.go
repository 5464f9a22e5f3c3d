package usage

import "testing"

// TestKeyIs: raw keys equal a name byte for byte or once their escapes are
// decoded; an escape never makes a key of the name's length match.
func TestKeyIs(t *testing.T) {
	cases := []struct {
		raw, want string
		ok        bool
	}{
		{"model", "model", true},
		{"mode", "model", false},
		{"modex", "model", false},
		{"models", "model", false},
		{`mod\u0065l`, "model", true},
		{`\u006d\u006f\u0064\u0065\u006c`, "model", true},
		{`mod\u0065x`, "model", false},
		{`max\u005ftokens`, "max_tokens", true},
		{`\"`, `"`, true},
		{`\n`, "n", false},
		{`mod\u00`, "model", false},
		{"", "", true},
		{"", "model", false},
	}
	for _, c := range cases {
		if got := keyIs([]byte(c.raw), c.want); got != c.ok {
			t.Errorf("keyIs(%q, %q) = %v, want %v", c.raw, c.want, got, c.ok)
		}
	}
}

// TestSkipNestedStopsOnlyAtStructure: brackets inside strings, escaped
// quotes and deep nesting are skipped; a truncated value is -1.
func TestSkipNestedStopsOnlyAtStructure(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{`{"a":"}]","b":[1,{"c":"\"{"}]}tail`, 30},
		{`[[[[]]]],`, 8},
		{`{"a":1`, -1},
		{`{"a":"\"}`, -1},
	}
	for _, c := range cases {
		if got := skipNested([]byte(c.in), 0); got != c.want {
			t.Errorf("skipNested(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
