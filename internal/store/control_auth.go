package store

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// JWTIssuerSpec is a trusted token issuer to add. Exactly one key source
// is set: JWKSURL, PublicKeysPEM or HMACSecretRef.
type JWTIssuerSpec struct {
	Issuer        string        `json:"issuer"`
	Algorithms    []string      `json:"algorithms"`
	Audiences     []string      `json:"audiences"`
	JWKSURL       string        `json:"jwks_url,omitempty"`
	PublicKeysPEM string        `json:"public_keys,omitempty"`
	HMACSecretRef string        `json:"hmac_secret_ref,omitempty"`
	AgentClaim    string        `json:"agent_claim"`
	Leeway        time.Duration `json:"-"`
}

// JWTIssuerRow is a stored issuer.
type JWTIssuerRow struct {
	ID string `json:"id"`
	JWTIssuerSpec
	LeewaySeconds int       `json:"leeway_seconds"`
	CreatedAt     time.Time `json:"created_at"`
}

// MaxJWTLeeway is the largest clock leeway the schema accepts.
const MaxJWTLeeway = 600 * time.Second

func (j *JWTIssuerSpec) normalise() error {
	if j.Issuer == "" || strings.TrimSpace(j.Issuer) != j.Issuer {
		return fmt.Errorf("invalid issuer %q: want the exact iss value of the tokens", j.Issuer)
	}
	if len(j.Algorithms) == 0 {
		return fmt.Errorf("issuer %q needs at least one algorithm (--alg RS256|ES256|EdDSA|HS256)", j.Issuer)
	}
	hmac, asym := false, false
	for _, a := range j.Algorithms {
		switch a {
		case "HS256":
			hmac = true
		case "RS256", "ES256", "EdDSA":
			asym = true
		default:
			return fmt.Errorf("invalid algorithm %q: want RS256, ES256, EdDSA or HS256", a)
		}
	}
	if len(j.Audiences) == 0 {
		return fmt.Errorf("issuer %q needs at least one audience (--audience)", j.Issuer)
	}
	for _, a := range j.Audiences {
		if a == "" {
			return fmt.Errorf("issuer %q: an audience must not be empty", j.Issuer)
		}
	}
	sources := 0
	for _, s := range []string{j.JWKSURL, j.PublicKeysPEM, j.HMACSecretRef} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return fmt.Errorf("issuer %q needs exactly one key source: a JWKS URL, a public key file or an HMAC secret reference", j.Issuer)
	}
	switch {
	case j.JWKSURL != "":
		if err := checkHTTPURL("JWKS URL", j.JWKSURL); err != nil {
			return err
		}
	case j.PublicKeysPEM != "":
		if err := checkPEM(j.PublicKeysPEM); err != nil {
			return err
		}
	default:
		if j.HMACSecretRef == "none" || CheckCredentialRef(j.HMACSecretRef) != nil {
			return fmt.Errorf("invalid HMAC secret reference %q: want env:NAME or file:/path (never the secret itself)", j.HMACSecretRef)
		}
	}
	if hmac && j.HMACSecretRef == "" {
		return fmt.Errorf("issuer %q: HS256 needs an HMAC secret reference (--hmac-secret-ref)", j.Issuer)
	}
	if asym && j.HMACSecretRef != "" {
		return fmt.Errorf("issuer %q: RS256, ES256 and EdDSA need public keys (--jwks-url or --public-key-file), not an HMAC secret", j.Issuer)
	}
	if j.AgentClaim == "" {
		j.AgentClaim = "sub"
	}
	if j.Leeway < 0 || j.Leeway > MaxJWTLeeway || j.Leeway%time.Second != 0 {
		return fmt.Errorf("invalid leeway %s: want whole seconds from 0s to %s", j.Leeway, MaxJWTLeeway)
	}
	return nil
}

func checkPEM(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "PUBLIC KEY" && b.Type != "CERTIFICATE" && b.Type != "RSA PUBLIC KEY" {
			return fmt.Errorf("public key file holds a %q block: want PUBLIC KEY or CERTIFICATE (never a private key)", b.Type)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("public key file holds no PEM block")
	}
	return nil
}

func nullText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

// AddJWTIssuer stores a trusted issuer.
func AddJWTIssuer(ctx context.Context, q Execer, j JWTIssuerSpec) (JWTIssuerRow, error) {
	if err := j.normalise(); err != nil {
		return JWTIssuerRow{}, err
	}
	var id pgtype.UUID
	err := q.QueryRow(ctx, `INSERT INTO jwt_issuers (issuer, algorithms, audiences, jwks_url, public_keys,
			hmac_secret_ref, agent_claim, leeway_seconds)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		j.Issuer, j.Algorithms, j.Audiences, nullText(j.JWKSURL), nullText(j.PublicKeysPEM),
		nullText(j.HMACSecretRef), j.AgentClaim, int(j.Leeway/time.Second)).Scan(&id)
	if isUnique(err) {
		return JWTIssuerRow{}, fmt.Errorf("issuer %q already exists", j.Issuer)
	}
	if err != nil {
		return JWTIssuerRow{}, dbError(fmt.Sprintf("add issuer %q", j.Issuer), err)
	}
	return scanIssuerRow(q.QueryRow(ctx, issuerSelect+` WHERE id = $1`, id))
}

const issuerSelect = `SELECT id, issuer, algorithms, audiences, COALESCE(jwks_url, ''), COALESCE(public_keys, ''),
	COALESCE(hmac_secret_ref, ''), agent_claim, leeway_seconds, created_at FROM jwt_issuers`

func scanIssuerRow(row pgx.Row) (JWTIssuerRow, error) {
	var r JWTIssuerRow
	var id pgtype.UUID
	var leeway int
	err := row.Scan(&id, &r.Issuer, &r.Algorithms, &r.Audiences, &r.JWKSURL, &r.PublicKeysPEM,
		&r.HMACSecretRef, &r.AgentClaim, &leeway, &r.CreatedAt)
	r.ID, r.Leeway, r.LeewaySeconds = uuidText(id), time.Duration(leeway)*time.Second, leeway
	return r, err
}

// ListJWTIssuers returns every issuer ordered by issuer.
func ListJWTIssuers(ctx context.Context, q Querier) ([]JWTIssuerRow, error) {
	rows, err := q.Query(ctx, issuerSelect+` ORDER BY issuer`)
	if err != nil {
		return nil, fmt.Errorf("cannot list issuers: %w", err)
	}
	return collect(rows, scanIssuerRow, "list issuers")
}

// MTLSRow is a stored certificate-to-agent mapping.
type MTLSRow struct {
	ID        string    `json:"id"`
	Agent     string    `json:"agent"`
	AgentID   string    `json:"agent_id"`
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	CreatedAt time.Time `json:"created_at"`
}

// NormaliseMTLSValue checks value for kind and returns its stored form: a
// fingerprint in lower-case hex without colons, a DNS name in lower case.
func NormaliseMTLSValue(kind, value string) (string, error) {
	switch kind {
	case "fingerprint_sha256":
		v := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(value), ":", ""))
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			return "", fmt.Errorf("invalid SHA-256 fingerprint %q: want 64 hex digits (colons allowed)", value)
		}
		return v, nil
	case "san_uri":
		u, err := url.Parse(value)
		if err != nil || u.Scheme == "" || value != strings.TrimSpace(value) {
			return "", fmt.Errorf("invalid SAN URI %q: want an absolute URI such as spiffe://example.org/agent", value)
		}
		return value, nil
	case "san_dns":
		v := strings.ToLower(strings.TrimSuffix(value, "."))
		if v == "" || strings.ContainsAny(v, " /:@\t") || len(v) > 253 {
			return "", fmt.Errorf("invalid SAN DNS name %q", value)
		}
		return v, nil
	}
	return "", fmt.Errorf("invalid identity kind %q: want san_uri, san_dns or fingerprint_sha256", kind)
}

// AddMTLSIdentity maps a certificate attribute to an agent.
func AddMTLSIdentity(ctx context.Context, q Execer, agent, kind, value string) (MTLSRow, error) {
	v, err := NormaliseMTLSValue(kind, value)
	if err != nil {
		return MTLSRow{}, err
	}
	id, err := agentID(ctx, q, agent)
	if err != nil {
		return MTLSRow{}, err
	}
	var rid pgtype.UUID
	err = q.QueryRow(ctx, `INSERT INTO mtls_identities (agent_id, kind, value) VALUES ($1, $2, $3) RETURNING id`,
		pgUUID(id), kind, v).Scan(&rid)
	if isUnique(err) {
		return MTLSRow{}, fmt.Errorf("%s %q is already mapped to an agent", kind, v)
	}
	if err != nil {
		return MTLSRow{}, dbError(fmt.Sprintf("add %s %q", kind, v), err)
	}
	return scanMTLSRow(q.QueryRow(ctx, mtlsSelect+` WHERE m.id = $1`, rid))
}

const mtlsSelect = `SELECT m.id, a.name, m.agent_id, m.kind, m.value, m.created_at
	FROM mtls_identities m JOIN agents a ON a.id = m.agent_id`

func scanMTLSRow(row pgx.Row) (MTLSRow, error) {
	var r MTLSRow
	var id, agent pgtype.UUID
	err := row.Scan(&id, &r.Agent, &agent, &r.Kind, &r.Value, &r.CreatedAt)
	r.ID, r.AgentID = uuidText(id), uuidText(agent)
	return r, err
}

// ListMTLSIdentities returns every mapping ordered by agent.
func ListMTLSIdentities(ctx context.Context, q Querier) ([]MTLSRow, error) {
	rows, err := q.Query(ctx, mtlsSelect+` ORDER BY a.name, m.kind, m.value`)
	if err != nil {
		return nil, fmt.Errorf("cannot list mTLS identities: %w", err)
	}
	return collect(rows, scanMTLSRow, "list mTLS identities")
}
