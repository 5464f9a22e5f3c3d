package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

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

// adminCommand registers the tree that build makes, with closeOnError.
func adminCommand(build func(*app) *cobra.Command) func(*app) *cobra.Command {
	return func(a *app) *cobra.Command { return closeOnError(a, build(a)) }
}

// closeOnError wraps every RunE of c's tree so that a failed command closes
// the database pool it opened: the root closes it only after a success, and
// tests run many failing commands in one process.
func closeOnError(a *app, c *cobra.Command) *cobra.Command {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if err != nil && a.pool != nil {
				a.pool.Close()
				a.pool = nil
			}
			return err
		}
	}
	for _, sub := range c.Commands() {
		closeOnError(a, sub)
	}
	return c
}
