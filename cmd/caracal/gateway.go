package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/gateway"
)

func init() { extraCommands = append(extraCommands, newGatewayCmd) }

func newGatewayCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "gateway",
		Short: "Run the gateway: TLS proxy on gateway.listen, admin endpoints on gateway.adminListen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			pool, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rg, err := gateway.Start(cmd.Context(), cfg, pool)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "caracal gateway: serving on %s (admin %s)\n", rg.Addr, rg.AdminAddr)
			<-cmd.Context().Done()
			return rg.Stop(cfg.Gateway.ShutdownTimeout.D())
		},
	}
}
