package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/caracal-gw/caracal/internal/money"
)

// Helpers the administration commands share to render rows as table cells.

func cellTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func cellTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return cellTime(*t)
}

func cellBool(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cellOr(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}

func cellMoney(micros int64, currency string) string {
	return money.FormatShort(micros) + " " + currency
}

func cellInt(n int) string { return strconv.Itoa(n) }

func cellList(v []string) string { return strings.Join(v, ",") }
