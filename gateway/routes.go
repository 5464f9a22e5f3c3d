package gateway

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/caracal-gw/caracal/gateway/cache"
	"github.com/caracal-gw/caracal/gateway/proxy"
	"github.com/caracal-gw/caracal/gateway/usage"
	"github.com/caracal-gw/caracal/internal/control"
)

// route is a control.Route compiled for the hot path.
type route struct {
	control.Route
	name     []byte
	prefix   []byte
	provider []byte
	up       *proxy.Upstream
}

// routeTable is built from one snapshot of the control tables and swapped
// atomically when they change.
type routeTable struct {
	from   *cache.Tables
	routes []*route // longest prefix first
	prices *usage.Pricebook
}

var providerNames = map[control.Provider]string{control.OpenAI: "openai", control.Anthropic: "anthropic", control.Generic: "generic"}

func (g *Gateway) buildRoutes(t *cache.Tables) (*routeTable, error) {
	rt := &routeTable{from: t}
	pb, err := usage.NewPricebook(t.Prices)
	if err != nil {
		return nil, fmt.Errorf("cannot build the pricebook: %w", err)
	}
	rt.prices = pb
	for i := range t.Routes {
		r := &route{Route: t.Routes[i]}
		r.name, r.prefix = []byte(r.Name), []byte(strings.TrimSuffix(r.Prefix, "/"))
		r.provider = []byte(providerNames[r.Provider])
		up, err := g.compileRoute(r)
		if err != nil {
			// One broken route (a missing credential, say) must not take
			// the others down: its requests are refused with 503.
			slog.Error("route unusable; its requests are refused", "route", r.Name, "err", err)
			brokenRoutes.Inc()
		}
		r.up = up
		rt.routes = append(rt.routes, r)
	}
	sort.SliceStable(rt.routes, func(i, j int) bool { return len(rt.routes[i].prefix) > len(rt.routes[j].prefix) })
	return rt, nil
}

// compileRoute builds the upstream pool of r with its credential.
func (g *Gateway) compileRoute(r *route) (*proxy.Upstream, error) {
	var credName, credValue []byte
	if r.CredentialRef != "" && r.CredentialRef != "none" {
		secret, err := resolveSecret(r.CredentialRef)
		if err != nil {
			return nil, err
		}
		credName = []byte(r.CredentialHeader)
		credValue = []byte(strings.ReplaceAll(r.CredentialFormat, "%s", secret))
	}
	strip := ""
	if r.StripPrefix {
		strip = string(r.prefix)
	}
	up, err := proxy.NewUpstream(r.UpstreamURLs, proxy.Options{
		MaxConns:            g.cfg.Gateway.UpstreamIdleConns,
		ReadTimeout:         g.cfg.RequestTimeout.D(),
		WriteTimeout:        g.cfg.RequestTimeout.D(),
		MaxResponseBodySize: int64(g.cfg.Gateway.MaxResponseBody),
		StripPrefix:         strip,
		CredentialHeader:    credName,
		CredentialValue:     credValue,
		Hygiene:             g.hygiene,
		WriteError:          g.writeUpstreamError,
		RawSocketIO:         g.cfg.Gateway.RawSocketIO,
	})
	if err != nil {
		return nil, err
	}
	return up, nil
}

// match returns the route with the longest prefix that path starts with at
// a segment boundary.
func (rt *routeTable) match(path []byte) *route {
	for _, r := range rt.routes {
		p := r.prefix
		if len(path) >= len(p) && string(path[:len(p)]) == string(p) && (len(path) == len(p) || path[len(p)] == '/' || len(p) == 0) {
			return r
		}
	}
	return nil
}

// resolveSecret reads an upstream credential reference: env:NAME or
// file:/path. The secret never comes from a flag or the database.
func resolveSecret(ref string) (string, error) {
	kind, name, _ := strings.Cut(ref, ":")
	switch kind {
	case "env":
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return "", fmt.Errorf("credential %s: environment variable %s is not set", ref, name)
		}
		return v, nil
	case "file":
		b, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("credential %s: %w", ref, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("credential reference %q: want env:NAME, file:/path or none", ref)
}
