package guard

import "bytes"

// verdict of checking one request head.
type verdict struct {
	status  int   // 0 when the head is acceptable
	framing int   // framingNone, framingLength or framingChunked
	length  int64 // body length with framingLength
}

const (
	framingNone = iota
	framingLength
	framingChunked
)

// checkHead validates a complete request head: head holds the request line and the
// header lines, each ending in CRLF, and the final empty line's CRLF.
func checkHead(head []byte, maxHeaders int) verdict {
	if bytes.IndexByte(head, '\n') < 0 {
		return verdict{status: 400}
	}
	line, rest, ok := cutLine(head)
	if !ok {
		return verdict{status: 400}
	}
	http10, ok := checkRequestLine(line)
	if !ok {
		return verdict{status: 400}
	}
	var v verdict
	var nCL, nTE, nHost, n int
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return verdict{status: 400}
		}
		if len(line) == 0 {
			break
		}
		n++
		if n > maxHeaders {
			return verdict{status: 431}
		}
		name, value, ok := splitHeader(line)
		if !ok {
			return verdict{status: 400}
		}
		switch {
		case foldEq(name, "content-length"):
			nCL++
			l, ok := parseLength(value)
			if !ok || nCL > 1 {
				return verdict{status: 400}
			}
			v.framing, v.length = framingLength, l
		case foldEq(name, "transfer-encoding"):
			nTE++
			if nTE > 1 || !foldEq(value, "chunked") {
				return verdict{status: 400}
			}
		case foldEq(name, "host"):
			nHost++
			if nHost > 1 {
				return verdict{status: 400}
			}
		}
	}
	if len(rest) != 0 {
		return verdict{status: 400}
	}
	if nTE > 0 {
		if nCL > 0 || http10 {
			return verdict{status: 400}
		}
		v.framing = framingChunked
	}
	return v
}

// cutLine splits off one CRLF-terminated line; a bare LF or CR makes ok false.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// checkRequestLine accepts "METHOD SP request-target SP HTTP/1.x".
func checkRequestLine(line []byte) (http10, ok bool) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return false, false
	}
	for _, c := range line[:sp1] {
		if !isTchar(c) {
			return false, false
		}
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return false, false
	}
	for _, c := range rest[:sp2] {
		if c <= ' ' || c == 0x7f {
			return false, false
		}
	}
	switch string(rest[sp2+1:]) {
	case "HTTP/1.1":
		return false, true
	case "HTTP/1.0":
		return true, true
	}
	return false, false
}

// splitHeader splits "name: value"; the name must be a token without '_' (and so
// without spaces or controls), the value free of controls other than HT. Leading OWS
// is cut; trailing OWS is kept so that "chunked " or "5 " do not pass as exact values.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false // also obs-fold: a line starting with SP or HT has no token
	}
	name = line[:i]
	for _, c := range name {
		if !nameChar[c] {
			return nil, nil, false
		}
	}
	value = line[i+1:]
	for _, c := range value {
		if badValue[c] {
			return nil, nil, false
		}
	}
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	return name, value, true
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool { return tchar[c] }

// tchar, nameChar (a token character but '_') and badValue (a control other
// than HT, or DEL) classify bytes by table: every byte of every head goes
// through them.
var tchar, nameChar, badValue = func() (t, n, v [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0
		n[c] = t[c] && b != '_'
		v[c] = (b < ' ' && b != '\t') || b == 0x7f
	}
	return
}()

func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func foldEq(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
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
