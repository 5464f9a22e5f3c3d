package money

import (
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"12.50", 12_500_000},
		{"0", 0},
		{"-0", 0},
		{"0.000001", 1},
		{".5", 500_000},
		{"5.", 5_000_000},
		{"+3", 3_000_000},
		{"-1.25", -1_250_000},
		{"0.15", 150_000},
		{"9223372036854.775807", math.MaxInt64},
		{"-9223372036854.775807", -math.MaxInt64},
		{"000001.100000", 1_100_000},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "-", "+", ".", "-.", "1.0000001", "abc", "1e3", "1,5", " 1", "1 ", "1..2", "--1",
		"0x10", "9223372036854.775808", "9223372036855", "99999999999999999999", "1.-5", "NaN", "Inf",
	} {
		if v, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, v)
		}
	}
}

func TestParseNonNegative(t *testing.T) {
	if _, err := ParseNonNegative("-0.01"); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("ParseNonNegative(-0.01) error = %v, want negative", err)
	}
	if v, err := ParseNonNegative("0.01"); err != nil || v != 10_000 {
		t.Fatalf("ParseNonNegative(0.01) = %d, %v", v, err)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in          int64
		full, short string
	}{
		{12_500_000, "12.500000", "12.50"},
		{0, "0.000000", "0.00"},
		{1, "0.000001", "0.000001"},
		{1_234_500, "1.234500", "1.2345"},
		{3_000_000, "3.000000", "3.00"},
		{-1_250_000, "-1.250000", "-1.25"},
		{math.MaxInt64, "9223372036854.775807", "9223372036854.775807"},
		{math.MinInt64, "-9223372036854.775808", "-9223372036854.775808"},
	} {
		if got := Format(tc.in); got != tc.full {
			t.Errorf("Format(%d) = %q, want %q", tc.in, got, tc.full)
		}
		if got := FormatShort(tc.in); got != tc.short {
			t.Errorf("FormatShort(%d) = %q, want %q", tc.in, got, tc.short)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"12.50", "0", "-1.000001", ".5", "9223372036854.775807", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		for _, out := range []string{Format(v), FormatShort(v)} {
			back, err := Parse(out)
			if err != nil || back != v {
				t.Fatalf("Parse(%q) = %d; Parse(%q) = %d, %v", s, v, out, back, err)
			}
		}
	})
}

func FuzzFormat(f *testing.F) {
	for _, v := range []int64{0, 1, -1, 12_500_000, math.MaxInt64, math.MinInt64 + 1} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		if v == math.MinInt64 {
			return // not representable as a positive magnitude in Parse
		}
		back, err := Parse(Format(v))
		if err != nil || back != v {
			t.Fatalf("Parse(Format(%d)) = %d, %v", v, back, err)
		}
	})
}
