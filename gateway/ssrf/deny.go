package ssrf

import "net/netip"

func mustPrefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// deniedV4 are the IPv4 ranges no client-chosen target may reach.
var deniedV4 = mustPrefixes(
	"0.0.0.0/8",       // "this network", unspecified
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // CGNAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata 169.254.169.254
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast 255.255.255.255
)

// deniedV6 are the IPv6 ranges denied outright.
var deniedV6 = mustPrefixes(
	"::/96",          // unspecified, loopback, IPv4-compatible (deprecated)
	"64:ff9b:1::/48", // local-use NAT64
	"100::/64",       // discard-only
	"2001::/32",      // Teredo (embeds an obfuscated IPv4)
	"2001:db8::/32",  // documentation
	"fc00::/7",       // unique local
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	siit       = netip.MustParsePrefix("::ffff:0:0:0/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	mappedIPv4 = netip.MustParsePrefix("::ffff:0:0/96")
)

// Denied reports whether a connection to ip must never be made: loopback, private,
// link-local, CGNAT, unique local, site-local, multicast, unspecified, broadcast,
// reserved and documentation ranges, and IPv6 forms that embed a denied IPv4 address
// (IPv4-mapped, NAT64 64:ff9b::/96, SIIT, 6to4). An invalid address is denied.
func Denied(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	if ip.Zone() != "" {
		return true
	}
	if mappedIPv4.Contains(ip) {
		ip = ip.Unmap()
	}
	if ip.Is4() {
		return inAny(deniedV4, ip)
	}
	if inAny(deniedV6, ip) {
		return true
	}
	b := ip.As16()
	if nat64.Contains(ip) || siit.Contains(ip) {
		return Denied(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	if sixToFour.Contains(ip) {
		return Denied(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	return false
}

func inAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
