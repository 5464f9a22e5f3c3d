package main

import (
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// doc is one rendered Kubernetes object.
type doc struct {
	source string // template or resource it came from
	raw    []byte // YAML as rendered
	json   []byte
	obj    map[string]any
}

func (d doc) kind() string { s, _ := d.obj["kind"].(string); return s }

func (d doc) name() string {
	m, _ := d.obj["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

func (d doc) id() string { return d.kind() + "/" + d.name() }

func newDoc(source string, y []byte) (doc, bool, error) {
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		return doc{}, false, fmt.Errorf("%s: cannot convert YAML: %w", source, err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return doc{}, false, fmt.Errorf("%s: cannot decode: %w", source, err)
	}
	if len(obj) == 0 {
		return doc{}, false, nil
	}
	return doc{source: source, raw: y, json: j, obj: obj}, true, nil
}

// renderChart renders the chart as `helm template caracal --namespace caracal` would,
// with the chart's values.yaml overlaid by valuesFiles (later ones win).
func renderChart(dir string, valuesFiles ...string) ([]doc, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot load chart: %w", err)
	}
	vals := map[string]any{}
	for _, f := range valuesFiles {
		if f == "" {
			continue
		}
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("cannot read values: %w", err)
		}
		vals = chartutil.CoalesceTables(v, vals)
	}
	if err := chartutil.ValidateAgainstSchema(ch, vals); err != nil {
		return nil, fmt.Errorf("values do not match the chart's schema: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "caracal", Namespace: "caracal", IsInstall: true}, caps)
	if err != nil {
		return nil, fmt.Errorf("cannot build render values: %w", err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("cannot render: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var docs []doc
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") || strings.HasPrefix(n[strings.LastIndex(n, "/")+1:], "_") {
			continue
		}
		parts := releaseutil.SplitManifests(files[n])
		keys := make([]string, 0, len(parts))
		for k := range parts {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			d, ok, err := newDoc(n, []byte(parts[k]))
			if err != nil {
				return nil, err
			}
			if ok {
				docs = append(docs, d)
			}
		}
	}
	return docs, nil
}

// kustomizeBuild runs `kustomize build dir` in process.
func kustomizeBuild(dir string) ([]doc, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("cannot build: %w", err)
	}
	var docs []doc
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("cannot encode %s: %w", r.CurId(), err)
		}
		d, ok, err := newDoc(r.CurId().String(), y)
		if err != nil {
			return nil, err
		}
		if ok {
			docs = append(docs, d)
		}
	}
	return docs, nil
}
