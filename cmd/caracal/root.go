package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/store"
)

// app is what every command shares: the global flags, the loaded config and
// lazily opened connections.
type app struct {
	stdout, stderr io.Writer
	configPath     string
	overrides      []string
	output         string

	cfg  *config.Config
	pool *pgxpool.Pool
}

func newRootCmd(stdout, stderr io.Writer) (*cobra.Command, *app) {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "caracal",
		Short:         "Caracal: an economic firewall for AI agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}

	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&a.configPath, "config", "c", os.Getenv("CARACAL_CONFIG"), "YAML config file (env CARACAL_CONFIG)")
	pf.StringArrayVar(&a.overrides, "set", nil, "override a config key, e.g. --set kafka.producer.linger.ms=5 (repeatable)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if a.output != "table" && a.output != "json" {
			return fmt.Errorf("--output must be table or json, not %q", a.output)
		}
		return nil
	}
	root.AddCommand(
		newDBCmd(a),
		newConfigCmd(a),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(a))
	}
	return root, a
}

// extraCommands lets each command file register itself.
var extraCommands []func(*app) *cobra.Command

// config loads the configuration once.
func (a *app) config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	c, err := config.Load(a.configPath, os.Environ(), a.overrides)
	if err != nil {
		return nil, err
	}
	a.cfg = c
	return c, nil
}

// db opens the PostgreSQL pool once.
func (a *app) db(ctx context.Context) (*pgxpool.Pool, error) {
	if a.pool != nil {
		return a.pool, nil
	}
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	p, err := store.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	a.pool = p
	return p, nil
}

// print writes v as JSON with --output json, else as a table of rows.
func (a *app) print(v any, header []string, rows [][]string) error {
	if a.output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for i, h := range header {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, h)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		for i, c := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
