package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func TestGenerateKeyFormat(t *testing.T) {
	re := regexp.MustCompile(`^crk_[A-Za-z0-9]{12}_[A-Za-z0-9]{32}$`)
	seen := map[string]bool{}
	for range 200 {
		key, prefix, err := store.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(key) || prefix != key[:store.KeyPrefixLen] || len(prefix) != 16 {
			t.Fatalf("key %q prefix %q", key, prefix)
		}
		if seen[prefix] {
			t.Fatalf("prefix %q generated twice", prefix)
		}
		seen[prefix] = true
	}
	if h := store.HashKey("crk_x"); h != sha256.Sum256([]byte("crk_x")) {
		t.Fatal("HashKey is not SHA-256 of the whole key")
	}
}

func TestNormaliseMTLSValue(t *testing.T) {
	fp := strings.Repeat("AB:", 31) + "AB"
	got, err := store.NormaliseMTLSValue("fingerprint_sha256", fp)
	if err != nil || got != strings.Repeat("ab", 32) {
		t.Fatalf("fingerprint: %q %v", got, err)
	}
	for _, tc := range [][2]string{
		{"fingerprint_sha256", "abcd"},
		{"fingerprint_sha256", strings.Repeat("zz", 32)},
		{"san_uri", "not a uri"},
		{"san_dns", ""},
		{"ip", "10.0.0.1"},
	} {
		if _, err := store.NormaliseMTLSValue(tc[0], tc[1]); err == nil {
			t.Errorf("NormaliseMTLSValue(%q, %q) accepted", tc[0], tc[1])
		}
	}
}

func TestControlRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := testenv.PG(t)
	root, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "root", RateLimitRPS: 5})
	if err != nil {
		t.Fatal(err)
	}
	if root.RateLimitBurst != 5 || root.Depth != 0 || root.RootID != root.ID {
		t.Fatalf("root %+v", root)
	}
	child, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "child", Parent: root.ID})
	if err != nil {
		t.Fatal(err)
	}
	if child.Parent != "root" || child.RootID != root.ID || child.Depth != 1 {
		t.Fatalf("child %+v", child)
	}
	if _, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "root"}); err == nil || err.Error() != `agent "root" already exists` {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "x", Parent: "nope"}); err == nil || err.Error() != `parent agent "nope" not found` {
		t.Fatalf("missing parent: %v", err)
	}
	// Depth is bounded by the schema.
	parent := "child"
	for i := 2; i <= store.MaxDelegationDepth; i++ {
		a, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "d" + string(rune('0'+i)), Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		parent = a.Name
	}
	if _, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "toodeep", Parent: parent}); err == nil || !strings.Contains(err.Error(), "at most 7 levels") {
		t.Fatalf("too deep: %v", err)
	}

	k, err := store.CreateKey(ctx, db, store.NewKey{Agent: "child", Name: "ci", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if k.ExpiresAt == nil || k.Prefix != k.Key[:16] || k.Agent != "child" {
		t.Fatalf("key %+v", k)
	}
	if _, err := store.RevokeKey(ctx, db, k.Key); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Fatalf("revoke by whole key: %v", err)
	}
	r, err := store.RevokeKey(ctx, db, k.Prefix)
	if err != nil || r.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if _, err := store.RevokeKey(ctx, db, "crk_AAAAAAAAAAAA"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}

	if _, err := store.SetPolicy(ctx, db, store.PolicySpec{Agent: "child", LimitMicros: 1, Window: "daily", Active: true}); err == nil {
		t.Fatal("policy without a reason accepted")
	}
	for i, reason := range []string{"first", "second"} {
		p, err := store.SetPolicy(ctx, db, store.PolicySpec{Agent: "child", LimitMicros: int64(i+1) * 1_000_000, Window: "daily", Active: true, Reason: reason})
		if err != nil || p.Version != i+1 || p.Currency != "USD" {
			t.Fatalf("policy %d: %+v %v", i, p, err)
		}
	}
	hist, err := store.PolicyHistory(ctx, db, "child")
	if err != nil || len(hist) != 2 || hist[0].Reason != "first" || hist[1].Reason != "second" || hist[1].LimitMicros != 2_000_000 {
		t.Fatalf("history %+v %v", hist, err)
	}

	if err := store.AddAllow(ctx, db, "child", "model", "gpt-4o*"); err != nil {
		t.Fatal(err)
	}
	if err := store.AddAllow(ctx, db, "child", "model", "g*t"); err == nil {
		t.Fatal("inner * accepted")
	}
	if err := store.RemoveAllow(ctx, db, "child", "route", "none"); err == nil {
		t.Fatal("removing a missing entry succeeded")
	}
	al, err := store.ListAllow(ctx, db, "child", "")
	if err != nil || len(al) != 1 || al[0].Pattern != "gpt-4o*" {
		t.Fatalf("allow %+v %v", al, err)
	}
}

func TestImportPricesAllOrNothing(t *testing.T) {
	ctx := context.Background()
	db := testenv.PG(t)
	bad := "resource,model,unit,price,currency\nopenai,gpt-4o,input_mtok,2.50,USD\nopenai,gpt-4o,output_mtok,1.0000001,USD\n"
	if _, err := store.ImportPrices(ctx, db, strings.NewReader(bad)); err == nil || !strings.HasPrefix(err.Error(), "line 3: ") {
		t.Fatalf("bad import: %v", err)
	}
	for _, tc := range [][2]string{
		{"", "line 1: "},
		{"resource,model,unit,cost,currency\n", "line 1: want the header"},
		{"resource,model,unit,price,currency\nopenai,gpt-4o,input_mtok,2.50\n", "line 2: wrong number of fields"},
		{"resource,model,unit,price,currency\nopenai,gpt-4o,input_mtok,2.50,USD\nopenai,gpt-4o,request,-1,USD\n", "line 3: "},
		{"resource,model,unit,price,currency\nopenai,gpt-4o,input_mtok,1,USD\nopenai,gpt-4o,output_mtok,1,EUR\n", "line 3: "},
		{"resource,model,unit,price,currency\nopenai,gpt-4o,input_mtok,1,USD\n\"open\n", "line 3: "},
	} {
		if _, err := store.ImportPrices(ctx, db, strings.NewReader(tc[0])); err == nil || !strings.HasPrefix(err.Error(), tc[1]) {
			t.Errorf("import %q: %v, want %q", tc[0], err, tc[1])
		}
	}
	ps, err := store.ListPrices(ctx, db)
	if err != nil || len(ps) != 0 {
		t.Fatalf("after a failed import: %+v %v", ps, err)
	}
	good := "resource,model,unit,price,currency\nopenai,gpt-4o,input_mtok,2.50,USD\nopenai,gpt-4o,output_mtok,10,USD\n"
	n, err := store.ImportPrices(ctx, db, strings.NewReader(good))
	if err != nil || n != 2 {
		t.Fatalf("import: %d %v", n, err)
	}
	if _, err := store.SetPrice(ctx, db, store.PriceSpec{Resource: "openai", Model: "gpt-4o", Unit: "request", PriceMicros: 1, Currency: "EUR"}); err == nil {
		t.Fatal("a second currency for one model accepted")
	}
}
