package usage

import (
	"math"
	"math/bits"
)

const perMillion = 1_000_000

// addSat returns a+b for non-negative a and b, saturated at math.MaxInt64.
func addSat(a, b int64) int64 {
	s := a + b
	if s < a {
		return math.MaxInt64
	}
	return s
}

// mulDivCeil returns ceil(a×b/perMillion) for non-negative a and b (negative
// ones count as 0), computed in 128 bits and saturated at math.MaxInt64.
func mulDivCeil(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= perMillion {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, perMillion)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// mulDivFloor returns floor(a×perMillion/b) for a ≥ 0 and b > 0, saturated.
func mulDivFloor(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), perMillion)
	if hi >= uint64(b) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(b))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// sum128 is an exact sum of at most three products a×b of non-negative
// int64s (each below 2^126, so the sum fits in 128 bits).
type sum128 struct{ hi, lo uint64 }

// addMul adds a×b; a negative a or b counts as 0.
func (s *sum128) addMul(a, b int64) {
	if a <= 0 || b <= 0 {
		return
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, lo, 0)
	s.hi, _ = bits.Add64(s.hi, hi, carry)
}

// divCeil returns ceil(s/perMillion), saturated at math.MaxInt64.
func (s *sum128) divCeil() int64 {
	if s.hi >= perMillion {
		return math.MaxInt64
	}
	q, r := bits.Div64(s.hi, s.lo, perMillion)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}
