package ssrf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

var (
	// ErrBadURL: not an absolute http(s) URL this package can read unambiguously.
	ErrBadURL = errors.New("malformed target URL")
	// ErrScheme: a scheme other than http or https.
	ErrScheme = errors.New("target scheme not allowed")
	// ErrUserinfo: the URL carries user:password@.
	ErrUserinfo = errors.New("userinfo in target URL not allowed")
	// ErrNotAllowed: the host is not on the allow-list.
	ErrNotAllowed = errors.New("target host not allowed")
	// ErrDeniedAddress: the host is, or resolves to, a denied address.
	ErrDeniedAddress = errors.New("target address denied")
)

// Resolver looks names up; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Guard; zero values pick the defaults named next to them.
type Options struct {
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
	// DialContext connects to a checked "ip:port"; defaults to a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds the lookup and the connection together; default 5s.
	Timeout time.Duration
}

// Guard checks client-chosen targets against an allow-list and the denied ranges.
type Guard struct {
	exact    []string // lower-case host names
	suffixes []string // lower-case ".suffix" from "*.suffix"
	opts     Options
}

// New builds a Guard from allow-list entries: an exact host name ("api.example.com")
// or a wildcard ("*.example.com", any name below example.com but not example.com).
func New(allow []string, opts Options) (*Guard, error) {
	g := &Guard{opts: opts}
	if g.opts.Resolver == nil {
		g.opts.Resolver = net.DefaultResolver
	}
	if g.opts.Timeout <= 0 {
		g.opts.Timeout = 5 * time.Second
	}
	if g.opts.DialContext == nil {
		g.opts.DialContext = (&net.Dialer{}).DialContext
	}
	for _, a := range allow {
		a = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(a)), ".")
		if s, ok := strings.CutPrefix(a, "*."); ok {
			if s == "" || strings.Contains(s, "*") {
				return nil, fmt.Errorf("cannot use allow-list entry %q: want *.domain", a)
			}
			g.suffixes = append(g.suffixes, "."+s)
			continue
		}
		if _, err := netip.ParseAddr(a); err == nil {
			g.exact = append(g.exact, a)
			continue
		}
		if a == "" || strings.ContainsAny(a, "*/:@") {
			return nil, fmt.Errorf("cannot use allow-list entry %q: want a host name", a)
		}
		g.exact = append(g.exact, a)
	}
	return g, nil
}

// Allowed reports whether host (any case, optional trailing dot) is on the allow-list.
func (g *Guard) Allowed(host []byte) bool {
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	for _, e := range g.exact {
		if len(e) == len(host) && foldEqual(host, e) {
			return true
		}
	}
	for _, s := range g.suffixes {
		if len(host) > len(s) && foldEqual(host[len(host)-len(s):], s) {
			return true
		}
	}
	return false
}

func foldEqual(b []byte, lower string) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// CheckURL validates a client-chosen target. host is a sub-slice of raw (brackets
// removed for IPv6), port is explicit or the scheme's default. It does not allocate.
func (g *Guard) CheckURL(raw []byte) (host []byte, port int, err error) {
	rest, port, err := cutScheme(raw)
	if err != nil {
		return nil, 0, err
	}
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if bytes.IndexByte(authority, '@') >= 0 {
		return nil, 0, ErrUserinfo
	}
	host, port, err = splitHostPort(authority, port)
	if err != nil {
		return nil, 0, err
	}
	if err := g.checkHost(host); err != nil {
		return nil, 0, err
	}
	return host, port, nil
}

func cutScheme(raw []byte) (rest []byte, defaultPort int, err error) {
	i := bytes.Index(raw, []byte("://"))
	if i <= 0 {
		return nil, 0, ErrBadURL
	}
	switch scheme := raw[:i]; {
	case len(scheme) == 4 && foldEqual(scheme, "http"):
		return raw[i+3:], 80, nil
	case len(scheme) == 5 && foldEqual(scheme, "https"):
		return raw[i+3:], 443, nil
	}
	return nil, 0, ErrScheme
}

// splitHostPort reads host[:port] or [v6]:port; only the characters of a host name
// or IP literal are accepted, so no percent-encoding or backslash trick can make
// another parser see a different host.
func splitHostPort(a []byte, port int) ([]byte, int, error) {
	var host, p []byte
	if len(a) > 0 && a[0] == '[' {
		i := bytes.IndexByte(a, ']')
		if i < 0 {
			return nil, 0, ErrBadURL
		}
		host, a = a[1:i], a[i+1:]
		if len(a) > 0 {
			if a[0] != ':' {
				return nil, 0, ErrBadURL
			}
			p = a[1:]
		}
	} else {
		host = a
		if i := bytes.IndexByte(a, ':'); i >= 0 {
			host, p = a[:i], a[i+1:]
		}
	}
	if len(host) == 0 || len(host) > 253 {
		return nil, 0, ErrBadURL
	}
	if p != nil {
		n, err := parsePort(p)
		if err != nil {
			return nil, 0, err
		}
		port = n
	}
	return host, port, nil
}

func parsePort(p []byte) (int, error) {
	if len(p) == 0 || len(p) > 5 {
		return 0, ErrBadURL
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, ErrBadURL
		}
		n = n*10 + int(c-'0')
	}
	if n == 0 || n > 65535 {
		return 0, ErrBadURL
	}
	return n, nil
}

// checkHost denies IP literals in any spelling that points into a denied range and
// requires the host to be on the allow-list.
func (g *Guard) checkHost(host []byte) error {
	if bytes.IndexByte(host, ':') >= 0 {
		// ParseAddr keeps no reference to its argument (a zone is cloned by
		// unique.Make), so the bytes may be viewed as a string without a copy.
		ip, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(host), len(host)))
		if err != nil {
			return ErrBadURL
		}
		if Denied(ip) {
			return ErrDeniedAddress
		}
	} else {
		for _, c := range host {
			if !isHostChar(c) {
				return ErrBadURL
			}
		}
		if ip, ok := parseLooseIPv4(host); ok {
			if Denied(ip) {
				return ErrDeniedAddress
			}
		} else if numericLastLabel(host) {
			return ErrBadURL // "1.2.3.4.5", "0x1.0x100000000": numbers a resolver may misread
		}
	}
	if !g.Allowed(host) {
		return ErrNotAllowed
	}
	return nil
}

func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// numericLastLabel reports whether the last label looks like a number (WHATWG URL
// parsing treats such a host as IPv4).
func numericLastLabel(host []byte) bool {
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	last := host[bytes.LastIndexByte(host, '.')+1:]
	_, ok := parseNumber(last)
	if ok {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(last) > 0
}

// Dial connects to addr ("host:port") for fasthttp: the host must be on the
// allow-list; a name is resolved here, denied when ANY of its addresses is denied,
// and the connection goes only to the addresses just checked (in order, first that
// answers).
func (g *Guard) Dial(addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot dial %q: %w", addr, ErrBadURL)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("cannot dial %q: %w", addr, ErrBadURL)
	}
	if err := g.checkHost([]byte(host)); err != nil {
		return nil, fmt.Errorf("cannot dial %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.Timeout)
	defer cancel()
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("cannot dial %q: %w", addr, err)
	}
	var lastErr error
	for _, ip := range ips {
		c, err := g.opts.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("cannot dial %q: %w", addr, lastErr)
}

// resolve returns the checked addresses of host; every one must be allowed.
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return checked([]netip.Addr{ip})
	}
	if ip, ok := parseLooseIPv4([]byte(host)); ok {
		return checked([]netip.Addr{ip})
	}
	ips, err := g.opts.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %q: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("cannot resolve %q: no address", host)
	}
	return checked(ips)
}

func checked(ips []netip.Addr) ([]netip.Addr, error) {
	for i, ip := range ips {
		if Denied(ip) {
			return nil, fmt.Errorf("%s: %w", ip, ErrDeniedAddress)
		}
		ips[i] = ip.Unmap()
	}
	return ips, nil
}
