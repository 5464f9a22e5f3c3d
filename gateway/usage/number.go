package usage

import "math"

// maxExp bounds the decimal exponent that parseCount considers; any larger
// value saturates, so the loops below stay short on hostile input.
const maxExp = 40

// parseCount reads a raw JSON value as a non-negative token count, the way
// lenient upstream validators do: an integer, a number with a fraction or
// an exponent (rounded up), or a string holding one of those. Values above
// math.MaxInt64 saturate. ok is false for anything else, negative numbers
// included.
func parseCount(v []byte) (n int64, ok bool) {
	if s, isStr := stringContent(v); isStr {
		v = s
	}
	intPart, frac, exp, ok := splitNumber(v)
	if !ok {
		return 0, false
	}
	return ceilDecimal(intPart, frac, exp), true
}

// splitNumber splits a JSON number without sign into its digits before and
// after the point and its exponent (clamped to ±maxExp+20).
func splitNumber(v []byte) (intPart, frac []byte, exp int, ok bool) {
	i := 0
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	if i == 0 {
		return nil, nil, 0, false
	}
	intPart = v[:i]
	if i < len(v) && v[i] == '.' {
		j := i + 1
		for j < len(v) && isDigit(v[j]) {
			j++
		}
		if j == i+1 {
			return nil, nil, 0, false
		}
		frac, i = v[i+1:j], j
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		var ok bool
		exp, i, ok = parseExp(v, i+1)
		if !ok {
			return nil, nil, 0, false
		}
	}
	return intPart, frac, exp, i == len(v)
}

func parseExp(v []byte, i int) (exp, end int, ok bool) {
	neg := false
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		neg = v[i] == '-'
		i++
	}
	start := i
	for ; i < len(v) && isDigit(v[i]); i++ {
		if exp < 1_000_000 {
			exp = exp*10 + int(v[i]-'0')
		}
	}
	if i == start {
		return 0, 0, false
	}
	if exp > maxExp+20 {
		exp = maxExp + 20
	}
	if neg {
		exp = -exp
	}
	return exp, i, true
}

// ceilDecimal returns ceil(intPart.frac × 10^exp), saturated.
func ceilDecimal(intPart, frac []byte, exp int) int64 {
	// The integer part of the value is the first pos digits of intPart+frac.
	pos := len(intPart) + exp
	var acc int64
	total := len(intPart) + len(frac)
	roundUp := false
	for k := 0; k < total || k < pos; k++ {
		d := byte(0)
		if k < len(intPart) {
			d = intPart[k] - '0'
		} else if k < total {
			d = frac[k-len(intPart)] - '0'
		}
		if k >= pos {
			if d != 0 {
				roundUp = true
				break
			}
			continue
		}
		if acc > (math.MaxInt64-int64(d))/10 {
			return math.MaxInt64
		}
		acc = acc*10 + int64(d)
	}
	if roundUp {
		acc = addSat(acc, 1)
	}
	return acc
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
