package gateway

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/caracal-gw/caracal/gateway/spool"
	"github.com/caracal-gw/caracal/internal/config"
)

// Spool settings read from the environment until config keys exist
// (gateway.spool.dir, gateway.spool.maxBytes).
const (
	envSpoolDir      = "CARACAL_SPOOL_DIR"
	envSpoolMaxBytes = "CARACAL_SPOOL_MAX_BYTES"
)

// openSpoolTemp opens the gateway's disk spool. Without a directory from the
// options or the environment it is $TMPDIR/caracal-spool-<host>-<port>, read
// back at the next start; a gateway listening on port 0 (tests) gets a fresh
// temporary directory.
//
// temp reports a fresh temporary directory (removed by closeSpool when it is
// left empty).
func openSpoolTemp(cfg *config.Config, dir string) (*spool.Spool, bool, error) {
	temp := false
	if dir == "" {
		dir = os.Getenv(envSpoolDir)
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
	var maxBytes int64
	if v := os.Getenv(envSpoolMaxBytes); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, false, fmt.Errorf("cannot use %s=%q: want a positive number of bytes", envSpoolMaxBytes, v)
		}
		maxBytes = n
	}
	sp, err := spool.Open(spool.Options{Dir: dir, MaxBytes: maxBytes})
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
