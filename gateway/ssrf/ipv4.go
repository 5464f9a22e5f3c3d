package ssrf

import "net/netip"

// parseLooseIPv4 decodes host the way inet_aton (and so most resolvers and URL
// parsers) would: one to four parts separated by dots, each decimal, octal (leading 0)
// or hex (0x); the last part fills the remaining bytes ("127.1" is 127.0.0.1,
// "2130706433" is 127.0.0.1, "0x7f.1" is 127.0.0.1). ok is false when host is not
// such a number.
func parseLooseIPv4(host []byte) (ip netip.Addr, ok bool) {
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1] // a trailing dot is accepted by resolvers
	}
	var parts [4]uint64
	n := 0
	for len(host) > 0 || n == 0 {
		if n == 4 {
			return netip.Addr{}, false
		}
		end := 0
		for end < len(host) && host[end] != '.' {
			end++
		}
		v, ok := parseNumber(host[:end])
		if !ok {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if end == len(host) {
			break
		}
		host = host[end+1:]
		if len(host) == 0 {
			return netip.Addr{}, false
		}
	}
	var v uint64
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= parts[i] << (8 * (3 - i))
	}
	last := parts[n-1]
	if last >= 1<<(8*(5-n)) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseNumber(s []byte) (uint64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
		if len(s) == 0 {
			return 0, true // "0x" is 0 for inet_aton
		}
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var v uint64
	for _, c := range s {
		d := uint64(255)
		switch {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}
