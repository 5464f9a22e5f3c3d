package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var promql = parser.NewParser(parser.Options{})

func (c *checker) checkRuleFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		c.failf("cannot read rules: %w", err)
		return
	}
	c.checkRules(path, b)
}

// checkRules parses a rule file with Prometheus' own rule loader (which parses
// every expression) and checks the metrics each expression names.
func (c *checker) checkRules(where string, content []byte) {
	rgs, errs := rulefmt.Parse(content, false, model.UTF8Validation, promql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		c.failf("%s: %w", where, err)
	}
	if rgs == nil {
		return
	}
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			c.checkExpr(fmt.Sprintf("%s alert %s", where, r.Alert), r.Expr)
		}
	}
}

func (c *checker) checkDashboard(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		c.failf("cannot read dashboard: %w", err)
		return
	}
	c.checkDashboardJSON(path, b)
}

type dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// checkDashboardJSON parses every panel query as PromQL and checks its metrics.
func (c *checker) checkDashboardJSON(where string, b []byte) {
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		c.failf("%s: cannot decode dashboard: %w", where, err)
		return
	}
	n := 0
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			n++
			c.checkExpr(fmt.Sprintf("%s panel %q", where, p.Title), t.Expr)
		}
	}
	if n == 0 {
		c.failf("%s: the dashboard has no queries", where)
	}
}

func (c *checker) checkExpr(where, expr string) {
	names, err := metricNames(expr)
	if err != nil {
		c.failf("%s: %w", where, err)
		return
	}
	for _, n := range names {
		if !c.isExported(n) {
			c.failf("%s: metric %s is not in the exported list %s", where, n, c.o.metricsFile)
		}
	}
}

// metricNames parses expr and returns the metric names its selectors name.
func metricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %q: %w", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	if len(names) == 0 {
		return nil, fmt.Errorf("%q names no metric", expr)
	}
	return names, nil
}

// isExported accepts a histogram's series (_bucket, _sum, _count) by its base name.
func (c *checker) isExported(name string) bool {
	if c.exported[name] {
		return true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && c.exported[base] {
			return true
		}
	}
	return false
}
