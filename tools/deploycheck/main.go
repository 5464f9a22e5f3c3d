// Command deploycheck validates Caracal's deployment files without a cluster or a
// Docker engine: the Dockerfile, the Helm chart (default and production values),
// the kustomize overlays, the alert rules, the Grafana dashboard and the compose
// stack. It fails on any unknown field, unparsable expression, unexported metric or
// departure from the production deployment guide. See docs/deploy.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	repo := flag.String("repo", ".", "repository root")
	metricsFile := flag.String("metrics", "", "file of exported metric names, one a line (default tools/deploycheck/testdata/exported-metrics.txt)")
	configKeys := flag.String("config-keys", "", "output of `caracal config keys`; when set, every rendered config key must be in it")
	writeBase := flag.Bool("write-k8s-base", false, "regenerate deploy/k8s/base/caracal.yaml from the chart, then check")
	template := flag.String("template", "", "print the chart rendered with this values file over values.yaml (like helm template) and exit")
	flag.Parse()
	if *template != "" {
		if err := printChart(filepath.Join(*repo, chartDir), *template); err != nil {
			fmt.Fprintln(os.Stderr, "deploycheck:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(options{repo: *repo, metricsFile: *metricsFile, configKeysFile: *configKeys, writeBase: *writeBase}); err != nil {
		fmt.Fprintln(os.Stderr, "deploycheck:", err)
		os.Exit(1)
	}
}

type options struct {
	repo           string
	metricsFile    string
	configKeysFile string
	writeBase      bool
}

func (o options) path(p ...string) string {
	return filepath.Join(append([]string{o.repo}, p...)...)
}

func run(o options) error {
	if o.metricsFile == "" {
		o.metricsFile = o.path("tools", "deploycheck", "testdata", "exported-metrics.txt")
	}
	c, err := newChecker(o)
	if err != nil {
		return err
	}
	return c.all()
}
