package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/money"
	"github.com/caracal-gw/caracal/internal/store"
)

func init() { extraCommands = append(extraCommands, adminCommand(newPricebookCmd)) }

var priceHeader = []string{"RESOURCE", "MODEL", "UNIT", "PRICE", "UPDATED"}

func priceRows(rs []store.PriceRow) [][]string {
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{r.Resource, r.Model, r.Unit, cellMoney(r.PriceMicros, r.Currency), cellTime(r.UpdatedAt)})
	}
	return rows
}

func newPricebookCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "pricebook", Short: "Prices per million tokens or per request, by resource and model",
		Long: `Prices per million tokens or per request, by resource (route or provider name) and model.

Units: input_mtok and output_mtok (per million input and output tokens),
cache_write_mtok and cache_read_mtok (per million tokens written to and read
from Anthropic's prompt cache: cache_creation_input_tokens and
cache_read_input_tokens), and request (per call). A resource and model with no
cache_write_mtok or cache_read_mtok price charges those tokens at its
input_mtok price: set both for Anthropic routes, whose cache writes cost more
than plain input and whose cache reads cost less.`}
	var p store.PriceSpec
	var price string
	set := &cobra.Command{
		Use:   "set --resource R --model M --unit input_mtok|output_mtok|cache_write_mtok|cache_read_mtok|request --price 0.15",
		Short: "Create or change one price",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := money.ParseNonNegative(price)
			if err != nil {
				return err
			}
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			p.PriceMicros = v
			r, err := store.SetPrice(cmd.Context(), db, p)
			if err != nil {
				return err
			}
			return a.print(r, priceHeader, priceRows([]store.PriceRow{r}))
		},
	}
	f := set.Flags()
	f.StringVar(&p.Resource, "resource", "", "a provider or route name, e.g. openai")
	f.StringVar(&p.Model, "model", "*", "model name, or * for any")
	f.StringVar(&p.Unit, "unit", "", "input_mtok, output_mtok, cache_write_mtok, cache_read_mtok (per million tokens) or request")
	f.StringVar(&price, "price", "", "price as a decimal amount, e.g. 0.15 (at most 6 decimals)")
	f.StringVar(&p.Currency, "currency", "USD", "ISO 4217 currency code")
	for _, n := range []string{"resource", "unit", "price"} {
		_ = set.MarkFlagRequired(n)
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the pricebook",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListPrices(cmd.Context(), db)
			if err != nil {
				return err
			}
			return a.print(rs, priceHeader, priceRows(rs))
		},
	}
	imp := &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Set every price of a CSV file (header resource,model,unit,price,currency) in one transaction",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fh, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("cannot open the price file: %w", err)
			}
			defer fh.Close()
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			n, err := store.ImportPrices(cmd.Context(), db, fh)
			if err != nil {
				return fmt.Errorf("%s: %w (nothing imported)", args[0], err)
			}
			type result struct {
				File     string `json:"file"`
				Imported int    `json:"imported"`
			}
			if a.output == "json" {
				return a.print(result{args[0], n}, nil, nil)
			}
			fmt.Fprintf(a.stdout, "imported %d prices from %s\n", n, args[0])
			return nil
		},
	}
	c.AddCommand(set, list, imp)
	return c
}
