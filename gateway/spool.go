package gateway

import (
	"fmt"
	"net"
	"os"

	"github.com/caracal-gw/caracal/gateway/spool"
	"github.com/caracal-gw/caracal/internal/config"
)

// openSpoolTemp opens the gateway's disk spool. Without a directory from the
// options or gateway.spoolDir it is $TMPDIR/caracal-spool-<host>-<port>, read
// back at the next start; a gateway listening on port 0 (tests) gets a fresh
// temporary directory.
//
// temp reports a fresh temporary directory (removed by closeSpool when it is
// left empty).
func openSpoolTemp(cfg *config.Config, dir string) (*spool.Spool, bool, error) {
	temp := false
	if dir == "" {
		dir = cfg.Gateway.SpoolDir
	}
	if dir == "" {
		_, port, _ := net.SplitHostPort(cfg.Gateway.Listen)
		if port == "" || port == "0" {
			d, err := os.MkdirTemp("", "caracal-spool-")
			if err != nil {
				return nil, false, fmt.Errorf("cannot create a spool directory: %w", err)
			}
			dir, temp = d, true
		} else {
			host, _ := os.Hostname()
			dir = spool.DefaultDir(host + "-" + port)
		}
	}
	sp, err := spool.Open(spool.Options{Dir: dir, MaxBytes: cfg.Gateway.SpoolMaxBytes})
	return sp, temp, err
}

// closeSpool closes sp and removes a temporary spool directory that holds
// no records.
func closeSpool(sp *spool.Spool, temp bool) error {
	records, _, _ := sp.Stats()
	err := sp.Close()
	if temp && records == 0 && err == nil {
		os.RemoveAll(sp.Dir()) //nolint:errcheck
	}
	return err
}
