package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// checker runs every check and collects the failures, so one run reports them all.
type checker struct {
	o        options
	exported map[string]bool
	keys     map[string]bool // config keys the binary knows; nil: not checked
	errs     []error
}

func newChecker(o options) (*checker, error) {
	exported, err := readNames(o.metricsFile, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot read exported metric names: %w", err)
	}
	c := &checker{o: o, exported: exported}
	if o.configKeysFile != "" {
		if c.keys, err = readNames(o.configKeysFile, 0); err != nil {
			return nil, fmt.Errorf("cannot read config keys: %w", err)
		}
	}
	return c, nil
}

// readNames reads the first field of each line that is not blank or a comment.
func readNames(path string, field int) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) <= field || strings.HasPrefix(f[0], "#") {
			continue
		}
		m[f[field]] = true
	}
	return m, nil
}

func (c *checker) failf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *checker) fail(err error) {
	if err != nil {
		c.errs = append(c.errs, err)
	}
}

func (c *checker) all() error {
	c.fail(checkDockerfile(c.o.path("Dockerfile")))
	c.fail(checkDockerignore(c.o.repo))
	renders := map[string][]doc{}
	for _, v := range []struct{ name, values string }{
		{"chart (values.yaml)", ""},
		{"chart (values-production.yaml)", c.o.path(chartDir, "values-production.yaml")},
	} {
		docs, err := renderChart(c.o.path(chartDir), v.values)
		if err != nil {
			c.failf("%s: %w", v.name, err)
			continue
		}
		renders[v.name] = docs
		c.checkObjects(v.name, docs)
		fmt.Printf("deploycheck: %s: %d objects decoded strictly\n", v.name, len(docs))
	}
	c.fail(c.checkK8sBase())
	for _, overlay := range []string{"deploy/k8s/base", "deploy/k8s/overlays/production"} {
		docs, err := kustomizeBuild(c.o.path(overlay))
		if err != nil {
			c.failf("%s: %w", overlay, err)
			continue
		}
		renders[overlay] = docs
		c.checkObjects(overlay, docs)
		fmt.Printf("deploycheck: %s: %d objects decoded strictly\n", overlay, len(docs))
	}
	if prod := renders["chart (values-production.yaml)"]; prod != nil {
		c.checkGuide("chart (values-production.yaml)", prod)
		if k := renders["deploy/k8s/overlays/production"]; k != nil {
			c.checkGuide("deploy/k8s/overlays/production", k)
			c.fail(sameObjects(prod, k))
		}
	}
	c.checkRuleFile(c.o.path(chartDir, "files", "alerts.yaml"))
	c.checkDashboard(c.o.path(chartDir, "files", "dashboard.json"))
	c.fail(checkCompose(c.o.path("deploy", "compose", "compose.yaml")))
	if len(c.errs) == 0 {
		fmt.Println("deploycheck: PASS")
		return nil
	}
	msgs := make([]string, len(c.errs))
	for i, e := range c.errs {
		msgs[i] = e.Error()
	}
	sort.Strings(msgs)
	return errors.New(fmt.Sprintf("%d problems:\n  ", len(msgs)) + strings.Join(msgs, "\n  "))
}

const chartDir = "deploy/helm/caracal"
