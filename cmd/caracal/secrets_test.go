package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/caracal-gw/caracal/internal/testenv"
)

// Planted secrets: none of them may appear in any output.
const (
	plantedDBPassword   = "planted-db-pw-7f3a91"
	plantedDBFilePW     = "planted-db-file-pw-0c2e"
	plantedRedisPW      = "planted-redis-pw-c41d"
	plantedSASLPW       = "planted-sasl-pw-88e0"
	plantedAdminToken   = "planted-admin-token-2b6f"
	plantedUpstreamCred = "sk-planted-upstream-5d9e"
)

var planted = []string{plantedDBPassword, plantedDBFilePW, plantedRedisPW, plantedSASLPW, plantedAdminToken, plantedUpstreamCred}

// runAll runs the command line without the cli helper's --set database.url
// (which would override the environment under test) and returns everything
// it printed plus its error text.
func runAll(t *testing.T, args ...string) (out string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	err = run(ctx, args, &o, &e)
	out = o.String() + "\n" + e.String()
	if err != nil {
		out += "\n" + err.Error()
	}
	return out, err
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range planted {
		if strings.Contains(out, s) {
			t.Errorf("%s prints the planted secret %q:\n%s", what, s, out)
		}
	}
}

// TestSecretsNeverPrinted plants every kind of secret through the
// environment or a file and greps every output for them.
func TestSecretsNeverPrinted(t *testing.T) {
	url := testenv.PGURL(t)
	t.Setenv("CARACAL_CONFIG", "")
	t.Setenv("CARACAL_REDIS_PASSWORD", plantedRedisPW)
	t.Setenv("CARACAL_KAFKA_SASL_MECHANISM", "PLAIN")
	t.Setenv("CARACAL_KAFKA_SASL_USERNAME", "caracal")
	t.Setenv("CARACAL_KAFKA_SASL_PASSWORD", plantedSASLPW)
	t.Setenv("CARACAL_GATEWAY_ADMIN_TOKEN", plantedAdminToken)
	credEnv := testenv.Name("CARACAL_TEST_PLANTED_")
	credEnv = strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(credEnv))
	t.Setenv(credEnv, plantedUpstreamCred)

	t.Run("with a working database", func(t *testing.T) {
		t.Setenv("CARACAL_DATABASE_URL", url)
		route := testenv.Name("secret-route-")
		for _, args := range [][]string{
			{"config", "show"},
			{"config", "show", "-o", "json"},
			{"route", "set", route, "--prefix", "/" + route, "--upstream", "http://127.0.0.1:9/v1", "--credential", "env:" + credEnv},
			{"route", "list"},
			{"route", "list", "-o", "json"},
		} {
			out, err := runAll(t, args...)
			if err != nil {
				t.Fatalf("caracal %s: %v", strings.Join(args, " "), err)
			}
			assertNoSecret(t, "caracal "+strings.Join(args, " "), out)
			if args[0] == "config" && strings.Count(out, "REDACTED") < 3 {
				t.Fatalf("caracal %s redacts fewer than the three planted config secrets:\n%s", strings.Join(args, " "), out)
			}
			if args[0] == "route" && args[1] == "list" && !strings.Contains(out, "env:"+credEnv) {
				t.Fatalf("route list does not show the credential reference:\n%s", out)
			}
		}
	})

	t.Run("with a planted database password", func(t *testing.T) {
		// The URL names no password; the environment adds one, which the
		// server rejects: the failing commands' errors must not carry it.
		t.Setenv("CARACAL_DATABASE_URL", "postgres://caracal_nobody@127.0.0.1:5432/caracal_nowhere?sslmode=disable&connect_timeout=5")
		t.Setenv("CARACAL_DATABASE_PASSWORD", plantedDBPassword)
		out, err := runAll(t, "config", "show")
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecret(t, "config show", out)
		if !strings.Contains(out, "caracal_nobody:REDACTED@") {
			t.Fatalf("the database password from CARACAL_DATABASE_PASSWORD is not shown as redacted:\n%s", out)
		}
		for _, args := range [][]string{
			{"route", "list"},
			{"agent", "list"},
			{"db", "migrate", "up"},
			{"--set", "redis.db=99", "config", "show"},
			{"--set", "gateway.listen=nonsense", "route", "list"},
		} {
			out, err := runAll(t, args...)
			if err == nil {
				t.Fatalf("caracal %s succeeded against a database that does not exist", strings.Join(args, " "))
			}
			assertNoSecret(t, "caracal "+strings.Join(args, " "), out)
		}
	})

	t.Run("with a password file", func(t *testing.T) {
		pf := filepath.Join(t.TempDir(), "db-password")
		if err := os.WriteFile(pf, []byte(plantedDBFilePW+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CARACAL_DATABASE_URL", "postgres://caracal_nobody@127.0.0.1:5432/caracal_nowhere?sslmode=disable&connect_timeout=5")
		t.Setenv("CARACAL_DATABASE_PASSWORD_FILE", pf)
		for _, args := range [][]string{{"config", "show"}, {"config", "show", "-o", "json"}, {"route", "list"}} {
			out, _ := runAll(t, args...)
			assertNoSecret(t, "caracal "+strings.Join(args, " "), out)
		}
	})
}

// secretFlag matches flag names that would carry a secret's value.
var secretFlag = regexp.MustCompile(`(?i)password|passwd|secret|token|api-?key|private-?key|signer-?key|credential-value|key-value`)

// allowedSecretFlags are documented flags whose value is where the secret
// lives (a file or an env:/file: reference), never the secret itself.
var allowedSecretFlags = map[string]string{
	"hmac-secret-ref": "env:NAME or file:/path reference (store.CheckCredentialRef)",
	"signer-key-file": "path of the ledger signer key file",
}

// TestNoSecretFlags walks the command tree: no command takes a secret as a
// flag value.
func TestNoSecretFlags(t *testing.T) {
	root, _ := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	seen := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			seen++
			if !secretFlag.MatchString(f.Name) {
				return
			}
			if _, ok := allowedSecretFlags[f.Name]; ok || strings.HasSuffix(f.Name, "-file") || strings.HasSuffix(f.Name, "-ref") {
				return
			}
			t.Errorf("%s --%s takes a secret on the command line; read it from a file, the environment or a reference instead", c.CommandPath(), f.Name)
		}
		c.LocalFlags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if seen < 50 {
		t.Fatalf("walked only %d flags: the command tree did not load", seen)
	}
}

// TestRouteCredentialMustBeReference: a literal upstream key given to
// --credential is refused (it would end up in the database and in route
// list).
func TestRouteCredentialMustBeReference(t *testing.T) {
	url := testenv.PGURL(t)
	route := testenv.Name("literal-cred-")
	out, err := runAll(t, "--set", "database.url="+url, "route", "set", route, "--prefix", "/"+route, "--upstream", "http://127.0.0.1:9/v1", "--credential", plantedUpstreamCred)
	if err == nil {
		t.Fatalf("route set accepted a literal credential:\n%s", out)
	}
	t.Logf("a literal credential is refused with: %v", err)
	out, _ = runAll(t, "--set", "database.url="+url, "route", "list")
	if strings.Contains(out, plantedUpstreamCred) {
		t.Fatalf("route list shows a literal credential:\n%s", out)
	}
}
