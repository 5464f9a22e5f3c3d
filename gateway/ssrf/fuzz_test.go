package ssrf

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzCheckURL: whatever CheckURL accepts is on the allow-list, is never a denied IP
// literal in any spelling, and is read the same way by net/url.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://api.example.com/v1", "http://127.1/", "http://[::ffff:127.0.0.1]/",
		"http://0x7f.1/", "http://2130706433/", "https://u@api.example.com/", "https://a.models.example:443/x"} {
		f.Add([]byte(s))
	}
	g, err := New([]string{"api.example.com", "*.models.example", "1.1.1.1", "2606:4700::1111"}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		host, port, err := g.CheckURL(raw)
		if err != nil {
			return
		}
		if !g.Allowed(host) {
			t.Fatalf("%q: host %q not on the allow-list", raw, host)
		}
		if port < 1 || port > 65535 {
			t.Fatalf("%q: port %d", raw, port)
		}
		if ip, err := netip.ParseAddr(string(host)); err == nil && Denied(ip) {
			t.Fatalf("%q: denied %s accepted", raw, ip)
		}
		if ip, ok := parseLooseIPv4(host); ok && Denied(ip) {
			t.Fatalf("%q: denied %s accepted", raw, ip)
		}
		u, err := url.Parse(string(raw))
		if err != nil {
			return // net/url is stricter about the path; the host is what matters here
		}
		if !strings.EqualFold(u.Hostname(), string(host)) {
			t.Fatalf("%q: net/url sees host %q, CheckURL %q", raw, u.Hostname(), host)
		}
	})
}
