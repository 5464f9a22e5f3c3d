// Command vulndb builds a local Go vulnerability database for govulncheck
// (-db file:///path) from the OSV records in the golang.org/x/vulndb module,
// which the Go module proxy serves. govulncheck then needs no access to
// vuln.go.dev.
//
// The database is written in the v1 layout govulncheck reads:
// index/db.json, index/modules.json, index/vulns.json and ID/<id>.json.
// A stamp file records the x/vulndb version it was built from; when the stamp
// matches, the command returns at once.
//
//	cd tools/vulndb && go run . -out $HOME/.cache/caracal/vulndb
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/module"
)

// Version is the golang.org/x/vulndb version the database is built from by
// default. Move it forward to pick up newer reports.
const Version = "v0.0.0-20261105234957-e22db6528018"

func main() {
	home, _ := os.UserHomeDir()
	out := flag.String("out", filepath.Join(home, ".cache", "caracal", "vulndb"), "database directory to write")
	version := flag.String("version", Version, "golang.org/x/vulndb module version to build from")
	src := flag.String("src", "", "directory of OSV <ID>.json records (default: data/osv of golang.org/x/vulndb@-version from the module cache)")
	force := flag.Bool("force", false, "rebuild even when the stamp matches")
	flag.Parse()

	source := "golang.org/x/vulndb@" + *version
	if *src != "" {
		source = "dir:" + *src
	}
	if !*force && UpToDate(*out, source) {
		fmt.Printf("vulndb: %s is up to date (%s)\n", *out, source)
		return
	}
	dir := *src
	if dir == "" {
		var err error
		if dir, err = DownloadOSV(*version); err != nil {
			fatal(err)
		}
	}
	// The pseudo-version's commit time dates records that carry none.
	var fallback time.Time
	if *src == "" {
		fallback, _ = module.PseudoVersionTime(*version)
	}
	n, err := Build(dir, *out, source, fallback)
	if err != nil {
		fatal(err)
	}
	fmt.Printf("vulndb: wrote %d entries to %s (%s)\n", n, *out, source)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vulndb:", err)
	os.Exit(1)
}
