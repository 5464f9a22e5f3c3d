package store

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

var (
	routeNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	envRefRE     = regexp.MustCompile(`^env:[A-Za-z_][A-Za-z0-9_]*$`)
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// RouteSpec is a route to create or replace (by name). Every field is set;
// SetRoute replaces the whole route.
type RouteSpec struct {
	Name             string   `json:"name"`
	Prefix           string   `json:"prefix"`
	UpstreamURLs     []string `json:"upstream_urls"`
	CredentialRef    string   `json:"credential_ref"`    // env:NAME, file:/path or none
	CredentialHeader string   `json:"credential_header"` // default Authorization
	CredentialFormat string   `json:"credential_format"` // default "Bearer %s"
	Provider         string   `json:"provider"`          // openai|anthropic|generic
	Pricing          string   `json:"pricing"`           // tokens|per_request|header
	PricePerRequest  int64    `json:"price_per_request_micros"`
	PriceHeader      string   `json:"price_header,omitempty"`
	StripPrefix      bool     `json:"strip_prefix"`
	ReplayRequired   bool     `json:"replay_required"`
	Strict           bool     `json:"strict"`
	FailOpen         bool     `json:"fail_open"`
	AllowTargetURL   bool     `json:"allow_target_url"`
}

// RouteRow is a stored route.
type RouteRow struct {
	ID string `json:"id"`
	RouteSpec
	UpdatedAt time.Time `json:"updated_at"`
}

// CheckCredentialRef accepts env:NAME, file:/absolute/path or none: a
// reference to a secret, never the secret itself.
func CheckCredentialRef(ref string) error {
	switch {
	case ref == "none", envRefRE.MatchString(ref):
		return nil
	case strings.HasPrefix(ref, "file:/") && len(ref) > len("file:/"):
		return nil
	}
	// The value is not repeated: it may be the secret itself.
	return fmt.Errorf("invalid credential reference: want env:NAME, file:/path or none (never the secret itself)")
}

func checkHTTPURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("invalid %s %q: want an http:// or https:// URL with a host and no credentials, query or fragment", what, s)
	}
	return nil
}

func (r *RouteSpec) normalise() error {
	if !routeNameRE.MatchString(r.Name) {
		return fmt.Errorf("invalid route name %q: want 1-64 of a-z 0-9 . _ - starting with a letter or digit", r.Name)
	}
	if !strings.HasPrefix(r.Prefix, "/") || strings.ContainsAny(r.Prefix, "?# \t") {
		return fmt.Errorf("invalid route prefix %q: want a path starting with / (no query, fragment or spaces)", r.Prefix)
	}
	if len(r.UpstreamURLs) == 0 {
		return fmt.Errorf("route %q needs at least one upstream URL (--upstream)", r.Name)
	}
	for _, u := range r.UpstreamURLs {
		if err := checkHTTPURL("upstream URL", u); err != nil {
			return err
		}
	}
	if r.CredentialRef == "" {
		r.CredentialRef = "none"
	}
	if err := CheckCredentialRef(r.CredentialRef); err != nil {
		return err
	}
	if r.Provider == "" {
		r.Provider = "openai"
	}
	switch r.Provider {
	case "openai", "anthropic", "generic":
	default:
		return fmt.Errorf("invalid provider %q: want openai, anthropic or generic", r.Provider)
	}
	if r.CredentialHeader == "" {
		r.CredentialHeader, r.CredentialFormat = "Authorization", "Bearer %s"
		if r.Provider == "anthropic" {
			r.CredentialHeader, r.CredentialFormat = "x-api-key", "%s"
		}
	}
	if !headerNameRE.MatchString(r.CredentialHeader) {
		return fmt.Errorf("invalid credential header %q", r.CredentialHeader)
	}
	if r.CredentialFormat == "" {
		r.CredentialFormat = "%s"
	}
	if strings.Count(r.CredentialFormat, "%s") != 1 || strings.Count(r.CredentialFormat, "%") != 1 {
		return fmt.Errorf("invalid credential format %q: want exactly one %%s, e.g. \"Bearer %%s\"", r.CredentialFormat)
	}
	if r.Pricing == "" {
		r.Pricing = "tokens"
	}
	if r.PricePerRequest < 0 {
		return fmt.Errorf("the price per request must not be negative")
	}
	switch r.Pricing {
	case "tokens":
	case "per_request":
		if r.PricePerRequest == 0 {
			return fmt.Errorf("route %q prices per request: give --price", r.Name)
		}
	case "header":
		if !headerNameRE.MatchString(r.PriceHeader) {
			return fmt.Errorf("route %q prices from a response header: give a valid --price-header, not %q", r.Name, r.PriceHeader)
		}
	default:
		return fmt.Errorf("invalid pricing mode %q: want tokens, per_request or header", r.Pricing)
	}
	if r.FailOpen && r.Strict {
		return fmt.Errorf("route %q cannot be both strict and fail-open", r.Name)
	}
	return nil
}

// SetRoute creates the route or replaces the one of the same name.
func SetRoute(ctx context.Context, q Execer, r RouteSpec) (RouteRow, error) {
	if err := r.normalise(); err != nil {
		return RouteRow{}, err
	}
	var id pgtype.UUID
	err := q.QueryRow(ctx, `INSERT INTO routes (name, prefix, upstream_urls, credential_ref, credential_header,
			credential_format, provider, pricing_mode, price_per_request_micros, price_header, strip_prefix,
			replay_required, strict, fail_open, allow_target_url)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (name) DO UPDATE SET prefix = EXCLUDED.prefix, upstream_urls = EXCLUDED.upstream_urls,
			credential_ref = EXCLUDED.credential_ref, credential_header = EXCLUDED.credential_header,
			credential_format = EXCLUDED.credential_format, provider = EXCLUDED.provider,
			pricing_mode = EXCLUDED.pricing_mode, price_per_request_micros = EXCLUDED.price_per_request_micros,
			price_header = EXCLUDED.price_header, strip_prefix = EXCLUDED.strip_prefix,
			replay_required = EXCLUDED.replay_required, strict = EXCLUDED.strict,
			fail_open = EXCLUDED.fail_open, allow_target_url = EXCLUDED.allow_target_url, updated_at = now()
		RETURNING id`,
		r.Name, r.Prefix, r.UpstreamURLs, r.CredentialRef, r.CredentialHeader, r.CredentialFormat, r.Provider,
		r.Pricing, r.PricePerRequest, r.PriceHeader, r.StripPrefix, r.ReplayRequired, r.Strict, r.FailOpen,
		r.AllowTargetURL).Scan(&id)
	if err != nil {
		if pe := pgErr(err); pe != nil && pe.Code == "23505" && pe.ConstraintName == "routes_prefix_key" {
			return RouteRow{}, fmt.Errorf("prefix %q is already used by another route", r.Prefix)
		}
		return RouteRow{}, dbError(fmt.Sprintf("set route %q", r.Name), err)
	}
	return scanRouteRow(q.QueryRow(ctx, routeSelect+` WHERE id = $1`, id))
}

const routeSelect = `SELECT id, name, prefix, upstream_urls, credential_ref, credential_header, credential_format,
	provider, pricing_mode, price_per_request_micros, price_header, strip_prefix, replay_required, strict,
	fail_open, allow_target_url, updated_at FROM routes`

func scanRouteRow(row pgx.Row) (RouteRow, error) {
	var r RouteRow
	var id pgtype.UUID
	err := row.Scan(&id, &r.Name, &r.Prefix, &r.UpstreamURLs, &r.CredentialRef, &r.CredentialHeader,
		&r.CredentialFormat, &r.Provider, &r.Pricing, &r.PricePerRequest, &r.PriceHeader, &r.StripPrefix,
		&r.ReplayRequired, &r.Strict, &r.FailOpen, &r.AllowTargetURL, &r.UpdatedAt)
	r.ID = uuidText(id)
	return r, err
}

// ListRoutes returns every route ordered by name.
func ListRoutes(ctx context.Context, q Querier) ([]RouteRow, error) {
	rows, err := q.Query(ctx, routeSelect+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("cannot list routes: %w", err)
	}
	return collect(rows, scanRouteRow, "list routes")
}
