package usage

import (
	"math"

	"github.com/caracal-gw/caracal/internal/control"
)

// Cost returns what a call with usage u costs at price, in micro-units:
// ceil(InputTokens×InputPerMTok/1e6) + ceil(OutputTokens×OutputPerMTok/1e6)
// + PerRequest, each component rounded up and the sum saturated at
// math.MaxInt64. Negative counts or prices count as zero.
func Cost(u Usage, price control.Price) int64 {
	c := mulDivCeil(u.InputTokens, price.InputPerMTok)
	c = addSat(c, mulDivCeil(u.OutputTokens, price.OutputPerMTok))
	return addSat(c, max(price.PerRequest, 0))
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
