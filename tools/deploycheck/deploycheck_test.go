package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepository runs every check on the repository's deployment files, with the
// config key list of the caracal binary built from this tree.
func TestRepository(t *testing.T) {
	keys, err := exec.Command("go", "-C", "../..", "run", "./cmd/caracal", "config", "keys").Output()
	if err != nil {
		t.Fatalf("cannot list config keys: %s", err)
	}
	keysFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keysFile, keys, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(options{repo: "../..", configKeysFile: keysFile}); err != nil {
		t.Fatal(err)
	}
}

func TestDockerfileRejects(t *testing.T) {
	f := func(name, dockerfile, want string) {
		t.Helper()
		err := checkDockerfileReader(name, strings.NewReader(dockerfile))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v; want an error containing %q", name, err, want)
		}
	}
	f("one stage", "FROM scratch\nUSER 65532\n", "multi-stage")
	f("root", "FROM golang AS b\nFROM scratch\nUSER root\n", "non-root")
	f("uid 0", "FROM golang AS b\nFROM scratch\nUSER 0:0\n", "non-root")
	f("user only in the build stage", "FROM golang AS b\nUSER 1000\nFROM scratch\n", "non-root")
	f("remote ADD", "FROM golang AS b\nADD https://example.com/x /x\nFROM scratch\nUSER 1\n", "remote")
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	f := func(name, y string) {
		t.Helper()
		d, ok, err := newDoc(name, []byte(y))
		if err != nil || !ok {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := decodeStrict(d); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Fatalf("%s: got %v; want an unknown field error", name, err)
		}
	}
	f("deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 3}\n")
	f("hpa", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\nspec: {minReplica: 3}\n")
	f("service monitor", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoints: [{prot: metrics}]}\n")
	f("external secret", "apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata: {name: x}\nspec: {secretStore: {name: y}}\n")
}

func TestExpressionChecks(t *testing.T) {
	c := &checker{exported: map[string]bool{"caracal_requests_total": true, "caracal_request_duration_seconds": true}}
	c.checkExpr("ok", `rate(caracal_requests_total{status="error"}[5m]) > 0.05`)
	c.checkExpr("histogram", `histogram_quantile(0.99, sum(rate(caracal_request_duration_seconds_bucket[5m])) by (vmrange))`)
	if len(c.errs) != 0 {
		t.Fatalf("unexpected errors: %v", c.errs)
	}
	c.checkExpr("unexported", `caracal_nonexistent_total > 0`)
	c.checkExpr("syntax", `rate(caracal_requests_total[5m] > 0`)
	if len(c.errs) != 2 || !strings.Contains(c.errs[0].Error(), "caracal_nonexistent_total") || !strings.Contains(c.errs[1].Error(), "cannot parse") {
		t.Fatalf("got %v; want an unexported metric and a parse error", c.errs)
	}
}

func TestGuideAlertsVerbatim(t *testing.T) {
	pr := &prometheusRule{}
	pr.Spec.Groups = []ruleGroup{{Name: "g", Rules: append([]rule(nil), guideAlerts...)}}
	c := &checker{}
	c.checkGuideAlerts("ok", pr)
	if len(c.errs) != 0 {
		t.Fatalf("unexpected errors: %v", c.errs)
	}
	pr.Spec.Groups[0].Rules[1].For = "5m"
	c.checkGuideAlerts("changed", pr)
	if len(c.errs) != 1 || !strings.Contains(c.errs[0].Error(), "HighConsumerLag") {
		t.Fatalf("got %v; want HighConsumerLag reported", c.errs)
	}
}

func TestConfigKeys(t *testing.T) {
	c := &checker{keys: map[string]bool{"dbPoolSize": true, "kafka.producer.batch.size": true}}
	if err := c.checkConfig("ok", "dbPoolSize: 20\nkafka:\n  producer:\n    batch.size: 1\n"); err != nil {
		t.Fatal(err)
	}
	err := c.checkConfig("bad", "dbPoolSize: 20\nkafka:\n  producer:\n    batch.sise: 1\n")
	if err == nil || !strings.Contains(err.Error(), "kafka.producer.batch.sise") {
		t.Fatalf("got %v; want the misspelt key reported", err)
	}
}

func TestDockerignoreKeepsSources(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":                   "module example.com/x\n\ngo 1.26\n",
		"cmd/caracal/main.go":      "package main\n\nimport _ \"example.com/x/internal/a\"\n\nfunc main() {}\n",
		"cmd/caracal-mock/main.go": "package main\n\nfunc main() {}\n",
		"internal/a/a.go":          "package a\n",
		"go.sum":                   "",
		"Dockerfile":               "",
		".dockerignore":            "internal\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := checkDockerignore(dir)
	if err == nil || !strings.Contains(err.Error(), "internal/a/a.go") {
		t.Fatalf("got %v; want internal/a/a.go reported as excluded", err)
	}
}

// TestChartVariants renders the secret backends the repository's values files do
// not use and decodes every object strictly.
func TestChartVariants(t *testing.T) {
	f := func(values, wantID string) {
		t.Helper()
		docs, err := renderChart("../../"+chartDir, values)
		if err != nil {
			t.Fatalf("%s: %s", values, err)
		}
		found := false
		for _, d := range docs {
			if _, err := decodeStrict(d); err != nil {
				t.Fatalf("%s: %s", values, err)
			}
			found = found || d.id() == wantID
		}
		if !found {
			t.Fatalf("%s: %s not rendered", values, wantID)
		}
	}
	f("testdata/values-vault.yaml", "SecretProviderClass/caracal-vault-secrets")
	f("", "Secret/caracal-secrets")
}
