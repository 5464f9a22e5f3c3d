package main

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// checkObjects decodes every object strictly and checks the embedded files: the
// caracal config in the ConfigMap, the rules of a PrometheusRule and the dashboard.
func (c *checker) checkObjects(name string, docs []doc) {
	seen := map[string]bool{}
	for _, d := range docs {
		if seen[d.id()] {
			c.failf("%s: %s appears twice", name, d.id())
		}
		seen[d.id()] = true
		v, err := decodeStrict(d)
		if err != nil {
			c.failf("%s: %w", name, err)
			continue
		}
		switch o := v.(type) {
		case *corev1.ConfigMap:
			if cfg, ok := o.Data["config.yaml"]; ok {
				c.fail(c.checkConfig(name+" "+d.id(), cfg))
			}
			if dash, ok := o.Data["caracal.json"]; ok {
				c.checkDashboardJSON(name+" "+d.id(), []byte(dash))
			}
		case *prometheusRule:
			b, err := yaml.Marshal(o.Spec)
			if err != nil {
				c.failf("%s %s: cannot encode rules: %w", name, d.id(), err)
				continue
			}
			c.checkRules(name+" "+d.id(), b)
		}
	}
}

// checkConfig parses the caracal config and, when the binary's key list is known,
// fails on keys it would refuse.
func (c *checker) checkConfig(where, cfg string) error {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(cfg), &m); err != nil {
		return fmt.Errorf("%s: config.yaml: %w", where, err)
	}
	if c.keys == nil {
		return nil
	}
	var bad []string
	for _, k := range flatten("", m, c.keys) {
		if !c.keys[k] {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return fmt.Errorf("%s: config.yaml: keys caracal does not know: %s", where, strings.Join(bad, ", "))
	}
	return nil
}

// flatten lists the dotted key paths of m. A path that is itself a known key stops
// the descent (kafka.producer.batch.size is a key although it looks nested).
func flatten(prefix string, m map[string]any, known map[string]bool) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && !known[p] {
			out = append(out, flatten(p, sub, known)...)
			continue
		}
		out = append(out, p)
	}
	return out
}
