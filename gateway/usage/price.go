package usage

import (
	"math"

	"github.com/caracal-gw/caracal/internal/control"
)

// Cost returns what a call with usage u costs at price, in micro-units:
//
//	ceil((plain×InputPerMTok + CacheWriteTokens×CacheWrite() + CacheReadTokens×CacheRead())/1e6)
//	+ ceil(OutputTokens×OutputPerMTok/1e6) + PerRequest
//
// where plain = InputTokens - CacheWriteTokens - CacheReadTokens, the input
// that touched no prompt cache. The input side is summed exactly in 128 bits
// and rounded up once, so with no cache price set (both fall back to the
// input price) the figure is ceil(InputTokens×InputPerMTok/1e6), as before
// cache tokens were priced apart; the output side is rounded up on its own.
// A saturated InputTokens (math.MaxInt64) hides its split and is charged
// whole at the input price, cache parts on top (never less). The sum
// saturates at math.MaxInt64. Negative counts or prices count as zero.
func Cost(u Usage, price control.Price) int64 {
	c := inputCost(&u, &price)
	c = addSat(c, mulDivCeil(u.OutputTokens, price.OutputPerMTok))
	return addSat(c, max(price.PerRequest, 0))
}

// inputCost is Cost's input side.
func inputCost(u *Usage, p *control.Price) int64 {
	cw, cr := max(u.CacheWriteTokens, 0), max(u.CacheReadTokens, 0)
	plain := max(u.InputTokens, 0)
	if plain < math.MaxInt64 {
		plain = max(plain-cw, 0)
		plain = max(plain-cr, 0)
	}
	var s sum128
	s.addMul(plain, p.InputPerMTok)
	s.addMul(cw, p.CacheWrite())
	s.addMul(cr, p.CacheRead())
	return s.divCeil()
}

// HeaderCost parses the decimal amount of a trusted response header (a
// header-priced route), such as "0.0125" or "3", into micro-units, exactly,
// with no float. Surrounding spaces and tabs are ignored. Digits beyond the
// sixth after the point round the amount up (never charge less than the
// upstream said). ok is false for anything but a non-negative decimal
// (signs, exponents, empty values) and for amounts above math.MaxInt64
// micro-units.
func HeaderCost(value []byte) (int64, bool) {
	v := trimOWS(value)
	intPart, frac, exp, ok := splitNumber(v)
	if !ok || exp != 0 || hasExp(v) {
		return 0, false
	}
	c := ceilDecimal(intPart, frac, 6)
	if c == math.MaxInt64 {
		return 0, false
	}
	return c, true
}

func hasExp(v []byte) bool {
	for _, c := range v {
		if c == 'e' || c == 'E' {
			return true
		}
	}
	return false
}

func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}
