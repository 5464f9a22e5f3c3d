package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// hopHeaders are removed from every forwarded request and response (RFC 9110 7.6.1
// and the de-facto ones httputil.ReverseProxy removes).
var hopHeaders = [][]byte{
	[]byte("Connection"),
	[]byte("Proxy-Connection"),
	[]byte("Keep-Alive"),
	[]byte("Proxy-Authenticate"),
	[]byte("Proxy-Authorization"),
	[]byte("Te"),
	[]byte("Trailer"),
	[]byte("Transfer-Encoding"),
	[]byte("Upgrade"),
}

// agentHeaders carry the agent's own credentials or client-supplied forwarding claims
// that the upstream must never see.
var agentHeaders = [][]byte{
	[]byte("Authorization"),
	[]byte("X-Api-Key"),
}

// untrustedForwarding are dropped when the direct peer is not a trusted proxy.
var untrustedForwarding = [][]byte{
	[]byte("Forwarded"),
	[]byte("X-Forwarded-Host"),
	[]byte("X-Real-Ip"),
}

var (
	caracalPrefix = []byte("x-caracal-")
	headerXFF     = []byte("X-Forwarded-For")
	headerXFP     = []byte("X-Forwarded-Proto")
	protoHTTPS    = []byte("https")
	protoHTTP     = []byte("http")
	commaSpace    = []byte(", ")
)

// maxHeaderScans bounds the loops that delete headers one at a time.
const maxHeaderScans = 256

// Hygiene holds the settings of request header cleanup that are the same for every
// route: the set of trusted proxies whose X-Forwarded-For is kept.
type Hygiene struct {
	trusted []netip.Prefix
}

// NewHygiene parses the trusted proxies once; each entry is a CIDR ("10.0.0.0/8") or
// a single address.
func NewHygiene(trustedProxies []string) (*Hygiene, error) {
	h := &Hygiene{}
	for _, s := range trustedProxies {
		s = strings.TrimSpace(s)
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("cannot parse trusted proxy %q: %w", s, err)
		}
		h.trusted = append(h.trusted, p)
	}
	return h, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted reports whether peer is one of the trusted proxies.
func (h *Hygiene) Trusted(peer netip.Addr) bool {
	peer = peer.Unmap()
	for _, p := range h.trusted {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// CleanRequest prepares req for the upstream: hop-by-hop headers and those named in
// Connection, X-Caracal-* headers and the agent's credentials are removed; credName:
// credValue is set when credName is not empty; X-Forwarded-For gets peer appended
// (the incoming value is kept only when peer is trusted) and X-Forwarded-Proto is set.
// It does not allocate once req's buffers have grown.
func (h *Hygiene) CleanRequest(req *fasthttp.Request, peer net.IP, isTLS bool, credName, credValue []byte) {
	hdr := &req.Header
	m := allPresent
	if len(hdr.PeekTrailerKeys()) == 0 {
		m = presence(hdr.PeekKeys())
	}
	if m.has(bitConnection) {
		var scratch [256]byte
		for v := connectionTokens(hdr.PeekBytes(hopHeaders[0]), &scratch); len(v) > 0; {
			var tok []byte
			if tok, v = nextToken(v); len(tok) > 0 {
				hdr.DelBytes(tok)
			}
		}
	}
	for i, k := range hopHeaders {
		if m.has(bitHop + i) {
			hdr.DelBytes(k)
		}
	}
	hdr.ResetConnectionClose()
	for i, k := range agentHeaders {
		if m.has(bitAgent + i) {
			hdr.DelBytes(k)
		}
	}
	if m.has(bitCaracal) {
		deleteCaracal(hdr)
	}
	if len(credName) > 0 {
		hdr.SetBytesKV(credName, credValue)
	}
	h.setForwarded(hdr, peer, isTLS, m)
}

// present is the set of cleanable headers a message carries, as bits: the
// hop-by-hop headers (in hopHeaders order), the agent's credentials, X-Caracal-*,
// X-Forwarded-For and the forwarding headers trusted only from trusted peers.
// Deleting a header costs a normalised copy of its name and a scan of every
// header, so only those present are deleted.
type present uint32

const (
	bitHop        = 0
	bitConnection = bitHop // hopHeaders[0]
	bitAgent      = bitHop + 9
	bitCaracal    = bitAgent + 2
	bitXFF        = bitCaracal + 1
	bitUntrusted  = bitXFF + 1

	allPresent present = 1<<(bitUntrusted+3) - 1
)

func (m present) has(bit int) bool { return m&(1<<bit) != 0 }

// presence classifies keys (a message's header names, trailers excluded: a
// message with trailers is cleaned as if it had every header).
func presence(keys [][]byte) present {
	var m present
	for _, k := range keys {
		if len(k) >= len(caracalPrefix) && asciiEqualFold(k[:len(caracalPrefix)], caracalPrefix) {
			m |= 1 << bitCaracal
			continue
		}
		for i, n := range hopHeaders {
			if sameName(k, n) {
				m |= 1 << (bitHop + i)
			}
		}
		for i, n := range agentHeaders {
			if sameName(k, n) {
				m |= 1 << (bitAgent + i)
			}
		}
		if sameName(k, headerXFF) {
			m |= 1 << bitXFF
		}
		for i, n := range untrustedForwarding {
			if sameName(k, n) {
				m |= 1 << (bitUntrusted + i)
			}
		}
	}
	return m
}

func (h *Hygiene) setForwarded(hdr *fasthttp.RequestHeader, peer net.IP, isTLS bool, m present) {
	var scratch [256]byte
	buf := scratch[:0]
	addr, ok := netip.AddrFromSlice(peer)
	addr = addr.Unmap()
	if ok && h.Trusted(addr) {
		for i := 0; i < maxHeaderScans && m.has(bitXFF); i++ {
			v := hdr.PeekBytes(headerXFF)
			if v == nil {
				break
			}
			if len(buf) > 0 {
				buf = append(buf, commaSpace...)
			}
			buf = append(buf, v...)
			hdr.DelBytes(headerXFF)
		}
	} else {
		if m.has(bitXFF) {
			hdr.DelBytes(headerXFF)
		}
		for i, k := range untrustedForwarding {
			if m.has(bitUntrusted + i) {
				hdr.DelBytes(k)
			}
		}
	}
	if ok {
		if len(buf) > 0 {
			buf = append(buf, commaSpace...)
		}
		buf = addr.AppendTo(buf)
	}
	if len(buf) > 0 {
		hdr.SetBytesKV(headerXFF, buf)
	}
	if isTLS {
		hdr.SetBytesKV(headerXFP, protoHTTPS)
	} else {
		hdr.SetBytesKV(headerXFP, protoHTTP)
	}
}

// CleanResponse removes hop-by-hop headers and those named in Connection from an
// upstream response header before it is copied to the client. Its loop is
// CleanRequest's first half, written for the other header type: behind an
// interface, the Connection tokens' scratch buffer would escape to the heap.
func CleanResponse(hdr *fasthttp.ResponseHeader) {
	m := allPresent
	if len(hdr.PeekTrailerKeys()) == 0 {
		m = presence(hdr.PeekKeys())
	}
	if m.has(bitConnection) {
		var scratch [256]byte
		for v := connectionTokens(hdr.PeekBytes(hopHeaders[0]), &scratch); len(v) > 0; {
			var tok []byte
			if tok, v = nextToken(v); len(tok) > 0 {
				hdr.DelBytes(tok)
			}
		}
	}
	for i, k := range hopHeaders {
		if m.has(bitHop + i) {
			hdr.DelBytes(k)
		}
	}
}

// connectionTokens copies the Connection value v into scratch, because deleting
// headers may reuse the storage v points into; nextToken then walks its names.
func connectionTokens(v []byte, scratch *[256]byte) []byte {
	return scratch[:copy(scratch[:], v)]
}

func nextToken(v []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		tok, rest = v[:i], v[i+1:]
	} else {
		tok = v
	}
	return bytes.TrimSpace(tok), rest
}

// deleteCaracal removes every header whose name starts with X-Caracal-.
func deleteCaracal(hdr *fasthttp.RequestHeader) {
	for i := 0; i < maxHeaderScans; i++ {
		k := firstCaracal(hdr)
		if k == nil {
			return
		}
		hdr.DelBytes(k)
	}
}

func firstCaracal(hdr *fasthttp.RequestHeader) []byte {
	for _, k := range hdr.PeekKeys() {
		if len(k) >= len(caracalPrefix) && asciiEqualFold(k[:len(caracalPrefix)], caracalPrefix) {
			return k
		}
	}
	return nil
}

// sameName compares header names ignoring ASCII case.
func sameName(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i, c := range a {
		if lower(c) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// asciiEqualFold compares a with the lower-case b ignoring ASCII case.
func asciiEqualFold(a, lower []byte) bool {
	for i, c := range a {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
