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
	var scratch [256]byte
	for v := connectionTokens(hdr.PeekBytes(hopHeaders[0]), &scratch); len(v) > 0; {
		var tok []byte
		if tok, v = nextToken(v); len(tok) > 0 {
			hdr.DelBytes(tok)
		}
	}
	for _, k := range hopHeaders {
		hdr.DelBytes(k)
	}
	hdr.ResetConnectionClose()
	for _, k := range agentHeaders {
		hdr.DelBytes(k)
	}
	deleteCaracal(hdr)
	if len(credName) > 0 {
		hdr.SetBytesKV(credName, credValue)
	}
	h.setForwarded(hdr, peer, isTLS)
}

func (h *Hygiene) setForwarded(hdr *fasthttp.RequestHeader, peer net.IP, isTLS bool) {
	var scratch [256]byte
	buf := scratch[:0]
	addr, ok := netip.AddrFromSlice(peer)
	addr = addr.Unmap()
	if ok && h.Trusted(addr) {
		for i := 0; i < maxHeaderScans; i++ {
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
		hdr.DelBytes(headerXFF)
		for _, k := range untrustedForwarding {
			hdr.DelBytes(k)
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
// upstream response header before it is copied to the client.
func CleanResponse(hdr *fasthttp.ResponseHeader) {
	var scratch [256]byte
	for v := connectionTokens(hdr.PeekBytes(hopHeaders[0]), &scratch); len(v) > 0; {
		var tok []byte
		if tok, v = nextToken(v); len(tok) > 0 {
			hdr.DelBytes(tok)
		}
	}
	for _, k := range hopHeaders {
		hdr.DelBytes(k)
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
