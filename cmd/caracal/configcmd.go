package main

import (
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/caracal-gw/caracal/internal/config"
)

func newConfigCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect the effective configuration"}
	c.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration with secrets redacted",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			r := cfg.Redacted()
			if a.output == "json" {
				return a.print(r, nil, nil)
			}
			enc := yaml.NewEncoder(a.stdout)
			defer enc.Close()
			return enc.Encode(r)
		},
	}, &cobra.Command{
		Use:   "keys",
		Short: "List every configuration key with its environment variable",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var rows [][]string
			for _, k := range config.Keys() {
				rows = append(rows, []string{k, config.EnvName(k)})
			}
			return a.print(rows, []string{"KEY", "ENVIRONMENT"}, rows)
		},
	})
	return c
}
