package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/testenv"
)

// monitoredFiles are the alert rules and dashboard the chart ships.
var monitoredFiles = []string{
	"../../deploy/helm/caracal/files/alerts.yaml",
	"../../deploy/helm/caracal/files/dashboard.json",
}

var metricRefRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])((?:caracal|kafka)_[a-z0-9_]+)`)

// referencedMetrics returns every metric name the alerts and the dashboard
// query, with the file that names it.
func referencedMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range monitoredFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricRefRe.FindAllSubmatch(b, -1) {
			out[string(m[1])] = f
		}
	}
	if len(out) < 5 {
		t.Fatalf("only %d metric names found in %v: is the extraction broken?", len(out), monitoredFiles)
	}
	return out
}

// exportedNames returns the metric names of a Prometheus text exposition.
func exportedNames(text string) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

// missingMetrics lists the referenced names the exposition lacks. A bare
// histogram or summary name counts as present when its _count series is.
func missingMetrics(refs map[string]string, have map[string]bool) []string {
	var miss []string
	for name := range refs {
		if have[name] || have[name+"_count"] {
			continue
		}
		miss = append(miss, name)
	}
	sort.Strings(miss)
	return miss
}

var (
	selectorRe = regexp.MustCompile(`((?:caracal|kafka)_[a-z0-9_]+)\{([^}]*)\}`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\\?"([^"\\]*)\\?"`)
)

// referencedSeries returns the equality matchers of the selectors the alerts
// and the dashboard use, as (name, `label="value"`) pairs; regexp and
// negative matchers are not checked.
func referencedSeries(t *testing.T) map[[2]string]string {
	t.Helper()
	out := map[[2]string]string{}
	for _, f := range monitoredFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, sel := range selectorRe.FindAllSubmatch(b, -1) {
			for _, m := range matcherRe.FindAllSubmatch(sel[2], -1) {
				out[[2]string{string(sel[1]), string(m[1]) + `="` + string(m[2]) + `"`}] = f
			}
		}
	}
	return out
}

// missingSeries lists the selectors no exported series matches.
func missingSeries(refs map[[2]string]string, text string) []string {
	var miss []string
	for ref := range refs {
		found := false
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, ref[0]+"{") && strings.Contains(l[:strings.IndexByte(l, '}')+1], ref[1]) {
				found = true
				break
			}
		}
		if !found {
			miss = append(miss, ref[0]+"{"+ref[1]+"}")
		}
	}
	sort.Strings(miss)
	return miss
}

func TestExportedNamesAndMissing(t *testing.T) {
	have := exportedNames("# HELP x\ncaracal_a_total{status=\"ok\"} 1\ncaracal_h_bucket{vmrange=\"1...2\"} 3\ncaracal_h_sum 2\ncaracal_h_count 3\nkafka_consumer_lag{partition=\"0\"} 0\n")
	refs := map[string]string{"caracal_a_total": "", "caracal_h_bucket": "", "caracal_h": "", "kafka_consumer_lag": "", "caracal_gone": ""}
	if got := missingMetrics(refs, have); len(got) != 1 || got[0] != "caracal_gone" {
		t.Fatalf("missing = %v, want [caracal_gone]", got)
	}
	text := "caracal_a_total{status=\"ok\",pod=\"x\"} 1\n"
	sel := map[[2]string]string{{"caracal_a_total", `status="ok"`}: "", {"caracal_a_total", `status="error"`}: ""}
	if got := missingSeries(sel, text); len(got) != 1 || got[0] != `caracal_a_total{status="error"}` {
		t.Fatalf("missing series = %v", got)
	}
}

// TestAlertAndDashboardMetricsAreExported runs the whole stack the way
// `caracal dev` does (gateway, the three consumers, embedded Kafka, mock
// upstream), sends requests, lets the consumers process them and scrapes the
// admin /metrics: every metric an alert or the dashboard names must be there.
func TestAlertAndDashboardMetricsAreExported(t *testing.T) {
	refs := referencedMetrics(t)
	sels := referencedSeries(t)
	if len(sels) == 0 {
		t.Fatal("no label selectors found: is the extraction broken?")
	}
	url := testenv.PGURL(t)
	redis := testenv.RedisAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev",
			"--set", "database.url=" + url,
			"--set", "redis.addrs=" + redis,
			"--set", "redis.budgetReadyKey=" + testenv.Name("cr:test:ready:"),
			"--set", "gateway.spoolDir=" + t.TempDir(),
			// The per-agent spend gauges the dashboard shows are read again
			// every second, so the scrape below sees the requests' spend.
			"--set", "aggregator.spendGaugeInterval=1s",
			"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--mock-listen", "127.0.0.1:0",
			"--kafka-port", "0", "--state-dir", t.TempDir(),
		}, &out, &errOut)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev: %v\n%s", err, errOut.String())
			}
		case <-time.After(60 * time.Second):
			t.Errorf("dev did not stop within 60 s")
		}
	}
	defer stop()

	adminRe := regexp.MustCompile(`admin\s+http://(\S+)/metrics`)
	gwRe := regexp.MustCompile(`gateway\s+http://(\S+)`)
	keyRe := regexp.MustCompile(`Bearer (\S+)'`)
	var admin, gw, key string
	for deadline := time.Now().Add(60 * time.Second); ; {
		s := out.String()
		if m, g, k := adminRe.FindStringSubmatch(s), gwRe.FindStringSubmatch(s), keyRe.FindStringSubmatch(s); m != nil && g != nil && k != nil {
			admin, gw, key = m[1], g[1], k[1]
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("dev ended before it was up: %v\n%s\n%s", err, s, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev not up after 60 s:\n%s\n%s", s, errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	get := func(u string) (int, string) {
		resp, err := client.Get(u)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Ready once the metrics consumer reconciled the budget totals.
	for deadline := time.Now().Add(90 * time.Second); ; {
		code, body := get("http://" + admin + "/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never ready: %d %s\n%s", code, body, errOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`
	ok := 0
	for i := 0; i < 5; i++ {
		req, err := http.NewRequest("POST", "http://"+gw+"/openai/chat/completions", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		ok++
	}

	// The consumers ledger, aggregate and seal asynchronously: scrape until
	// every name is there (or the bound passes, and report what is missing).
	var miss []string
	var scrape string
	for deadline := time.Now().Add(60 * time.Second); ; {
		code, text := get("http://" + admin + "/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d %s", code, text)
		}
		scrape = text
		miss = append(missingMetrics(refs, exportedNames(text)), missingSeries(sels, text)...)
		if len(miss) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%d metric names and %d label matchers from %v checked against the scrape", len(refs), len(sels), monitoredFiles)
	for _, m := range miss {
		t.Errorf("%s (named by an alert or the dashboard) is not exported by the running stack", m)
	}
	if len(miss) > 0 {
		t.Logf("scrape after %d requests:\n%s", ok, filterLines(scrape, "caracal_", "kafka_"))
	}
	stop()
}

func filterLines(text string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				fmt.Fprintln(&b, l)
				break
			}
		}
	}
	return b.String()
}
