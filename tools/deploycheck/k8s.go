package main

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
)

const baseHeader = `# GENERATED from deploy/helm/caracal with values.yaml + deploy/k8s/base/values.yaml:
# do not edit; change the chart and run
#   cd tools/deploycheck && go run . -repo ../.. -write-k8s-base
# deploy-check fails when this file and the chart disagree.
`

// checkK8sBase regenerates the kustomize base from the chart and compares it with
// the committed file (or writes it with -write-k8s-base).
func (c *checker) checkK8sBase() error {
	docs, err := renderChart(c.o.path(chartDir), c.o.path("deploy", "k8s", "base", "values.yaml"))
	if err != nil {
		return fmt.Errorf("deploy/k8s/base: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(baseHeader)
	for _, d := range docs {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", d.source, strings.TrimSpace(string(d.raw)))
	}
	path := c.o.path("deploy", "k8s", "base", "caracal.yaml")
	if c.o.writeBase {
		return os.WriteFile(path, b.Bytes(), 0o644)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read the kustomize base: %w", err)
	}
	if !bytes.Equal(old, b.Bytes()) {
		return fmt.Errorf("%s is stale: regenerate it with -write-k8s-base", path)
	}
	return nil
}

// printChart writes the rendered chart to stdout.
func printChart(dir, values string) error {
	docs, err := renderChart(dir, values)
	if err != nil {
		return err
	}
	for _, d := range docs {
		fmt.Printf("---\n# Source: %s\n%s\n", d.source, strings.TrimSpace(string(d.raw)))
	}
	return nil
}

// sameObjects fails unless the two renders hold the same objects with the same
// content, ignoring namespaces and config checksums.
func sameObjects(chart, kustomized []doc) error {
	index := func(docs []doc) map[string]any {
		m := map[string]any{}
		for _, d := range docs {
			m[d.id()] = normalise(d.obj)
		}
		return m
	}
	a, b := index(chart), index(kustomized)
	var diffs []string
	for id, av := range a {
		bv, ok := b[id]
		if !ok {
			diffs = append(diffs, id+": only in the chart")
			continue
		}
		if p := firstDiff(id, av, bv); p != "" {
			diffs = append(diffs, p)
		}
	}
	for id := range b {
		if _, ok := a[id]; !ok {
			diffs = append(diffs, id+": only in the overlay")
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("the production overlay and the chart's production values differ:\n    %s", strings.Join(diffs, "\n    "))
}

func normalise(obj map[string]any) any {
	o := deepCopy(obj).(map[string]any)
	if md, ok := o["metadata"].(map[string]any); ok {
		delete(md, "namespace")
	}
	if spec, ok := o["spec"].(map[string]any); ok {
		if tpl, ok := spec["template"].(map[string]any); ok {
			if md, ok := tpl["metadata"].(map[string]any); ok {
				if an, ok := md["annotations"].(map[string]any); ok {
					delete(an, "checksum/config")
					if len(an) == 0 {
						delete(md, "annotations")
					}
				}
			}
		}
	}
	return o
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

func firstDiff(path string, a, b any) string {
	switch at := a.(type) {
	case map[string]any:
		bt, ok := b.(map[string]any)
		if !ok {
			return path + ": types differ"
		}
		keys := map[string]bool{}
		for k := range at {
			keys[k] = true
		}
		for k := range bt {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			if d := firstDiff(path+"."+k, at[k], bt[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		bt, ok := b.([]any)
		if !ok || len(at) != len(bt) {
			return fmt.Sprintf("%s: lists differ (%v vs %v)", path, short(a), short(b))
		}
		for i := range at {
			if d := firstDiff(fmt.Sprintf("%s[%d]", path, i), at[i], bt[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%s: chart %v, overlay %v", path, short(a), short(b))
	}
	return ""
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
