package main

import (
	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/money"
	"github.com/caracal-gw/caracal/internal/store"
)

func init() { extraCommands = append(extraCommands, adminCommand(newRouteCmd)) }

func newRouteCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "route", Short: "Map path prefixes to upstream APIs"}
	var r store.RouteSpec
	var price string
	set := &cobra.Command{
		Use:   "set NAME --prefix /openai --upstream URL --credential env:NAME",
		Short: "Create or replace a route (flags not given take their defaults)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Name, r.PricePerRequest = args[0], 0
			if price != "" {
				v, err := money.ParseNonNegative(price)
				if err != nil {
					return err
				}
				r.PricePerRequest = v
			}
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			row, err := store.SetRoute(cmd.Context(), db, r)
			if err != nil {
				return err
			}
			return a.print(row, routeHeader, [][]string{routeCells(row)})
		},
	}
	f := set.Flags()
	f.StringVar(&r.Prefix, "prefix", "", "path prefix, e.g. /openai")
	f.StringArrayVar(&r.UpstreamURLs, "upstream", nil, "upstream base URL, http(s) (repeatable for a pool)")
	f.StringVar(&r.CredentialRef, "credential", "none", "where the upstream credential comes from: env:NAME, file:/path or none")
	f.StringVar(&r.CredentialHeader, "credential-header", "", "header carrying the credential (default Authorization; x-api-key for anthropic)")
	f.StringVar(&r.CredentialFormat, "credential-format", "", `credential header value with one %s (default "Bearer %s"; "%s" for anthropic)`)
	f.StringVar(&r.Provider, "provider", "openai", "openai, anthropic or generic (how usage is read)")
	f.StringVar(&r.Pricing, "pricing", "tokens", "tokens (pricebook x usage), per_request (--price) or header (--price-header)")
	f.StringVar(&price, "price", "", "price per request as a decimal amount, e.g. 0.002")
	f.StringVar(&r.PriceHeader, "price-header", "", "response header carrying the cost, e.g. X-Cost")
	f.BoolVar(&r.StripPrefix, "strip-prefix", true, "strip the prefix before forwarding")
	f.BoolVar(&r.Strict, "strict", false, "write a durable intent before forwarding (no unmetered spend even on a crash)")
	f.BoolVar(&r.FailOpen, "fail-open", false, "forward even when the metering spool is full (counted in caracal_metering_fail_open_total; the event is produced best-effort)")
	f.BoolVar(&r.ReplayRequired, "replay-required", false, "require nonce and timestamp headers")
	f.BoolVar(&r.AllowTargetURL, "allow-target-url", false, "let agents name a target URL (checked against their target allow-list)")
	_ = set.MarkFlagRequired("prefix")
	_ = set.MarkFlagRequired("upstream")
	list := &cobra.Command{
		Use:   "list",
		Short: "List routes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListRoutes(cmd.Context(), db)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, routeCells(r))
			}
			return a.print(rs, routeHeader, rows)
		},
	}
	c.AddCommand(set, list)
	return c
}

var routeHeader = []string{"NAME", "PREFIX", "UPSTREAMS", "CREDENTIAL", "PROVIDER", "PRICING", "FLAGS"}

func routeCells(r store.RouteRow) []string {
	pricing := r.Pricing
	switch r.Pricing {
	case "per_request":
		pricing += " " + money.FormatShort(r.PricePerRequest)
	case "header":
		pricing += " " + r.PriceHeader
	}
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{r.StripPrefix, "strip-prefix"}, {r.Strict, "strict"}, {r.FailOpen, "fail-open"}, {r.ReplayRequired, "replay-required"}, {r.AllowTargetURL, "allow-target-url"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	return []string{r.Name, r.Prefix, cellList(r.UpstreamURLs), r.CredentialRef, r.Provider, pricing, cellOr(cellList(flags), "-")}
}
