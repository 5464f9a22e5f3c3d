package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// cli runs the caracal command line against the database at url.
func cli(t *testing.T, url string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	err = run(ctx, append([]string{"--set", "database.url=" + url}, args...), &o, &e)
	return o.String(), e.String(), err
}

// mustCLI runs args and fails the test on an error.
func mustCLI(t *testing.T, url string, args ...string) string {
	t.Helper()
	out, _, err := cli(t, url, args...)
	if err != nil {
		t.Fatalf("caracal %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// cliJSON runs args with --output json and decodes the answer into v.
func cliJSON(t *testing.T, url string, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, url, append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("caracal %s: cannot decode %q: %v", strings.Join(args, " "), out, err)
	}
}

func TestAdminAgentsAndKeys(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	out := mustCLI(t, url, "agent", "create", "acme")
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "acme") {
		t.Fatalf("table output: %q", out)
	}
	var child store.AgentRow
	cliJSON(t, url, &child, "agent", "create", "acme.bot", "--parent", "acme", "--rate-limit-rps", "5", "--rate-limit-burst", "10", "--replay-required")
	if child.Parent != "acme" || child.RateLimitRPS != 5 || child.RateLimitBurst != 10 || !child.ReplayRequired || child.Depth != 1 {
		t.Fatalf("child %+v", child)
	}
	var agents []store.AgentRow
	cliJSON(t, url, &agents, "agent", "list")
	if len(agents) != 2 || agents[0].Name != "acme" || agents[1].Name != "acme.bot" || agents[1].RootID != agents[0].ID {
		t.Fatalf("agents %+v", agents)
	}
	var got store.AgentRow
	cliJSON(t, url, &got, "agent", "get", child.ID)
	if got.Name != "acme.bot" {
		t.Fatalf("get by id: %+v", got)
	}
	cliJSON(t, url, &got, "agent", "disable", "acme.bot")
	if got.Status != "disabled" {
		t.Fatalf("disable: %+v", got)
	}
	cliJSON(t, url, &got, "agent", "enable", "acme.bot")
	if got.Status != "active" {
		t.Fatalf("enable: %+v", got)
	}

	var key store.CreatedKey
	_, stderr, err := cli(t, url, "key", "create", "--agent", "acme.bot", "--name", "ci", "--expires-in", "720h", "-o", "json")
	if err != nil || !strings.Contains(stderr, "cannot be shown again") {
		t.Fatalf("key create: %v, stderr %q", err, stderr)
	}
	cliJSON(t, url, &key, "key", "create", "--agent", "acme.bot", "--name", "ci", "--expires-in", "720h")
	if !strings.HasPrefix(key.Key, key.Prefix+"_") || len(key.Key) != 49 || key.ExpiresAt == nil ||
		key.ExpiresAt.Before(time.Now().Add(719*time.Hour)) {
		t.Fatalf("key %+v", key)
	}
	table := mustCLI(t, url, "key", "list", "--agent", "acme.bot")
	if !strings.Contains(table, key.Prefix) || strings.Contains(table, key.Key) {
		t.Fatalf("key list shows %q", table)
	}
	raw := mustCLI(t, url, "key", "list", "-o", "json")
	if strings.Contains(raw, key.Key) || strings.Contains(raw, `"key"`) {
		t.Fatalf("key list json shows a secret: %s", raw)
	}
	var keys []store.KeyRow
	cliJSON(t, url, &keys, "key", "list", "--agent", "acme.bot")
	if len(keys) != 2 || keys[0].RevokedAt != nil {
		t.Fatalf("keys %+v", keys)
	}
	mustCLI(t, url, "key", "revoke", key.Prefix)
	cliJSON(t, url, &keys, "key", "list", "--agent", "acme.bot")
	revoked := 0
	for _, k := range keys {
		if k.RevokedAt != nil {
			revoked++
			if k.Prefix != key.Prefix {
				t.Fatalf("revoked the wrong key: %+v", k)
			}
		}
	}
	if revoked != 1 {
		t.Fatalf("revoked %d keys, want 1", revoked)
	}
}

func TestAdminPoliciesAllowRoutes(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	mustCLI(t, url, "agent", "create", "team")
	var p store.PolicyRow
	cliJSON(t, url, &p, "policy", "set", "--agent", "team", "--limit", "12.50", "--window", "daily", "--reason", "initial budget")
	if p.LimitMicros != 12_500_000 || p.Version != 1 || p.Currency != "USD" || p.WindowKind != "calendar" || !p.Active {
		t.Fatalf("policy %+v", p)
	}
	out := mustCLI(t, url, "policy", "set", "--agent", "team", "--limit", "20", "--window", "daily", "--reason", "more traffic")
	if !strings.Contains(out, "20.00 USD") {
		t.Fatalf("policy table %q", out)
	}
	mustCLI(t, url, "policy", "set", "--agent", "team", "--limit", "100", "--currency", "eur", "--window", "monthly", "--rolling", "--inactive", "--reason", "draft")
	var hist []store.PolicyRow
	cliJSON(t, url, &hist, "policy", "history", "--agent", "team")
	daily := []store.PolicyRow{}
	for _, h := range hist {
		if h.Window == "daily" {
			daily = append(daily, h)
		}
	}
	if len(hist) != 3 || len(daily) != 2 || daily[0].Reason != "initial budget" || daily[1].Reason != "more traffic" ||
		daily[1].Version != 2 || daily[1].LimitMicros != 20_000_000 {
		t.Fatalf("history %+v", hist)
	}
	var ps []store.PolicyRow
	cliJSON(t, url, &ps, "policy", "list", "--agent", "team")
	if len(ps) != 2 || ps[1].Window != "monthly" || ps[1].Active || ps[1].Currency != "EUR" || ps[1].WindowKind != "rolling" {
		t.Fatalf("policies %+v", ps)
	}
	if _, _, err := cli(t, url, "policy", "set", "--agent", "team", "--limit", "1", "--window", "daily"); err == nil {
		t.Fatal("policy set without a reason succeeded")
	}
	if _, _, err := cli(t, url, "policy", "set", "--agent", "team", "--limit", "1", "--window", "daily", "--reason", " "); err == nil {
		t.Fatal("policy set with a blank reason succeeded")
	}
	cliJSON(t, url, &hist, "policy", "history", "--agent", "team")
	if len(hist) != 3 {
		t.Fatalf("a rejected change reached the history: %+v", hist)
	}

	mustCLI(t, url, "allow", "add", "--agent", "team", "--kind", "model", "gpt-4o*")
	mustCLI(t, url, "allow", "add", "--agent", "team", "--kind", "route", "openai")
	mustCLI(t, url, "allow", "remove", "--agent", "team", "--kind", "route", "openai")
	var al []store.AllowRow
	cliJSON(t, url, &al, "allow", "list", "--agent", "team")
	if len(al) != 1 || al[0].Kind != "model" || al[0].Pattern != "gpt-4o*" {
		t.Fatalf("allow-list %+v", al)
	}

	mustCLI(t, url, "route", "set", "openai", "--prefix", "/openai", "--upstream", "https://api.openai.com",
		"--upstream", "https://backup.example.com/v1", "--credential", "env:OPENAI_API_KEY", "--strict")
	mustCLI(t, url, "route", "set", "tool", "--prefix", "/tool", "--upstream", "http://127.0.0.1:8081",
		"--provider", "generic", "--pricing", "per_request", "--price", "0.002", "--strip-prefix=false", "--fail-open")
	var r store.RouteRow
	cliJSON(t, url, &r, "route", "set", "tool", "--prefix", "/tools", "--upstream", "http://127.0.0.1:8081",
		"--provider", "generic", "--pricing", "header", "--price-header", "X-Cost", "--allow-target-url")
	if r.Prefix != "/tools" || r.Pricing != "header" || r.PriceHeader != "X-Cost" || !r.AllowTargetURL || r.FailOpen || !r.StripPrefix {
		t.Fatalf("replaced route %+v", r)
	}
	var routes []store.RouteRow
	cliJSON(t, url, &routes, "route", "list")
	if len(routes) != 2 || len(routes[0].UpstreamURLs) != 2 || !routes[0].Strict || routes[0].CredentialRef != "env:OPENAI_API_KEY" ||
		routes[0].CredentialHeader != "Authorization" {
		t.Fatalf("routes %+v", routes)
	}
	if table := mustCLI(t, url, "route", "list"); !strings.Contains(table, "/openai") || !strings.Contains(table, "strict") {
		t.Fatalf("route table %q", table)
	}
}

func TestAdminPricebookAndIdentities(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	dir := t.TempDir()
	var pr store.PriceRow
	cliJSON(t, url, &pr, "pricebook", "set", "--resource", "openai", "--model", "gpt-4o-mini", "--unit", "input_mtok", "--price", "0.15")
	if pr.PriceMicros != 150_000 || pr.Currency != "USD" {
		t.Fatalf("price %+v", pr)
	}
	bad := filepath.Join(dir, "bad.csv")
	writeFile(t, bad, "resource,model,unit,price,currency\nanthropic,claude,input_mtok,3,USD\nanthropic,claude,output_mtok,15,USD\nanthropic,claude,per_token,1,USD\n")
	_, _, err := cli(t, url, "pricebook", "import", bad)
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "per_token") {
		t.Fatalf("bad import: %v", err)
	}
	var prices []store.PriceRow
	cliJSON(t, url, &prices, "pricebook", "list")
	if len(prices) != 1 {
		t.Fatalf("a failed import left rows: %+v", prices)
	}
	good := filepath.Join(dir, "good.csv")
	writeFile(t, good, "resource,model,unit,price,currency\nanthropic,claude,input_mtok,3,USD\nanthropic,claude,output_mtok,15,USD\nopenai,gpt-4o-mini,input_mtok,0.2,USD\n")
	if out := mustCLI(t, url, "pricebook", "import", good); !strings.Contains(out, "imported 3") {
		t.Fatalf("import: %q", out)
	}
	cliJSON(t, url, &prices, "pricebook", "list")
	if len(prices) != 3 || prices[2].Model != "gpt-4o-mini" || prices[2].PriceMicros != 200_000 || prices[1].PriceMicros != 15_000_000 {
		t.Fatalf("prices %+v", prices)
	}

	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "issuer.pem")
	writeFile(t, pemFile, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	mustCLI(t, url, "jwt-issuer", "add", "--issuer", "https://idp.example", "--alg", "EdDSA", "--audience", "caracal", "--public-key-file", pemFile)
	mustCLI(t, url, "jwt-issuer", "add", "--issuer", "internal", "--alg", "HS256", "--audience", "a,b", "--hmac-secret-ref", "env:JWT_SECRET", "--agent-claim", "agent", "--leeway", "5s")
	var iss []store.JWTIssuerRow
	cliJSON(t, url, &iss, "jwt-issuer", "list")
	if len(iss) != 2 || iss[0].Issuer != "https://idp.example" || !strings.Contains(iss[0].PublicKeysPEM, "BEGIN PUBLIC KEY") ||
		iss[1].HMACSecretRef != "env:JWT_SECRET" || len(iss[1].Audiences) != 2 || iss[1].LeewaySeconds != 5 || iss[1].AgentClaim != "agent" {
		t.Fatalf("issuers %+v", iss)
	}

	mustCLI(t, url, "agent", "create", "svc")
	fp := strings.ToUpper(strings.Repeat("0a:", 31) + "0a")
	mustCLI(t, url, "mtls-identity", "add", "--agent", "svc", "--kind", "fingerprint_sha256", "--value", fp)
	mustCLI(t, url, "mtls-identity", "add", "--agent", "svc", "--kind", "san_uri", "--value", "spiffe://example.org/svc")
	var ids []store.MTLSRow
	cliJSON(t, url, &ids, "mtls-identity", "list")
	if len(ids) != 2 || ids[0].Kind != "fingerprint_sha256" || ids[0].Value != strings.Repeat("0a", 32) || ids[1].Agent != "svc" {
		t.Fatalf("identities %+v", ids)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAdminBadInputs(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	mustCLI(t, url, "agent", "create", "p")
	mustCLI(t, url, "route", "set", "r", "--prefix", "/r", "--upstream", "https://x.example")
	mustCLI(t, url, "jwt-issuer", "add", "--issuer", "dup", "--alg", "HS256", "--audience", "a", "--hmac-secret-ref", "env:S")
	mustCLI(t, url, "mtls-identity", "add", "--agent", "p", "--kind", "san_dns", "--value", "p.example")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "create", "p"}, `agent "p" already exists`},
		{[]string{"agent", "create", "q", "--parent", "nope"}, `parent agent "nope" not found`},
		{[]string{"agent", "create", "bad name"}, "invalid agent name"},
		{[]string{"agent", "create"}, "accepts 1 arg"},
		{[]string{"agent", "create", "q", "--rate-limit-rps", "-1"}, "negative"},
		{[]string{"agent", "get", "ghost"}, `agent "ghost" not found`},
		{[]string{"agent", "disable", "ghost"}, `agent "ghost" not found`},
		{[]string{"key", "create"}, `required flag(s) "agent"`},
		{[]string{"key", "create", "--agent", "ghost"}, `agent "ghost" not found`},
		{[]string{"key", "create", "--agent", "p", "--expires-in", "30d"}, "expires-in"},
		{[]string{"key", "create", "--agent", "p", "--expires-in", "-1h"}, "expiry"},
		{[]string{"key", "revoke", "nope"}, "invalid key prefix"},
		{[]string{"key", "revoke", "crk_AAAAAAAAAAAA"}, "not found"},
		{[]string{"policy", "set", "--agent", "p", "--limit", "1.0000001", "--window", "daily", "--reason", "r"}, "6 digits"},
		{[]string{"policy", "set", "--agent", "p", "--limit", "-5", "--window", "daily", "--reason", "r"}, "negative"},
		{[]string{"policy", "set", "--agent", "p", "--limit", "1e3", "--window", "daily", "--reason", "r"}, "invalid amount"},
		{[]string{"policy", "set", "--agent", "p", "--limit", "99999999999999", "--window", "daily", "--reason", "r"}, "too large"},
		{[]string{"policy", "set", "--agent", "p", "--limit", "5", "--window", "yearly", "--reason", "r"}, "invalid window"},
		{[]string{"policy", "set", "--agent", "p", "--limit", "5", "--window", "daily", "--reason", "r", "--currency", "DOLLARS"}, "invalid currency"},
		{[]string{"policy", "history", "--agent", "ghost"}, "not found"},
		{[]string{"allow", "add", "--agent", "p", "--kind", "host", "x"}, "invalid allow-list kind"},
		{[]string{"allow", "add", "--agent", "p", "--kind", "target", "https://x.example/"}, "not a URL"},
		{[]string{"allow", "remove", "--agent", "p", "--kind", "model", "gpt"}, "not on the allow-list"},
		{[]string{"route", "set", "Bad", "--prefix", "/b", "--upstream", "https://x.example"}, "invalid route name"},
		{[]string{"route", "set", "b", "--prefix", "b", "--upstream", "https://x.example"}, "invalid route prefix"},
		{[]string{"route", "set", "b", "--prefix", "/b", "--upstream", "ftp://x.example"}, "invalid upstream URL"},
		{[]string{"route", "set", "b", "--prefix", "/b", "--upstream", "https://user:pw@x.example"}, "invalid upstream URL"},
		{[]string{"route", "set", "b", "--prefix", "/b", "--upstream", "https://x.example", "--credential", "sk-live-123"}, "invalid credential reference"},
		{[]string{"route", "set", "b", "--prefix", "/b", "--upstream", "https://x.example", "--provider", "cohere"}, "invalid provider"},
		{[]string{"route", "set", "b", "--prefix", "/b", "--upstream", "https://x.example", "--pricing", "per_request"}, "give --price"},
		{[]string{"route", "set", "b", "--prefix", "/b", "--upstream", "https://x.example", "--pricing", "header"}, "price-header"},
		{[]string{"route", "set", "b", "--prefix", "/b", "--upstream", "https://x.example", "--strict", "--fail-open"}, "both strict and fail-open"},
		{[]string{"route", "set", "b", "--prefix", "/r", "--upstream", "https://x.example"}, `prefix "/r" is already used`},
		{[]string{"pricebook", "set", "--resource", "o", "--unit", "token", "--price", "1"}, "invalid unit"},
		{[]string{"pricebook", "set", "--resource", "o", "--unit", "request", "--price", "abc"}, "invalid amount"},
		{[]string{"pricebook", "import", "/nonexistent/prices.csv"}, "cannot open"},
		{[]string{"jwt-issuer", "add", "--issuer", "i", "--alg", "none", "--audience", "a", "--jwks-url", "https://i/jwks"}, "invalid algorithm"},
		{[]string{"jwt-issuer", "add", "--issuer", "i", "--alg", "RS256", "--audience", "a", "--hmac-secret-ref", "env:S"}, "need public keys"},
		{[]string{"jwt-issuer", "add", "--issuer", "i", "--alg", "HS256", "--audience", "a", "--jwks-url", "https://i/jwks"}, "HMAC secret reference"},
		{[]string{"jwt-issuer", "add", "--issuer", "i", "--alg", "RS256", "--audience", "a"}, "at least one of the flags"},
		{[]string{"jwt-issuer", "add", "--issuer", "i", "--alg", "RS256", "--audience", "a", "--jwks-url", "https://i/jwks", "--leeway", "1h"}, "invalid leeway"},
		{[]string{"jwt-issuer", "add", "--issuer", "i", "--alg", "HS256", "--audience", "a", "--hmac-secret-ref", "s3cret"}, "invalid HMAC secret reference"},
		{[]string{"jwt-issuer", "add", "--issuer", "dup", "--alg", "HS256", "--audience", "a", "--hmac-secret-ref", "env:S"}, `issuer "dup" already exists`},
		{[]string{"jwt-issuer", "add", "--issuer", "i", "--alg", "RS256", "--audience", "a", "--public-key-file", "/nonexistent.pem"}, "cannot read the public key file"},
		{[]string{"mtls-identity", "add", "--agent", "p", "--kind", "fingerprint_sha256", "--value", "abc"}, "invalid SHA-256 fingerprint"},
		{[]string{"mtls-identity", "add", "--agent", "p", "--kind", "ip", "--value", "1.2.3.4"}, "invalid identity kind"},
		{[]string{"mtls-identity", "add", "--agent", "p", "--kind", "san_dns", "--value", "P.example"}, "already mapped"},
		{[]string{"agent", "list", "--output", "yaml"}, "--output must be table or json"},
	} {
		_, _, err := cli(t, url, tc.args...)
		if err == nil {
			t.Errorf("caracal %s: no error", strings.Join(tc.args, " "))
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, "SQLSTATE") {
			t.Errorf("caracal %s: error %q, want one line containing %q", strings.Join(tc.args, " "), msg, tc.want)
		}
	}
}

func TestAdminChangeNotifies(t *testing.T) {
	t.Parallel()
	url := testenv.PGURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN caracal_control"); err != nil {
		t.Fatal(err)
	}
	var a store.AgentRow
	cliJSON(t, url, &a, "agent", "create", "notified")
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	var payload struct {
		Table, Op, ID string
		AgentID       string `json:"agent_id"`
	}
	if err := json.Unmarshal([]byte(n.Payload), &payload); err != nil {
		t.Fatal(err)
	}
	if n.Channel != "caracal_control" || payload.Table != "agents" || payload.Op != "INSERT" || payload.AgentID != a.ID {
		t.Fatalf("notification %s %s", n.Channel, n.Payload)
	}
	mustCLI(t, url, "policy", "set", "--agent", "notified", "--limit", "1", "--window", "hourly", "--reason", "r")
	n, err = conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no notification for the policy: %v", err)
	}
	if err := json.Unmarshal([]byte(n.Payload), &payload); err != nil || payload.Table != "policies" || payload.AgentID != a.ID {
		t.Fatalf("notification %s %v", n.Payload, err)
	}
}
