package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					if rg.TLS == nil {
						continue
					}
					if err := rg.TLS.Reload(); err != nil {
						slog.Error("certificate reload failed; keeping the current certificate", "err", err)
					} else {
						slog.Info("certificate reloaded")
					}
				case <-cmd.Context().Done():
					// Stop accepting, drain in-flight requests up to the
					// deadline, return the leases, flush the producer.
					return rg.Stop(cfg.Gateway.ShutdownTimeout.D())
				}
			}
		},
	}
}
