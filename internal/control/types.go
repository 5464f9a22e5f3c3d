// Package control holds the control data the gateway enforces (agents,
// credentials, policies, allow-lists, routes, prices) as plain values, as
// loaded from PostgreSQL and cached by the gateway.
package control

import (
	"time"

	"github.com/caracal-gw/caracal/internal/event"
)

// Window is the length of a budget window.
type Window uint8

const (
	Hourly Window = iota + 1
	Daily
	Weekly
	Monthly
)

var windowNames = [...]string{Hourly: "hourly", Daily: "daily", Weekly: "weekly", Monthly: "monthly"}

func (w Window) String() string {
	if int(w) < len(windowNames) && windowNames[w] != "" {
		return windowNames[w]
	}
	return "unknown"
}

// ParseWindow parses hourly|daily|weekly|monthly.
func ParseWindow(s string) (Window, bool) {
	for i, n := range windowNames {
		if n != "" && n == s {
			return Window(i), true
		}
	}
	return 0, false
}

// Policy is one budget limit of an agent: LimitMicros per Window, either on
// calendar boundaries (UTC) or rolling.
type Policy struct {
	ID          event.UUID
	LimitMicros int64
	Currency    [3]byte
	Window      Window
	Rolling     bool
	Version     int
}

// Agent is an agent with everything the gateway checks about it.
type Agent struct {
	ID     event.UUID
	Name   string
	Parent event.UUID // zero for a root agent
	Root   event.UUID
	// Ancestors are the parent, grandparent, ... up to the root (the root is
	// last); empty for a root agent.
	Ancestors      []event.UUID
	Active         bool
	RateLimitRPS   int
	RateLimitBurst int
	ReplayRequired bool
	// Policies are the agent's active policies.
	Policies []Policy
	// Allow-lists; an empty list allows everything of that kind.
	AllowRoutes  []string
	AllowModels  []string // exact names, or a prefix ending in '*'
	AllowTargets []string // host names, or "*.suffix"
}

// APIKey is a stored API key: the visible prefix and the SHA-256 of the
// whole key. The key format is "crk_" + 12 alphanumerics (the prefix, 16
// characters in all) + "_" + 32 alphanumerics of secret.
type APIKey struct {
	Prefix    string
	Hash      [32]byte
	AgentID   event.UUID
	ExpiresAt time.Time // zero: never
	Revoked   bool
}

// JWTIssuer is a trusted token issuer with its pinned algorithms.
type JWTIssuer struct {
	Issuer        string
	Algorithms    []string // of RS256, ES256, EdDSA, HS256
	Audiences     []string
	JWKSURL       string
	PublicKeysPEM string
	HMACSecretRef string // env:NAME or file:/path
	AgentClaim    string // the claim naming the agent (its name or id)
	Leeway        time.Duration
}

// MTLSKind says how a client certificate names an agent.
type MTLSKind uint8

const (
	SANURI MTLSKind = iota + 1
	SANDNS
	FingerprintSHA256
)

// MTLSIdentity maps a certificate attribute to an agent.
type MTLSIdentity struct {
	AgentID event.UUID
	Kind    MTLSKind
	Value   string // the URI, the DNS name, or the lower-case hex fingerprint
}

// Provider is the API dialect of a route's upstream, which decides how usage
// is read from responses.
type Provider uint8

const (
	OpenAI Provider = iota + 1
	Anthropic
	Generic
)

// PricingMode says how a route's calls are priced.
type PricingMode uint8

const (
	PriceTokens PricingMode = iota + 1
	PricePerRequest
	PriceHeader
)

// Route maps a path prefix to an upstream pool.
type Route struct {
	ID               event.UUID
	Name             string
	Prefix           string
	UpstreamURLs     []string
	CredentialRef    string // env:NAME, file:/path or none
	CredentialHeader string
	CredentialFormat string // e.g. "Bearer %s"
	Provider         Provider
	Pricing          PricingMode
	PricePerRequest  int64
	PriceHeader      string
	StripPrefix      bool
	ReplayRequired   bool
	Strict           bool
	FailOpen         bool
	AllowTargetURL   bool
}

// Price is the pricebook entry for a resource (route or provider name) and
// model ("*" for any): micro-units per million input and output tokens, and
// per request.
type Price struct {
	Resource      string
	Model         string
	InputPerMTok  int64
	OutputPerMTok int64
	// CacheWritePerMTok and CacheReadPerMTok price prompt-cache writes and
	// reads (Anthropic's cache_creation_input_tokens and
	// cache_read_input_tokens) per million tokens, when HasCacheWrite and
	// HasCacheRead say the pricebook sets them. An unset one falls back to
	// InputPerMTok: see CacheWrite and CacheRead.
	CacheWritePerMTok int64
	CacheReadPerMTok  int64
	HasCacheWrite     bool
	HasCacheRead      bool
	PerRequest        int64
	Currency          [3]byte
}

// CacheWrite is the price per million prompt-cache write tokens: the
// cache_write_mtok entry, else the input price.
func (p *Price) CacheWrite() int64 {
	if p.HasCacheWrite {
		return p.CacheWritePerMTok
	}
	return p.InputPerMTok
}

// CacheRead is the price per million prompt-cache read tokens: the
// cache_read_mtok entry, else the input price.
func (p *Price) CacheRead() int64 {
	if p.HasCacheRead {
		return p.CacheReadPerMTok
	}
	return p.InputPerMTok
}
