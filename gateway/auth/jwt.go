package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
)

// Limits on what a token may carry.
const (
	MaxTokenLen     = MaxCredentialLen
	maxHeaderJSON   = 1 << 10
	maxClaimsJSON   = 4 << 10
	maxKidLen       = 256
	maxAgentNameLen = 256
)

// JWTOptions tune a JWTVerifier; zero values take the defaults.
type JWTOptions struct {
	// Now is the clock for exp/nbf/iat and refresh rate limits (time.Now).
	Now func() time.Time
	// HTTPClient fetches JWKS (default: a client with a 5 s timeout).
	HTTPClient *http.Client
	// JWKSRefresh is the interval of Run's periodic refresh (5 min).
	JWKSRefresh time.Duration
	// JWKSMinGap is the least time between two fetches caused by unknown
	// kids, so a flood of bogus kids cannot flood the issuer (30 s).
	JWKSMinGap time.Duration
	// Getenv resolves env: secret references (os.Getenv).
	Getenv func(string) string
	// TokenCacheSize bounds the verified-token cache (jwt_cache.go) in
	// entries (DefaultTokenCacheSize); negative turns the cache off.
	TokenCacheSize int
	// TokenCacheTTL is the longest a verification is reused, never past the
	// token's exp (DefaultTokenCacheTTL).
	TokenCacheTTL time.Duration
}

func (o *JWTOptions) setDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if o.JWKSRefresh <= 0 {
		o.JWKSRefresh = 5 * time.Minute
	}
	if o.JWKSMinGap <= 0 {
		o.JWKSMinGap = 30 * time.Second
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
}

// Claims is what a verified token says about its bearer.
type Claims struct {
	Issuer    string
	Agent     string // the value of the issuer's AgentClaim (a name or an id)
	Subject   string
	ExpiresAt time.Time
}

type issuer struct {
	cfg        control.JWTIssuer
	algs       [algHS256 + 1]bool
	agentClaim string
	static     map[string]*pubKey // by kid (thumbprint and PEM kid header)
	staticList []*pubKey          // each PEM key once
	hmac       []byte
	jwks       *jwksCache
}

// JWTVerifier verifies compact JWS tokens against trusted issuers. It is
// immutable but for the JWKS caches and the verified-token cache; build a
// new one when the issuers change.
type JWTVerifier struct {
	issuers map[string]*issuer
	now     func() time.Time
	refresh time.Duration
	cache   *tokenCache // nil: every token is verified in full
}

// NewJWTVerifier checks every issuer's configuration and loads its keys. A
// bad configuration fails here, naming the issuer.
func NewJWTVerifier(issuers []control.JWTIssuer, opts JWTOptions) (*JWTVerifier, error) {
	opts.setDefaults()
	v := &JWTVerifier{issuers: make(map[string]*issuer, len(issuers)), now: opts.Now, refresh: opts.JWKSRefresh}
	if len(issuers) > 0 {
		v.cache = newTokenCache(opts.TokenCacheSize, opts.TokenCacheTTL)
	}
	for _, cfg := range issuers {
		is, err := newIssuer(cfg, &opts, v.cache)
		if err != nil {
			return nil, fmt.Errorf("cannot configure JWT issuer %q: %w", cfg.Issuer, err)
		}
		if _, dup := v.issuers[cfg.Issuer]; dup {
			return nil, fmt.Errorf("cannot configure JWT issuer %q: listed twice", cfg.Issuer)
		}
		v.issuers[cfg.Issuer] = is
	}
	return v, nil
}

func newIssuer(cfg control.JWTIssuer, o *JWTOptions, tc *tokenCache) (*issuer, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("empty issuer")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("no audiences: every token must name one")
	}
	is := &issuer{cfg: cfg, agentClaim: cfg.AgentClaim}
	if is.agentClaim == "" {
		is.agentClaim = "sub"
	}
	for _, name := range cfg.Algorithms {
		a := parseAlg(name)
		if a == algNone {
			return nil, fmt.Errorf("algorithm %q is not supported (want RS256, ES256, EdDSA or HS256)", name)
		}
		is.algs[a] = true
	}
	if err := is.loadKeys(o, tc); err != nil {
		return nil, err
	}
	return is, nil
}

func (is *issuer) loadKeys(o *JWTOptions, tc *tokenCache) error {
	var err error
	if is.static, is.staticList, err = parsePEMKeys(is.cfg.PublicKeysPEM); err != nil {
		return err
	}
	if is.algs[algHS256] {
		if is.hmac, err = resolveSecret(is.cfg.HMACSecretRef, o.Getenv); err != nil {
			return err
		}
	}
	if is.cfg.JWKSURL != "" {
		is.jwks = &jwksCache{url: is.cfg.JWKSURL, client: o.HTTPClient, now: o.Now, minGap: o.JWKSMinGap, tokens: tc}
	}
	if (is.algs[algRS256] || is.algs[algES256] || is.algs[algEdDSA]) && len(is.staticList) == 0 && is.jwks == nil {
		return errors.New("asymmetric algorithms pinned but no public keys and no JWKS URL")
	}
	return nil
}

// Refresh fetches every issuer's JWKS once; call it at start so the first
// tokens do not wait. It returns the first failure but tries every issuer.
func (v *JWTVerifier) Refresh(ctx context.Context) error {
	var first error
	for _, is := range v.issuers {
		if is.jwks != nil {
			if err := is.jwks.refresh(ctx); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Run refreshes every JWKS on the configured interval until ctx is done.
func (v *JWTVerifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, is := range v.issuers {
		if is.jwks == nil {
			continue
		}
		wg.Add(1)
		go func(c *jwksCache) {
			defer wg.Done()
			t := time.NewTicker(v.refresh)
			defer t.Stop()
			for {
				_ = c.refresh(ctx) // counted; the last good set stays
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}(is.jwks)
	}
	wg.Wait()
}
