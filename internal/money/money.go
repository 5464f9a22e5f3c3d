// Package money parses and formats currency amounts as int64 micro-units
// (1 unit = 1_000_000 micro-units) with exact decimal arithmetic: no float
// ever touches an amount.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Scale is the number of micro-units in one unit of a currency.
const Scale = 1_000_000

// FractionDigits is the largest number of digits after the decimal point.
const FractionDigits = 6

var (
	errEmpty    = errors.New("empty amount")
	errNegative = errors.New("negative amount")
	errOverflow = errors.New("amount too large")
)

// Parse parses a decimal amount such as "12.50", "-3", "0.000001" or ".5"
// into micro-units. More than 6 fraction digits, an exponent, spaces or any
// other character is an error.
func Parse(s string) (int64, error) {
	if s == "" {
		return 0, errEmpty
	}
	neg := false
	t := s
	switch t[0] {
	case '-':
		neg, t = true, t[1:]
	case '+':
		t = t[1:]
	}
	intPart, frac := t, ""
	for i := 0; i < len(t); i++ {
		if t[i] == '.' {
			intPart, frac = t[:i], t[i+1:]
			break
		}
	}
	if intPart == "" && frac == "" {
		return 0, fmt.Errorf("invalid amount %q", s)
	}
	if len(frac) > FractionDigits {
		return 0, fmt.Errorf("invalid amount %q: more than %d digits after the decimal point", s, FractionDigits)
	}
	var v uint64
	for i := 0; i < len(intPart); i++ {
		d, ok := digit(intPart[i])
		if !ok {
			return 0, fmt.Errorf("invalid amount %q", s)
		}
		// v*10 + d must stay within the int64 range once scaled.
		if v > (math.MaxInt64/Scale-uint64(d))/10 {
			return 0, fmt.Errorf("invalid amount %q: %w", s, errOverflow)
		}
		v = v*10 + uint64(d)
	}
	v *= Scale
	mul := uint64(Scale / 10)
	for i := 0; i < len(frac); i++ {
		d, ok := digit(frac[i])
		if !ok {
			return 0, fmt.Errorf("invalid amount %q", s)
		}
		v += uint64(d) * mul
		mul /= 10
	}
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("invalid amount %q: %w", s, errOverflow)
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// ParseNonNegative is Parse that also rejects amounts below zero (a "-0" is
// zero and allowed).
func ParseNonNegative(s string) (int64, error) {
	v, err := Parse(s)
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid amount %q: %w", s, errNegative)
	}
	return v, nil
}

func digit(c byte) (byte, bool) {
	if c < '0' || c > '9' {
		return 0, false
	}
	return c - '0', true
}

// Format returns micros with all six fraction digits: 12_500_000 -> "12.500000".
func Format(micros int64) string {
	return string(AppendFormat(nil, micros))
}

// AppendFormat appends Format(micros) to dst.
func AppendFormat(dst []byte, micros int64) []byte {
	u := uint64(micros)
	if micros < 0 {
		dst = append(dst, '-')
		u = -u // two's complement: exact also for math.MinInt64
	}
	dst = strconv.AppendUint(dst, u/Scale, 10)
	f := u % Scale
	var buf [FractionDigits + 1]byte
	buf[0] = '.'
	for i := FractionDigits; i > 0; i-- {
		buf[i] = byte('0' + f%10)
		f /= 10
	}
	return append(dst, buf[:]...)
}

// FormatShort is Format without trailing fraction zeros beyond the cents:
// 12_500_000 -> "12.50", 1_234_500 -> "1.2345", 3_000_000 -> "3.00".
func FormatShort(micros int64) string {
	b := AppendFormat(nil, micros)
	n := len(b)
	for n > len(b)-FractionDigits+2 && b[n-1] == '0' {
		n--
	}
	return string(b[:n])
}
