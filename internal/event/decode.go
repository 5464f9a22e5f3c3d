package event

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a hand-written, allocation-free decoder for the metering wire
// format. It accepts exactly what encoding/json.Unmarshal into the old
// meteringJSON shape accepted, with the same result (the differential fuzz
// test FuzzDecodeMeteringDifferential holds it to that):
//   - the whole input is validated as JSON (nesting depth at most 10000);
//   - keys match exactly, else case-insensitively with Unicode simple folding;
//   - duplicate keys: the last wins; null leaves a string or integer as it was,
//     clears "v", "cost_micros" and "ancestors";
//   - integers must be integer literals that fit in 64 bits;
//   - an element of "ancestors" that is null keeps what the slice's backing
//     array held at that index (encoding/json reuses it).

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// jstr is the span of a JSON string's contents (without quotes); plain means
// it has no escape and no byte >= 0x80, so the span is its value.
type jstr struct {
	start, end int
	plain      bool
}

type meteringScan struct {
	b []byte

	hasV, hasCost   bool
	v, cost         int64
	ts, in, out     int64
	cacheW, cacheR  int64
	reserved, lat   int64
	status          int64
	id, kind        jstr
	agent, root     jstr
	route, model    jstr
	requestID, gw   jstr
	currency, price jstr
	numAnc          int
	anc             [MaxAncestors]jstr
}

const (
	mUnknown = iota
	mV
	mID
	mTs
	mKind
	mAgent
	mRoot
	mAncestors
	mRoute
	mModel
	mRequestID
	mGateway
	mInput
	mOutput
	mCost
	mReserved
	mCurrency
	mStatus
	mLatency
	mPricing
	mCacheWrite
	mCacheRead
)

// meteringKeys are the JSON names, indexed by the m* constants.
var meteringKeys = [...]string{"", "v", "id", "ts_us", "kind", "agent", "root", "ancestors", "route", "model",
	"request_id", "gateway", "input_tokens", "output_tokens", "cost_micros", "reserved_micros", "currency",
	"status", "latency_us", "pricing", "cache_write_tokens", "cache_read_tokens"}

func meteringKeyExact(k []byte) int {
	switch string(k) {
	case "v":
		return mV
	case "id":
		return mID
	case "ts_us":
		return mTs
	case "kind":
		return mKind
	case "agent":
		return mAgent
	case "root":
		return mRoot
	case "ancestors":
		return mAncestors
	case "route":
		return mRoute
	case "model":
		return mModel
	case "request_id":
		return mRequestID
	case "gateway":
		return mGateway
	case "input_tokens":
		return mInput
	case "output_tokens":
		return mOutput
	case "cost_micros":
		return mCost
	case "reserved_micros":
		return mReserved
	case "currency":
		return mCurrency
	case "status":
		return mStatus
	case "latency_us":
		return mLatency
	case "pricing":
		return mPricing
	case "cache_write_tokens":
		return mCacheWrite
	case "cache_read_tokens":
		return mCacheRead
	}
	return mUnknown
}

// meteringKey finds the field of the key whose raw contents are b[s.start:s.end].
func meteringKey(b []byte, s jstr) int {
	if s.plain {
		if f := meteringKeyExact(b[s.start:s.end]); f != mUnknown {
			return f
		}
	}
	return foldedKey(b[s.start:s.end], s.plain, meteringKeys[:])
}

// foldedKey is encoding/json's case-insensitive match of a key (raw string
// contents) against names (lower-case ASCII, index 0 unused): unquote, then
// compare folded forms (ASCII letters upper case, other runes the smallest
// of their simple-fold orbit). It returns the index in names, or 0.
func foldedKey(raw []byte, plain bool, names []string) int {
	// A name folds to at most 18 bytes (cache_write_tokens), one per rune;
	// a rune is at most 12 raw bytes (an escaped surrogate pair) and
	// unquotes to at most 3 bytes per raw byte.
	const maxName = 18
	const maxRaw = maxName * 12
	var ubuf [3 * maxRaw]byte
	var fbuf [64]byte
	key := raw
	if !plain {
		if len(raw) > maxRaw {
			return 0
		}
		key = appendUnquoted(ubuf[:0], raw)
	}
	folded := fbuf[:0]
	for i := 0; i < len(key); {
		c := key[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			folded = append(folded, c)
			i++
		} else {
			r, n := utf8.DecodeRune(key[i:])
			folded = utf8.AppendRune(folded, foldRune(r))
			i += n
		}
		if len(folded) > maxName { // longer than every name
			return 0
		}
	}
	for f := 1; f < len(names); f++ {
		if equalUpperASCII(folded, names[f]) {
			return f
		}
	}
	return 0
}

// equalUpperASCII reports whether folded is name (lower-case ASCII) in upper case.
func equalUpperASCII(folded []byte, name string) bool {
	if len(folded) != len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if folded[i] != c {
			return false
		}
	}
	return true
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// decodeMetering is DecodeMetering's implementation.
func decodeMetering(b []byte, e *Metering) error {
	var d meteringScan
	d.b = b
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return invalid("want a JSON object")
	}
	i, err := d.object(i + 1)
	if err != nil {
		return err
	}
	if skipSpace(b, i) != len(b) {
		return invalid("data after the JSON object at offset %d", i)
	}
	return d.fill(e)
}

func (d *meteringScan) object(i int) (int, error) {
	b := d.b
	i = skipSpace(b, i)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		var key jstr
		var err error
		if key, i, err = memberKey(b, i); err != nil {
			return i, err
		}
		f := meteringKey(b, key)
		switch f {
		case mUnknown:
			i, err = skipValue(b, i, 1)
		case mV:
			i, d.hasV, err = d.ptrInt(i, &d.v, d.hasV)
		case mCost:
			i, d.hasCost, err = d.ptrInt(i, &d.cost, d.hasCost)
		case mTs:
			i, err = d.int(i, &d.ts)
		case mInput:
			i, err = d.int(i, &d.in)
		case mOutput:
			i, err = d.int(i, &d.out)
		case mCacheWrite:
			i, err = d.int(i, &d.cacheW)
		case mCacheRead:
			i, err = d.int(i, &d.cacheR)
		case mReserved:
			i, err = d.int(i, &d.reserved)
		case mStatus:
			i, err = d.int(i, &d.status)
		case mLatency:
			i, err = d.int(i, &d.lat)
		case mAncestors:
			i, err = d.ancestors(i)
		default:
			i, err = d.str(i, d.strField(f))
		}
		if err != nil {
			return i, err
		}
		var end bool
		if i, end, err = nextMember(b, i); err != nil || end {
			return i, err
		}
	}
}

func (d *meteringScan) strField(f int) *jstr {
	switch f {
	case mID:
		return &d.id
	case mKind:
		return &d.kind
	case mAgent:
		return &d.agent
	case mRoot:
		return &d.root
	case mRoute:
		return &d.route
	case mModel:
		return &d.model
	case mRequestID:
		return &d.requestID
	case mGateway:
		return &d.gw
	case mCurrency:
		return &d.currency
	default: // mPricing
		return &d.price
	}
}

func isNull(b []byte, i int) bool {
	return len(b)-i >= 4 && b[i] == 'n' && b[i+1] == 'u' && b[i+2] == 'l' && b[i+3] == 'l'
}

// str decodes a string field: a string sets it, null leaves it.
func (d *meteringScan) str(i int, dst *jstr) (int, error) { return strField(d.b, i, dst) }

func strField(b []byte, i int, dst *jstr) (int, error) {
	switch {
	case b[i] == '"':
		s, j, ok := scanString(b, i+1)
		if !ok {
			return j, syntaxError(j)
		}
		*dst = s
		return j, nil
	case isNull(b, i):
		return i + 4, nil
	}
	return i, invalid("want a string at offset %d", i)
}

// int decodes an integer field: a number sets it, null leaves it.
func (d *meteringScan) int(i int, dst *int64) (int, error) { return intField(d.b, i, dst) }

func intField(b []byte, i int, dst *int64) (int, error) {
	if isNull(b, i) {
		return i + 4, nil
	}
	n, j, err := scanInt(b, i)
	if err != nil {
		return j, err
	}
	*dst = n
	return j, nil
}

// ptrInt decodes a pointer-to-integer field: null clears it.
func (d *meteringScan) ptrInt(i int, dst *int64, has bool) (int, bool, error) {
	return ptrIntField(d.b, i, dst, has)
}

func ptrIntField(b []byte, i int, dst *int64, has bool) (int, bool, error) {
	if isNull(b, i) {
		*dst = 0
		return i + 4, false, nil
	}
	n, j, err := scanInt(b, i)
	if err != nil {
		return j, has, err
	}
	*dst = n
	return j, true, nil
}

// ancestors decodes the []string field the way encoding/json does: null or
// [] drops the backing array; otherwise elements are stored into it by index
// (null keeps what is there) and the length becomes the element count.
func (d *meteringScan) ancestors(i int) (int, error) {
	b := d.b
	if isNull(b, i) {
		d.numAnc, d.anc = 0, [MaxAncestors]jstr{}
		return i + 4, nil
	}
	if b[i] != '[' {
		return i, invalid("ancestors: want an array at offset %d", i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		d.numAnc, d.anc = 0, [MaxAncestors]jstr{}
		return i + 1, nil
	}
	n := 0
	for {
		if i >= len(b) {
			return i, syntaxError(i)
		}
		switch {
		case b[i] == '"':
			s, j, ok := scanString(b, i+1)
			if !ok {
				return j, syntaxError(j)
			}
			if n < MaxAncestors {
				d.anc[n] = s
			}
			i = j
		case isNull(b, i):
			i += 4
		default:
			return i, invalid("ancestors: want strings at offset %d", i)
		}
		n++
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, syntaxError(i)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			d.numAnc = n
			return i + 1, nil
		default:
			return i, syntaxError(i)
		}
	}
}

// memberKey reads an object member's key and colon from i (at the opening
// quote) and returns the key and the offset of its value.
func memberKey(b []byte, i int) (jstr, int, error) {
	if i >= len(b) || b[i] != '"' {
		return jstr{}, i, syntaxError(i)
	}
	key, j, ok := scanString(b, i+1)
	if !ok {
		return jstr{}, j, syntaxError(j)
	}
	i = skipSpace(b, j)
	if i >= len(b) || b[i] != ':' {
		return jstr{}, i, syntaxError(i)
	}
	i = skipSpace(b, i+1)
	if i >= len(b) {
		return jstr{}, i, syntaxError(i)
	}
	return key, i, nil
}

// nextMember reads what follows a member's value: a comma (the next key's
// offset) or the closing brace (end is true, i is past it).
func nextMember(b []byte, i int) (next int, end bool, err error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, false, syntaxError(i)
	}
	switch b[i] {
	case ',':
		return skipSpace(b, i+1), false, nil
	case '}':
		return i + 1, true, nil
	}
	return i, false, syntaxError(i)
}

func syntaxError(i int) error {
	return invalid("malformed JSON at offset %d", i)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString scans a string whose opening quote is before b[i]; it returns
// the contents' span and the index after the closing quote.
func scanString(b []byte, i int) (jstr, int, bool) {
	s := jstr{start: i, plain: true}
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			s.end = i
			return s, i + 1, true
		case c == '\\':
			s.plain = false
			if i+1 >= len(b) {
				return s, i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || hex4(b[i+2:i+6]) < 0 {
					return s, i, false
				}
				i += 6
			default:
				return s, i, false
			}
		case c < 0x20:
			return s, i, false
		case c >= utf8.RuneSelf:
			s.plain = false
			i++
		default:
			i++
		}
	}
	return s, i, false
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// appendUnquoted appends the value of valid string contents raw, the way
// encoding/json unquotes: invalid UTF-8 and unpaired surrogates become U+FFFD.
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if len(raw)-i >= 6 && raw[i] == '\\' && raw[i+1] == 'u' {
						if r2 := hex4(raw[i+2:]); r2 >= 0 {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								dst = utf8.AppendRune(dst, dec)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, raw[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+n]...)
			}
			i += n
		}
	}
	return dst
}

// scanInt scans a JSON number at b[i] that must be an integer fitting in
// int64; it returns the value and the index after the number.
func scanInt(b []byte, i int) (int64, int, error) {
	start := i
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return 0, i, invalid("want a number at offset %d", start)
	}
	var u uint64
	overflow := false
	if b[i] == '0' {
		i++
	} else {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if u > (1<<64-1)/10 {
				overflow = true
			}
			u2 := u*10 + uint64(b[i]-'0')
			if u2 < u*10 {
				overflow = true
			}
			u = u2
			i++
		}
	}
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, i, invalid("number at offset %d is not an integer", start)
	}
	limit := uint64(1<<63 - 1)
	if neg {
		limit++
	}
	if overflow || u > limit {
		return 0, i, invalid("number at offset %d overflows int64", start)
	}
	if neg {
		return int64(-u), i, nil
	}
	return int64(u), i, nil
}

// skipValue validates and skips the JSON value at b[i] inside a container at
// nesting depth depth.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxError(i)
	}
	switch c := b[i]; {
	case c == '"':
		_, j, ok := scanString(b, i+1)
		if !ok {
			return j, syntaxError(j)
		}
		return j, nil
	case c == '{' || c == '[':
		if depth+1 > maxDepth {
			return i, invalid("JSON nested deeper than %d", maxDepth)
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, syntaxError(i)
				}
				_, j, ok := scanString(b, i+1)
				if !ok {
					return j, syntaxError(j)
				}
				i = skipSpace(b, j)
				if i >= len(b) || b[i] != ':' {
					return i, syntaxError(i)
				}
				i = skipSpace(b, i+1)
			}
			var err error
			if i, err = skipValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, syntaxError(i)
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case end:
				return i + 1, nil
			default:
				return i, syntaxError(i)
			}
		}
	case c == '-' || ('0' <= c && c <= '9'):
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return i, syntaxError(i)
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxError(i)
	}
	return i + len(lit), nil
}

func skipNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return i, syntaxError(i)
	}
	if b[i] == '0' {
		i++
	} else {
		i = skipDigits(b, i)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, syntaxError(i)
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, syntaxError(i)
		}
		i = skipDigits(b, i)
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// value returns the decoded contents of s: the span itself when plain, else
// the unquoted form appended to buf.
func (d *meteringScan) value(s jstr, buf []byte) []byte {
	if s.plain {
		return d.b[s.start:s.end]
	}
	return appendUnquoted(buf, d.b[s.start:s.end])
}

// fill validates the scanned fields exactly as the encoding/json decoder did
// and stores them into e.
func (d *meteringScan) fill(e *Metering) error {
	if !d.hasV || d.v != Version {
		return invalid("unsupported schema version")
	}
	e.Reset()
	var buf [64]byte
	var err error
	if e.ID, err = ParseID(d.value(d.id, buf[:0])); err != nil {
		return invalid("%v", err)
	}
	if d.ts <= 0 {
		return invalid("ts_us must be positive")
	}
	e.TimeUnixUs = d.ts
	switch k := d.value(d.kind, buf[:0]); string(k) {
	case "usage":
		e.Kind = KindUsage
	case "incomplete":
		e.Kind = KindIncomplete
	default:
		return invalid("unknown kind %q", string(k))
	}
	if e.Agent, err = ParseUUID(d.value(d.agent, buf[:0])); err != nil {
		return invalid("agent: %v", err)
	}
	if e.Root, err = ParseUUID(d.value(d.root, buf[:0])); err != nil {
		return invalid("root: %v", err)
	}
	if d.numAnc > MaxAncestors {
		return invalid("more than %d ancestors", MaxAncestors)
	}
	for i := 0; i < d.numAnc; i++ {
		if e.Ancestors[i], err = ParseUUID(d.value(d.anc[i], buf[:0])); err != nil {
			return invalid("ancestors[%d]: %v", i, err)
		}
	}
	e.NumAncestors = d.numAnc
	if (e.NumAncestors == 0) != (e.Root == e.Agent) || (e.NumAncestors > 0 && e.Ancestors[e.NumAncestors-1] != e.Root) {
		return invalid("root does not match the ancestors")
	}
	if d.route.end == d.route.start {
		return invalid("route is empty")
	}
	e.Route = d.appendValue(e.Route, d.route)
	e.Model = d.appendValue(e.Model, d.model)
	e.RequestID = d.appendValue(e.RequestID, d.requestID)
	e.Gateway = d.appendValue(e.Gateway, d.gw)
	if d.in < 0 || d.out < 0 || d.reserved < 0 || d.lat < 0 {
		return invalid("negative token count, reservation or latency")
	}
	if !d.hasCost || d.cost < 0 {
		return invalid("cost_micros missing or negative")
	}
	e.InputTokens, e.OutputTokens, e.CostMicros, e.ReservedMicros = d.in, d.out, d.cost, d.reserved
	if !cachePartsValid(d.in, d.cacheW, d.cacheR) {
		return invalid("cache_write_tokens and cache_read_tokens must be non-negative and within input_tokens")
	}
	e.CacheWriteTokens, e.CacheReadTokens = d.cacheW, d.cacheR
	if c := d.value(d.currency, buf[:0]); len(c) != 3 || !isUpperBytes(c) {
		return invalid("currency must be three capital letters")
	} else {
		copy(e.Currency[:], c)
	}
	if d.status < 100 || d.status > 599 {
		return invalid("status %d out of range", d.status)
	}
	e.Status, e.LatencyUs = int(d.status), d.lat
	switch p := d.value(d.price, buf[:0]); string(p) {
	case "tokens":
		e.Pricing = PricingTokens
	case "per_request":
		e.Pricing = PricingPerRequest
	case "header":
		e.Pricing = PricingHeader
	case "estimate":
		e.Pricing = PricingEstimate
	default:
		return invalid("unknown pricing %q", string(p))
	}
	return nil
}

// cachePartsValid reports whether the prompt-cache parts of in (itself
// non-negative) are non-negative and sum to at most in; their sum saturates
// at math.MaxInt64, as the gateway's input total does.
func cachePartsValid(in, cacheW, cacheR int64) bool {
	if cacheW < 0 || cacheR < 0 {
		return false
	}
	sum := cacheW + cacheR
	if sum < cacheW { // overflow: saturate
		sum = 1<<63 - 1
	}
	return sum <= in
}

func (d *meteringScan) appendValue(dst []byte, s jstr) []byte {
	if s.plain {
		return append(dst, d.b[s.start:s.end]...)
	}
	return appendUnquoted(dst, d.b[s.start:s.end])
}

func isUpperBytes(s []byte) bool {
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

const (
	aUnknown = iota
	aV
	aID
	aTs
	aType
	aAgent
	aRoute
	aReason
	aStatus
	aClientIP
	aKeyPrefix
	aRequestID
	aGateway
)

var auditKeys = [...]string{"", "v", "id", "ts_us", "type", "agent", "route", "reason", "status", "client_ip",
	"key_prefix", "request_id", "gateway"}

func auditKeyExact(k []byte) int {
	switch string(k) {
	case "v":
		return aV
	case "id":
		return aID
	case "ts_us":
		return aTs
	case "type":
		return aType
	case "agent":
		return aAgent
	case "route":
		return aRoute
	case "reason":
		return aReason
	case "status":
		return aStatus
	case "client_ip":
		return aClientIP
	case "key_prefix":
		return aKeyPrefix
	case "request_id":
		return aRequestID
	case "gateway":
		return aGateway
	}
	return aUnknown
}

type auditScan struct {
	b              []byte
	hasV, hasAgent bool
	v, ts, status  int64
	str            [aGateway + 1]jstr // by field; aV, aTs and aStatus unused
}

// decodeAudit is DecodeAudit's implementation, with the same guarantees as
// decodeMetering for the old auditJSON shape ("agent" is a *string: null
// clears it).
func decodeAudit(b []byte, a *Audit) error {
	d := auditScan{b: b}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return invalid("want a JSON object")
	}
	i, err := d.object(i + 1)
	if err != nil {
		return err
	}
	if skipSpace(b, i) != len(b) {
		return invalid("data after the JSON object at offset %d", i)
	}
	return d.fill(a)
}

func (d *auditScan) object(i int) (int, error) {
	b := d.b
	i = skipSpace(b, i)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		var key jstr
		var err error
		if key, i, err = memberKey(b, i); err != nil {
			return i, err
		}
		f := aUnknown
		if key.plain {
			f = auditKeyExact(b[key.start:key.end])
		}
		if f == aUnknown {
			f = foldedKey(b[key.start:key.end], key.plain, auditKeys[:])
		}
		switch f {
		case aUnknown:
			i, err = skipValue(b, i, 1)
		case aV:
			i, d.hasV, err = ptrIntField(b, i, &d.v, d.hasV)
		case aTs:
			i, err = intField(b, i, &d.ts)
		case aStatus:
			i, err = intField(b, i, &d.status)
		case aAgent:
			if isNull(b, i) {
				d.hasAgent = false
				i += 4
			} else if i, err = strField(b, i, &d.str[aAgent]); err == nil {
				d.hasAgent = true
			}
		default:
			i, err = strField(b, i, &d.str[f])
		}
		if err != nil {
			return i, err
		}
		var end bool
		if i, end, err = nextMember(b, i); err != nil || end {
			return i, err
		}
	}
}

func (d *auditScan) appendValue(dst []byte, f int) []byte {
	s := d.str[f]
	if s.plain {
		return append(dst, d.b[s.start:s.end]...)
	}
	return appendUnquoted(dst, d.b[s.start:s.end])
}

// fill validates the scanned fields exactly as the encoding/json decoder did
// and stores them into a.
func (d *auditScan) fill(a *Audit) error {
	if !d.hasV || d.v != Version {
		return invalid("unsupported schema version")
	}
	a.Reset()
	var buf [64]byte
	var err error
	if a.ID, err = ParseID(d.appendValue(buf[:0], aID)); err != nil {
		return invalid("%v", err)
	}
	if d.ts <= 0 {
		return invalid("ts_us must be positive")
	}
	if s := d.str[aType]; s.start == s.end {
		return invalid("type is empty")
	}
	if d.hasAgent {
		if a.Agent, err = ParseUUID(d.appendValue(buf[:0], aAgent)); err != nil {
			return invalid("agent: %v", err)
		}
	}
	if d.status != 0 && (d.status < 100 || d.status > 599) {
		return invalid("status %d out of range", d.status)
	}
	a.TimeUnixUs, a.Status = d.ts, int(d.status)
	a.Type = d.appendValue(a.Type, aType)
	a.Route = d.appendValue(a.Route, aRoute)
	a.Reason = d.appendValue(a.Reason, aReason)
	a.ClientIP = d.appendValue(a.ClientIP, aClientIP)
	a.KeyPrefix = d.appendValue(a.KeyPrefix, aKeyPrefix)
	a.RequestID = d.appendValue(a.RequestID, aRequestID)
	a.Gateway = d.appendValue(a.Gateway, aGateway)
	return nil
}
