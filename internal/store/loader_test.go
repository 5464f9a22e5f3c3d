package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
	"github.com/caracal-gw/caracal/internal/testenv"
)

func mustUUID(t *testing.T, s string) event.UUID {
	t.Helper()
	u, err := event.ParseUUID([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestLoaders(t *testing.T) {
	ctx := context.Background()
	db := testenv.PG(t)
	root, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "org"})
	if err != nil {
		t.Fatal(err)
	}
	team, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "team", Parent: "org"})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := store.CreateAgent(ctx, db, store.NewAgent{Name: "bot", Parent: "team", RateLimitRPS: 3, RateLimitBurst: 6, ReplayRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []store.PolicySpec{
		{Agent: "bot", LimitMicros: 12_500_000, Window: "daily", Active: true, Reason: "r"},
		{Agent: "bot", LimitMicros: 1, Currency: "eur", Window: "hourly", Rolling: true, Active: true, Reason: "r"},
		{Agent: "bot", LimitMicros: 7, Window: "monthly", Active: false, Reason: "r"},
	} {
		if _, err := store.SetPolicy(ctx, db, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, al := range [][2]string{{"route", "openai"}, {"model", "gpt-4o*"}, {"target", "*.Example.com"}} {
		if err := store.AddAllow(ctx, db, "bot", al[0], al[1]); err != nil {
			t.Fatal(err)
		}
	}

	a, err := store.LoadAgent(ctx, db, mustUUID(t, bot.ID))
	if err != nil {
		t.Fatal(err)
	}
	rootID, teamID := mustUUID(t, root.ID), mustUUID(t, team.ID)
	if a.Name != "bot" || a.Parent != teamID || a.Root != rootID || len(a.Ancestors) != 2 ||
		a.Ancestors[0] != teamID || a.Ancestors[1] != rootID || !a.Active || a.RateLimitRPS != 3 ||
		a.RateLimitBurst != 6 || !a.ReplayRequired {
		t.Fatalf("agent %+v", a)
	}
	if len(a.Policies) != 2 || a.Policies[0].Window != control.Daily || a.Policies[0].LimitMicros != 12_500_000 ||
		string(a.Policies[0].Currency[:]) != "USD" || a.Policies[1].Window != control.Hourly || !a.Policies[1].Rolling ||
		string(a.Policies[1].Currency[:]) != "EUR" || a.Policies[0].Version != 1 {
		t.Fatalf("policies %+v", a.Policies)
	}
	if len(a.AllowRoutes) != 1 || a.AllowModels[0] != "gpt-4o*" || a.AllowTargets[0] != "*.example.com" {
		t.Fatalf("allow-lists %v %v %v", a.AllowRoutes, a.AllowModels, a.AllowTargets)
	}
	r, err := store.LoadAgentByName(ctx, db, "org")
	if err != nil || r.ID != rootID || len(r.Ancestors) != 0 || !r.Parent.IsZero() || r.Root != rootID || len(r.Policies) != 0 {
		t.Fatalf("root %+v %v", r, err)
	}
	if _, err := store.SetAgentStatus(ctx, db, "org", false); err != nil {
		t.Fatal(err)
	}
	if r, err := store.LoadAgentByName(ctx, db, "org"); err != nil || r.Active {
		t.Fatalf("disabled root %+v %v", r, err)
	}
	if _, err := store.LoadAgentByName(ctx, db, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown agent: %v", err)
	}

	k, err := store.CreateKey(ctx, db, store.NewKey{Agent: "bot"})
	if err != nil {
		t.Fatal(err)
	}
	lk, found, err := store.LoadAPIKey(ctx, db, k.Prefix)
	if err != nil || !found || lk.Hash != store.HashKey(k.Key) || lk.AgentID != a.ID || !lk.ExpiresAt.IsZero() || lk.Revoked {
		t.Fatalf("key %+v %v %v", lk, found, err)
	}
	if _, err := store.RevokeKey(ctx, db, k.Prefix); err != nil {
		t.Fatal(err)
	}
	if lk, _, _ := store.LoadAPIKey(ctx, db, k.Prefix); !lk.Revoked {
		t.Fatal("revoked key loads as not revoked")
	}
	if _, found, err := store.LoadAPIKey(ctx, db, "crk_000000000000"); found || err != nil {
		t.Fatalf("unknown key: %v %v", found, err)
	}

	if _, err := store.SetRoute(ctx, db, store.RouteSpec{Name: "openai", Prefix: "/openai", UpstreamURLs: []string{"https://a.example", "https://b.example"},
		CredentialRef: "env:OPENAI_API_KEY", StripPrefix: true, Strict: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetRoute(ctx, db, store.RouteSpec{Name: "tool", Prefix: "/tool", UpstreamURLs: []string{"http://127.0.0.1:9"},
		Provider: "generic", Pricing: "per_request", PricePerRequest: 2000}); err != nil {
		t.Fatal(err)
	}
	routes, err := store.LoadRoutes(ctx, db)
	if err != nil || len(routes) != 2 {
		t.Fatalf("routes %+v %v", routes, err)
	}
	if o := routes[0]; o.Name != "openai" || o.Provider != control.OpenAI || o.Pricing != control.PriceTokens || len(o.UpstreamURLs) != 2 ||
		!o.Strict || !o.StripPrefix || o.CredentialHeader != "Authorization" || o.CredentialFormat != "Bearer %s" {
		t.Fatalf("route %+v", o)
	}
	if o := routes[1]; o.Provider != control.Generic || o.Pricing != control.PricePerRequest || o.PricePerRequest != 2000 || o.CredentialRef != "none" {
		t.Fatalf("route %+v", o)
	}

	for _, p := range []store.PriceSpec{
		{Resource: "openai", Model: "gpt-4o-mini", Unit: "input_mtok", PriceMicros: 150_000},
		{Resource: "openai", Model: "gpt-4o-mini", Unit: "output_mtok", PriceMicros: 600_000},
		{Resource: "openai", Model: "gpt-4o-mini", Unit: "request", PriceMicros: 1},
		{Resource: "tool", Model: "*", Unit: "request", PriceMicros: 2000, Currency: "EUR"},
	} {
		if _, err := store.SetPrice(ctx, db, p); err != nil {
			t.Fatal(err)
		}
	}
	prices, err := store.LoadPrices(ctx, db)
	want := []control.Price{
		{Resource: "openai", Model: "gpt-4o-mini", InputPerMTok: 150_000, OutputPerMTok: 600_000, PerRequest: 1, Currency: [3]byte{'U', 'S', 'D'}},
		{Resource: "tool", Model: "*", PerRequest: 2000, Currency: [3]byte{'E', 'U', 'R'}},
	}
	if err != nil || len(prices) != 2 || prices[0] != want[0] || prices[1] != want[1] {
		t.Fatalf("prices %+v %v", prices, err)
	}

	if _, err := store.AddJWTIssuer(ctx, db, store.JWTIssuerSpec{Issuer: "https://idp.example", Algorithms: []string{"RS256", "ES256"},
		Audiences: []string{"caracal"}, JWKSURL: "https://idp.example/jwks.json", Leeway: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	iss, err := store.LoadJWTIssuers(ctx, db)
	if err != nil || len(iss) != 1 || iss[0].AgentClaim != "sub" || iss[0].Leeway != 30*time.Second || len(iss[0].Algorithms) != 2 || iss[0].JWKSURL == "" {
		t.Fatalf("issuers %+v %v", iss, err)
	}

	if _, err := store.AddMTLSIdentity(ctx, db, "bot", "san_uri", "spiffe://example.org/bot"); err != nil {
		t.Fatal(err)
	}
	ids, err := store.LoadMTLSIdentities(ctx, db)
	if err != nil || len(ids) != 1 || ids[0].Kind != control.SANURI || ids[0].AgentID != a.ID {
		t.Fatalf("identities %+v %v", ids, err)
	}
}
