package usage

// The scanner below understands just enough JSON to walk the members of one
// object and to skip any value. It does not validate: on malformed input it
// stops early and reports what it found so far, never reading past the end.

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts with the
// quote at b[i], or -1 when it is not terminated.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just past the value that starts at b[i]
// (no leading space), or -1 when it is malformed or truncated.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		return skipNested(b, i)
	}
	// A number or a literal: runs up to the next delimiter.
	j := i
	for j < len(b) && !isDelim(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ':' || c == '"' || c == '{' || c == '[' || isSpace(c)
}

// skipNested skips an object or array by counting brackets, iteratively, so
// that a deeply nested body costs no stack.
func skipNested(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		if !structural[b[i]] {
			i++
			continue
		}
		switch b[i] {
		case '"':
			i = skipString(b, i)
			if i < 0 {
				return -1
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}

// structural marks the bytes skipNested stops at.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// object iterates over the members of the JSON object held in b.
type object struct {
	b    []byte
	i    int
	done bool
	// closed is set once the walk reached the object's closing brace, so
	// every member was seen.
	closed bool
	// members counts the members seen.
	members int
}

// openObject starts iterating over the object that begins at b[i] (leading
// space allowed); ok is false when no object starts there.
func openObject(b []byte) (object, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return object{done: true}, false
	}
	return object{b: b, i: i + 1}, true
}

// brace returns the offset of the object's opening brace.
func (o *object) brace() int {
	return skipSpace(o.b, 0)
}

// next returns the next member: key is the raw key between its quotes (JSON
// escapes not decoded), val the raw value (strings keep their quotes) and
// valStart its offset in b. ok is false at the end of the object or at the
// first malformed byte.
func (o *object) next() (key, val []byte, valStart int, ok bool) {
	if o.done {
		return nil, nil, 0, false
	}
	b := o.b
	i := skipSpace(b, o.i)
	if i < len(b) && b[i] == ',' && o.members > 0 {
		i = skipSpace(b, i+1)
	} else if i < len(b) && b[i] == '}' {
		o.done, o.closed = true, true
		return nil, nil, 0, false
	}
	if i >= len(b) || b[i] != '"' {
		o.done = true
		return nil, nil, 0, false
	}
	ke := skipString(b, i)
	if ke < 0 {
		o.done = true
		return nil, nil, 0, false
	}
	key = b[i+1 : ke-1]
	i = skipSpace(b, ke)
	if i >= len(b) || b[i] != ':' {
		o.done = true
		return nil, nil, 0, false
	}
	vs := skipSpace(b, i+1)
	ve := skipValue(b, vs)
	if ve < 0 {
		o.done = true
		return nil, nil, 0, false
	}
	o.i = ve
	o.members++
	return key, b[vs:ve], vs, true
}

// keyIs reports whether the raw key, once its JSON escapes are decoded,
// equals want (an ASCII name).
func keyIs(raw []byte, want string) bool {
	// An escape is longer than the character it stands for, so a raw key no
	// longer than want equals it only byte for byte.
	if len(raw) <= len(want) {
		return string(raw) == want
	}
	j := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' {
			var n int
			c, n = unescapeASCII(raw[i:])
			if n == 0 {
				return false
			}
			i += n - 1
		}
		if j >= len(want) || want[j] != c {
			return false
		}
		j++
	}
	return j == len(want)
}

// unescapeASCII decodes the escape at the start of s; n is its length, or 0
// when it is malformed or does not stand for an ASCII character.
func unescapeASCII(s []byte) (c byte, n int) {
	if len(s) < 2 {
		return 0, 0
	}
	switch s[1] {
	case '"', '\\', '/':
		return s[1], 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		if len(s) < 6 {
			return 0, 0
		}
		v := 0
		for _, h := range s[2:6] {
			d := hexVal(h)
			if d < 0 {
				return 0, 0
			}
			v = v<<4 | d
		}
		if v >= 0x80 {
			return 0, 0
		}
		return byte(v), 6
	}
	return 0, 0
}

func hexVal(h byte) int {
	switch {
	case h >= '0' && h <= '9':
		return int(h - '0')
	case h >= 'a' && h <= 'f':
		return int(h-'a') + 10
	case h >= 'A' && h <= 'F':
		return int(h-'A') + 10
	}
	return -1
}

// stringContent returns the bytes between the quotes of a raw string value.
func stringContent(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

func hasBackslash(s []byte) bool {
	for _, c := range s {
		if c == '\\' {
			return true
		}
	}
	return false
}

// isTrue reports whether a raw value is the literal true.
func isTrue(v []byte) bool {
	return string(v) == "true"
}
