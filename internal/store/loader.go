package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// The loaders read control data for the gateway's cache, one query per call,
// and return the plain types of package control.

// agentLoad selects one agent (the start of the recursive walk is filled in
// by the caller) with its ancestors parent→root, its active policies and
// its allow-lists.
const agentLoad = `WITH RECURSIVE anc AS (
		SELECT id, parent_id, 0 AS n FROM agents WHERE %s
		UNION ALL
		SELECT p.id, p.parent_id, anc.n + 1 FROM agents p JOIN anc ON p.id = anc.parent_id WHERE anc.n < 16
	)
	SELECT a.id, a.name, a.parent_id, a.root_id, a.status = 'active', a.rate_limit_rps, a.rate_limit_burst,
		a.replay_required,
		ARRAY(SELECT id::text FROM anc WHERE n > 0 ORDER BY n),
		COALESCE((SELECT json_agg(json_build_object('id', p.id, 'limit', p.limit_micros, 'currency', p.currency,
			'window', p.window_size, 'rolling', p.window_kind = 'rolling', 'version', p.version)
			ORDER BY p.window_size, p.window_kind) FROM policies p WHERE p.agent_id = a.id AND p.active), '[]'),
		ARRAY(SELECT pattern FROM allow_lists WHERE agent_id = a.id AND kind = 'route' ORDER BY pattern),
		ARRAY(SELECT pattern FROM allow_lists WHERE agent_id = a.id AND kind = 'model' ORDER BY pattern),
		ARRAY(SELECT pattern FROM allow_lists WHERE agent_id = a.id AND kind = 'target' ORDER BY pattern)
	FROM agents a WHERE a.id = (SELECT id FROM anc WHERE n = 0)`

var (
	agentByID   = fmt.Sprintf(agentLoad, "id = $1")
	agentByName = fmt.Sprintf(agentLoad, "name = $1")
)

type policyJSON struct {
	ID       string `json:"id"`
	Limit    int64  `json:"limit"`
	Currency string `json:"currency"`
	Window   string `json:"window"`
	Rolling  bool   `json:"rolling"`
	Version  int    `json:"version"`
}

// LoadAgent returns the agent with this id; an unknown id is an error
// wrapping ErrNotFound.
func LoadAgent(ctx context.Context, q Querier, id event.UUID) (*control.Agent, error) {
	return loadAgent(ctx, q, agentByID, pgUUID(id), id.String())
}

// LoadAgentByName returns the agent with this name; an unknown name is an
// error wrapping ErrNotFound.
func LoadAgentByName(ctx context.Context, q Querier, name string) (*control.Agent, error) {
	return loadAgent(ctx, q, agentByName, name, name)
}

func loadAgent(ctx context.Context, q Querier, sql string, arg any, ref string) (*control.Agent, error) {
	var a control.Agent
	var id, parent, root pgtype.UUID
	var ancestors []string
	var policies []byte
	err := q.QueryRow(ctx, sql, arg).Scan(&id, &a.Name, &parent, &root, &a.Active, &a.RateLimitRPS,
		&a.RateLimitBurst, &a.ReplayRequired, &ancestors, &policies, &a.AllowRoutes, &a.AllowModels, &a.AllowTargets)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("agent %q %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load agent %q: %w", ref, err)
	}
	a.ID, a.Root = event.UUID(id.Bytes), event.UUID(root.Bytes)
	if parent.Valid {
		a.Parent = event.UUID(parent.Bytes)
	}
	for _, s := range ancestors {
		u, err := event.ParseUUID([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("cannot load agent %q: ancestor id %q: %w", ref, s, err)
		}
		a.Ancestors = append(a.Ancestors, u)
	}
	var ps []policyJSON
	if err := json.Unmarshal(policies, &ps); err != nil {
		return nil, fmt.Errorf("cannot load the policies of agent %q: %w", ref, err)
	}
	for _, p := range ps {
		cp, err := p.control()
		if err != nil {
			return nil, fmt.Errorf("cannot load the policies of agent %q: %w", ref, err)
		}
		a.Policies = append(a.Policies, cp)
	}
	return &a, nil
}

func (p policyJSON) control() (control.Policy, error) {
	id, err := event.ParseUUID([]byte(p.ID))
	if err != nil {
		return control.Policy{}, err
	}
	w, ok := control.ParseWindow(p.Window)
	if !ok || len(p.Currency) != 3 {
		return control.Policy{}, fmt.Errorf("policy %s: bad window %q or currency %q", p.ID, p.Window, p.Currency)
	}
	cp := control.Policy{ID: id, LimitMicros: p.Limit, Window: w, Rolling: p.Rolling, Version: p.Version}
	copy(cp.Currency[:], p.Currency)
	return cp, nil
}

// LoadAPIKey returns the stored key with this prefix.
func LoadAPIKey(ctx context.Context, q Querier, prefix string) (control.APIKey, bool, error) {
	var k control.APIKey
	var hash []byte
	var agent pgtype.UUID
	var exp pgtype.Timestamptz
	err := q.QueryRow(ctx, `SELECT prefix, hash, agent_id, expires_at, revoked_at IS NOT NULL FROM api_keys WHERE prefix = $1`,
		prefix).Scan(&k.Prefix, &hash, &agent, &exp, &k.Revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, false, nil
	}
	if err != nil {
		return k, false, fmt.Errorf("cannot load key %q: %w", prefix, err)
	}
	if len(hash) != len(k.Hash) {
		return k, false, fmt.Errorf("cannot load key %q: hash of %d bytes", prefix, len(hash))
	}
	copy(k.Hash[:], hash)
	k.AgentID = event.UUID(agent.Bytes)
	if exp.Valid {
		k.ExpiresAt = exp.Time
	}
	return k, true, nil
}

var (
	providers = map[string]control.Provider{"openai": control.OpenAI, "anthropic": control.Anthropic, "generic": control.Generic}
	pricings  = map[string]control.PricingMode{"tokens": control.PriceTokens, "per_request": control.PricePerRequest, "header": control.PriceHeader}
	mtlsKinds = map[string]control.MTLSKind{"san_uri": control.SANURI, "san_dns": control.SANDNS, "fingerprint_sha256": control.FingerprintSHA256}
)

// LoadRoutes returns every route ordered by name.
func LoadRoutes(ctx context.Context, q Querier) ([]control.Route, error) {
	rows, err := q.Query(ctx, routeSelect+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("cannot load routes: %w", err)
	}
	return collect(rows, func(row pgx.Row) (control.Route, error) {
		r, err := scanRouteRow(row)
		if err != nil {
			return control.Route{}, err
		}
		id, _ := event.ParseUUID([]byte(r.ID))
		c := control.Route{ID: id, Name: r.Name, Prefix: r.Prefix, UpstreamURLs: r.UpstreamURLs,
			CredentialRef: r.CredentialRef, CredentialHeader: r.CredentialHeader, CredentialFormat: r.CredentialFormat,
			Provider: providers[r.Provider], Pricing: pricings[r.Pricing], PricePerRequest: r.PricePerRequest,
			PriceHeader: r.PriceHeader, StripPrefix: r.StripPrefix, ReplayRequired: r.ReplayRequired,
			Strict: r.Strict, FailOpen: r.FailOpen, AllowTargetURL: r.AllowTargetURL}
		if c.Provider == 0 || c.Pricing == 0 {
			return c, fmt.Errorf("route %q: unknown provider %q or pricing %q", r.Name, r.Provider, r.Pricing)
		}
		return c, nil
	}, "load routes")
}

// LoadPrices returns one Price per (resource, model), folding its unit rows.
func LoadPrices(ctx context.Context, q Querier) ([]control.Price, error) {
	rows, err := q.Query(ctx, `SELECT resource, model, unit, price_micros, currency FROM pricebook ORDER BY resource, model, unit`)
	if err != nil {
		return nil, fmt.Errorf("cannot load the pricebook: %w", err)
	}
	defer rows.Close()
	out := []control.Price{}
	for rows.Next() {
		var res, model, unit, cur string
		var v int64
		if err := rows.Scan(&res, &model, &unit, &v, &cur); err != nil {
			return nil, fmt.Errorf("cannot load the pricebook: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].Resource != res || out[n-1].Model != model {
			p := control.Price{Resource: res, Model: model}
			copy(p.Currency[:], cur)
			out = append(out, p)
		}
		p := &out[len(out)-1]
		if string(p.Currency[:]) != cur {
			return nil, fmt.Errorf("cannot load the pricebook: %s/%s is priced in both %s and %s", res, model, p.Currency[:], cur)
		}
		switch unit {
		case "input_mtok":
			p.InputPerMTok = v
		case "output_mtok":
			p.OutputPerMTok = v
		case "cache_write_mtok":
			p.CacheWritePerMTok, p.HasCacheWrite = v, true
		case "cache_read_mtok":
			p.CacheReadPerMTok, p.HasCacheRead = v, true
		case "request":
			p.PerRequest = v
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load the pricebook: %w", err)
	}
	return out, nil
}

// LoadJWTIssuers returns every trusted issuer.
func LoadJWTIssuers(ctx context.Context, q Querier) ([]control.JWTIssuer, error) {
	rows, err := q.Query(ctx, issuerSelect+` ORDER BY issuer`)
	if err != nil {
		return nil, fmt.Errorf("cannot load issuers: %w", err)
	}
	return collect(rows, func(row pgx.Row) (control.JWTIssuer, error) {
		r, err := scanIssuerRow(row)
		return control.JWTIssuer{Issuer: r.Issuer, Algorithms: r.Algorithms, Audiences: r.Audiences,
			JWKSURL: r.JWKSURL, PublicKeysPEM: r.PublicKeysPEM, HMACSecretRef: r.HMACSecretRef,
			AgentClaim: r.AgentClaim, Leeway: r.Leeway}, err
	}, "load issuers")
}

// LoadMTLSIdentities returns every certificate-to-agent mapping.
func LoadMTLSIdentities(ctx context.Context, q Querier) ([]control.MTLSIdentity, error) {
	rows, err := q.Query(ctx, `SELECT agent_id, kind, value FROM mtls_identities ORDER BY kind, value`)
	if err != nil {
		return nil, fmt.Errorf("cannot load mTLS identities: %w", err)
	}
	return collect(rows, func(row pgx.Row) (control.MTLSIdentity, error) {
		var m control.MTLSIdentity
		var id pgtype.UUID
		var kind string
		if err := row.Scan(&id, &kind, &m.Value); err != nil {
			return m, err
		}
		m.AgentID, m.Kind = event.UUID(id.Bytes), mtlsKinds[kind]
		if m.Kind == 0 {
			return m, fmt.Errorf("unknown identity kind %q", kind)
		}
		return m, nil
	}, "load mTLS identities")
}
