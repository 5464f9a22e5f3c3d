package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/store"
)

func init() {
	extraCommands = append(extraCommands,
		adminCommand(newJWTIssuerCmd),
		adminCommand(newMTLSIdentityCmd))
}

var issuerHeader = []string{"ISSUER", "ALGORITHMS", "AUDIENCES", "KEYS", "AGENT CLAIM", "LEEWAY"}

func issuerCells(r store.JWTIssuerRow) []string {
	keys := "jwks " + r.JWKSURL
	switch {
	case r.PublicKeysPEM != "":
		keys = "pem"
	case r.HMACSecretRef != "":
		keys = "hmac " + r.HMACSecretRef
	}
	return []string{r.Issuer, cellList(r.Algorithms), cellList(r.Audiences), keys, r.AgentClaim, r.Leeway.String()}
}

func newJWTIssuerCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "jwt-issuer", Short: "Trust JWT issuers with pinned algorithms"}
	var j store.JWTIssuerSpec
	var keyFile string
	add := &cobra.Command{
		Use:   "add --issuer URL --alg RS256 --audience A (--jwks-url U | --public-key-file F | --hmac-secret-ref env:NAME)",
		Short: "Trust an issuer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j.PublicKeysPEM = ""
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("cannot read the public key file: %w", err)
				}
				j.PublicKeysPEM = string(b)
			}
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			r, err := store.AddJWTIssuer(cmd.Context(), db, j)
			if err != nil {
				return err
			}
			return a.print(r, issuerHeader, [][]string{issuerCells(r)})
		},
	}
	f := add.Flags()
	f.StringVar(&j.Issuer, "issuer", "", "the iss claim of the tokens")
	f.StringSliceVar(&j.Algorithms, "alg", nil, "accepted algorithm: RS256, ES256, EdDSA or HS256 (repeatable)")
	f.StringSliceVar(&j.Audiences, "audience", nil, "accepted aud value (repeatable)")
	f.StringVar(&j.JWKSURL, "jwks-url", "", "URL of the issuer's JWKS")
	f.StringVar(&keyFile, "public-key-file", "", "PEM file with the issuer's public keys")
	f.StringVar(&j.HMACSecretRef, "hmac-secret-ref", "", "where the HS256 secret comes from: env:NAME or file:/path")
	f.StringVar(&j.AgentClaim, "agent-claim", "sub", "claim naming the agent (its name or id)")
	f.DurationVar(&j.Leeway, "leeway", 60*time.Second, "clock leeway for exp and nbf (at most 10m)")
	for _, n := range []string{"issuer", "alg", "audience"} {
		_ = add.MarkFlagRequired(n)
	}
	add.MarkFlagsMutuallyExclusive("jwks-url", "public-key-file", "hmac-secret-ref")
	add.MarkFlagsOneRequired("jwks-url", "public-key-file", "hmac-secret-ref")
	list := &cobra.Command{
		Use:   "list",
		Short: "List trusted issuers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListJWTIssuers(cmd.Context(), db)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, issuerCells(r))
			}
			return a.print(rs, issuerHeader, rows)
		},
	}
	c.AddCommand(add, list)
	return c
}

var mtlsHeader = []string{"AGENT", "KIND", "VALUE", "CREATED"}

func mtlsCells(r store.MTLSRow) []string {
	return []string{r.Agent, r.Kind, r.Value, cellTime(r.CreatedAt)}
}

func newMTLSIdentityCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "mtls-identity", Short: "Map verified client certificates to agents"}
	var agent, kind, value string
	add := &cobra.Command{
		Use:   "add --agent A --kind san_uri|san_dns|fingerprint_sha256 --value V",
		Short: "Map a certificate SAN or SHA-256 fingerprint to an agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			r, err := store.AddMTLSIdentity(cmd.Context(), db, agent, kind, value)
			if err != nil {
				return err
			}
			return a.print(r, mtlsHeader, [][]string{mtlsCells(r)})
		},
	}
	f := add.Flags()
	f.StringVar(&agent, "agent", "", "agent (name or id)")
	f.StringVar(&kind, "kind", "", "san_uri, san_dns or fingerprint_sha256")
	f.StringVar(&value, "value", "", "the URI, DNS name, or hex fingerprint (colons allowed)")
	for _, n := range []string{"agent", "kind", "value"} {
		_ = add.MarkFlagRequired(n)
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List certificate mappings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListMTLSIdentities(cmd.Context(), db)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, mtlsCells(r))
			}
			return a.print(rs, mtlsHeader, rows)
		},
	}
	c.AddCommand(add, list)
	return c
}
