package ssrf

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
)

func newGuard(t testing.TB, opts Options) *Guard {
	t.Helper()
	g, err := New([]string{"api.example.com", "*.models.example", "1.1.1.1", "rebind.example", "mixed.example",
		"loop.example", "ten.example", "meta.example", "six.example", "public.example", "mapped.example",
		"localhost", "2130706433", "127.1", "0177.0.0.1", "0x7f.1", "::ffff:127.0.0.1", "nat64.example"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestCheckURL(t *testing.T) {
	g := newGuard(t, Options{})
	cases := []struct {
		url  string
		host string
		port int
		err  error
	}{
		{"https://api.example.com/v1/chat?x=1", "api.example.com", 443, nil},
		{"HTTP://API.Example.COM:8080", "API.Example.COM", 8080, nil},
		{"https://a.b.models.example/x", "a.b.models.example", 443, nil},
		{"https://api.example.com./x", "api.example.com.", 443, nil},
		{"http://1.1.1.1/", "1.1.1.1", 80, nil},
		{"https://models.example/", "", 0, ErrNotAllowed},
		{"https://evil.com/", "", 0, ErrNotAllowed},
		{"https://api.example.com.evil.com/", "", 0, ErrNotAllowed},
		{"https://evilapi.example.com/", "", 0, ErrNotAllowed},
		{"ftp://api.example.com/", "", 0, ErrScheme},
		{"file:///etc/passwd", "", 0, ErrScheme},
		{"gopher://api.example.com/", "", 0, ErrScheme},
		{"https://user:pw@api.example.com/", "", 0, ErrUserinfo},
		{"https://api.example.com@evil.com/", "", 0, ErrUserinfo},
		{"//api.example.com/", "", 0, ErrBadURL},
		{"api.example.com", "", 0, ErrBadURL},
		{"https://api.example.com:0/", "", 0, ErrBadURL},
		{"https://api.example.com:65536/", "", 0, ErrBadURL},
		{"https://api.example.com:80a/", "", 0, ErrBadURL},
		{"https://api%2eexample.com/", "", 0, ErrBadURL},
		{"https://api.example.com\\@evil.com/", "", 0, ErrUserinfo},
		{"https://api.example.com\\.evil.com/", "", 0, ErrBadURL},
		{"https:///x", "", 0, ErrBadURL},
		{"https://[::1/", "", 0, ErrBadURL},
		{"https://1.2.3.4.5/", "", 0, ErrBadURL},
		{"https://foo.0x10/", "", 0, ErrBadURL},
		{"http://127.0.0.1/", "", 0, ErrDeniedAddress},
		{"http://localhost/", "localhost", 80, nil}, // a name: Dial resolves and denies it
		{"http://2130706433/", "", 0, ErrDeniedAddress},
		{"http://0177.0.0.1/", "", 0, ErrDeniedAddress},
		{"http://0x7f.1/", "", 0, ErrDeniedAddress},
		{"http://127.1/", "", 0, ErrDeniedAddress},
		{"http://0/", "", 0, ErrDeniedAddress},
		{"http://10.0.0.1/", "", 0, ErrDeniedAddress},
		{"http://169.254.169.254/latest/meta-data", "", 0, ErrDeniedAddress},
		{"http://0xa9fea9fe/", "", 0, ErrDeniedAddress},
		{"http://100.64.0.1/", "", 0, ErrDeniedAddress},
		{"http://192.168.1.1/", "", 0, ErrDeniedAddress},
		{"http://255.255.255.255/", "", 0, ErrDeniedAddress},
		{"http://224.0.0.1/", "", 0, ErrDeniedAddress},
		{"http://[::1]/", "", 0, ErrDeniedAddress},
		{"http://[::]/", "", 0, ErrDeniedAddress},
		{"http://[::ffff:127.0.0.1]/", "", 0, ErrDeniedAddress},
		{"http://[::ffff:7f00:1]:8080/", "", 0, ErrDeniedAddress},
		{"http://[::127.0.0.1]/", "", 0, ErrDeniedAddress},
		{"http://[64:ff9b::a9fe:a9fe]/", "", 0, ErrDeniedAddress},
		{"http://[64:ff9b::10.0.0.1]/", "", 0, ErrDeniedAddress},
		{"http://[fe80::1]/", "", 0, ErrDeniedAddress},
		{"http://[fe80::1%25eth0]/", "", 0, ErrDeniedAddress},
		{"http://[fd00::1]/", "", 0, ErrDeniedAddress},
		{"http://[fec0::1]/", "", 0, ErrDeniedAddress},
		{"http://[ff02::1]/", "", 0, ErrDeniedAddress},
		{"http://[2002:7f00:1::]/", "", 0, ErrDeniedAddress},
		{"http://[2606:4700::1111]/", "", 0, ErrNotAllowed},
	}
	for _, c := range cases {
		host, port, err := g.CheckURL([]byte(c.url))
		if !errors.Is(err, c.err) || string(host) != c.host || port != c.port {
			t.Errorf("%s: got (%q, %d, %v), want (%q, %d, %v)", c.url, host, port, err, c.host, c.port, c.err)
		}
	}
}

func TestDenied(t *testing.T) {
	cases := []struct {
		ip     string
		denied bool
	}{
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"2606:4700::1111", false}, {"64:ff9b::808:808", false},
		{"::ffff:8.8.8.8", false}, {"2002:808:808::1", false},
		{"127.0.0.1", true}, {"127.255.255.254", true}, {"10.1.2.3", true}, {"172.16.0.1", true},
		{"172.31.255.255", true}, {"192.168.0.1", true}, {"169.254.169.254", true}, {"100.64.0.1", true},
		{"100.127.255.255", true}, {"0.0.0.0", true}, {"0.1.2.3", true}, {"255.255.255.255", true},
		{"224.0.0.251", true}, {"::", true}, {"::1", true}, {"fe80::1", true}, {"fc00::1", true},
		{"fd12:3456::1", true}, {"fec0::1", true}, {"ff02::1", true}, {"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true}, {"64:ff9b::7f00:1", true}, {"64:ff9b::c0a8:1", true},
		{"::ffff:0:a00:1", true}, {"2002:a00:1::", true}, {"2001:db8::1", true}, {"2001::1", true},
	}
	for _, c := range cases {
		if got := Denied(netip.MustParseAddr(c.ip)); got != c.denied {
			t.Errorf("Denied(%s) = %v, want %v", c.ip, got, c.denied)
		}
	}
	if !Denied(netip.Addr{}) {
		t.Error("invalid address allowed")
	}
}

func TestParseLooseIPv4(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"2130706433", "127.0.0.1"}, {"0177.0.0.1", "127.0.0.1"}, {"0x7f.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"}, {"127.0.1", "127.0.0.1"}, {"0x7f000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"}, {"10.1", "10.0.0.1"}, {"1.2.3.4", "1.2.3.4"}, {"1.2.3.4.", "1.2.3.4"},
		{"0", "0.0.0.0"}, {"0xA9FEA9FE", "169.254.169.254"},
		{"256.1.1.1", ""}, {"1.2.3.4.5", ""}, {"08", ""}, {"0x", "0.0.0.0"}, {"1..2", ""}, {"", ""},
		{"4294967296", ""}, {"1.16777216", ""}, {"example.com", ""}, {"1.2.3.", "1.2.0.3"},
	}
	for _, c := range cases {
		ip, ok := parseLooseIPv4([]byte(c.in))
		got := ""
		if ok {
			got = ip.String()
		}
		if got != c.want {
			t.Errorf("parseLooseIPv4(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// fakeResolver answers from a table; a name with several answers returns them in turn
// on successive lookups (a rebinding DNS server).
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]string
	calls   map[string]int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	i := r.calls[host]
	r.calls[host]++
	if i >= len(seq) {
		i = len(seq) - 1
	}
	var ips []netip.Addr
	for _, s := range seq[i] {
		ips = append(ips, netip.MustParseAddr(s))
	}
	return ips, nil
}

// recorder is the dial hook: it records every address a connection is attempted to
// and never really connects.
type recorder struct {
	mu    sync.Mutex
	addrs []string
}

func (r *recorder) dial(_ context.Context, _, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, addr)
	r.mu.Unlock()
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func TestDialNeverReachesDeniedAddress(t *testing.T) {
	res := &fakeResolver{calls: map[string]int{}, answers: map[string][][]string{
		"loop.example":   {{"127.0.0.1"}},
		"localhost":      {{"127.0.0.1", "::1"}},
		"ten.example":    {{"10.1.2.3"}},
		"meta.example":   {{"169.254.169.254"}},
		"mixed.example":  {{"93.184.216.34", "192.168.1.10"}},
		"six.example":    {{"::1"}},
		"mapped.example": {{"::ffff:10.0.0.1"}},
		"nat64.example":  {{"64:ff9b::a9fe:a9fe"}},
		"rebind.example": {{"93.184.216.34"}, {"127.0.0.1"}, {"127.0.0.1"}},
		"public.example": {{"93.184.216.34", "2606:2800:220:1::1"}},
	}}
	rec := &recorder{}
	g := newGuard(t, Options{Resolver: res, DialContext: rec.dial})
	cases := []struct {
		addr string
		ok   bool
	}{
		{"loop.example:80", false},
		{"localhost:80", false},
		{"ten.example:443", false},
		{"meta.example:80", false},
		{"mixed.example:443", false},
		{"six.example:443", false},
		{"mapped.example:443", false},
		{"nat64.example:443", false},
		{"rebind.example:443", true},  // first answer: public
		{"rebind.example:443", false}, // rebound to loopback: denied, not dialled
		{"rebind.example:443", false},
		{"public.example:443", true},
		{"evil.example:443", false}, // not on the allow-list: never resolved
		{"127.0.0.1:80", false},
		{"[::1]:80", false},
		{"2130706433:80", false},
		{"127.1:80", false},
		{"0x7f.1:80", false},
		{"[::ffff:127.0.0.1]:80", false},
		{"1.1.1.1:443", true},
	}
	for _, c := range cases {
		conn, err := g.Dial(c.addr)
		if conn != nil {
			conn.Close()
		}
		if (err == nil) != c.ok {
			t.Errorf("Dial(%s): err %v, want ok=%v", c.addr, err, c.ok)
		}
	}
	want := []string{"93.184.216.34:443", "93.184.216.34:443", "1.1.1.1:443"}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, a := range rec.addrs {
		ap := netip.MustParseAddrPort(a)
		if Denied(ap.Addr()) {
			t.Errorf("a connection to denied %s was attempted", a)
		}
	}
	if len(rec.addrs) != len(want) {
		t.Fatalf("dialled %v, want %v", rec.addrs, want)
	}
	for i := range want {
		if rec.addrs[i] != want[i] {
			t.Errorf("dial %d went to %s, want %s", i, rec.addrs[i], want[i])
		}
	}
	if res.calls["evil.example"] != 0 {
		t.Error("a name off the allow-list was resolved")
	}
}

func TestNewRejectsBadEntries(t *testing.T) {
	for _, a := range []string{"", "*.", "a.*.b", "http://x", "x:80", "u@x"} {
		if _, err := New([]string{a}, Options{}); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
}

func TestCheckURLNoAlloc(t *testing.T) {
	g := newGuard(t, Options{})
	raws := [][]byte{[]byte("https://a.models.example:8443/v1?x"), []byte("http://[::ffff:127.0.0.1]/"), []byte("http://0x7f.1/")}
	n := testing.AllocsPerRun(100, func() {
		for _, r := range raws {
			_, _, _ = g.CheckURL(r)
		}
	})
	if n != 0 {
		t.Fatalf("CheckURL allocates %.1f times per run", n)
	}
}
