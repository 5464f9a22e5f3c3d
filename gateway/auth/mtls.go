package auth

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// CertLookup maps a certificate attribute (a SAN URI, a SAN DNS name, or the
// lower-case hex SHA-256 fingerprint of the DER certificate) to an agent.
type CertLookup func(kind control.MTLSKind, value string) (event.UUID, bool)

// VerifyCert names the agent of a client certificate. The certificate must
// have been verified by the TLS stack against the configured CA (the server
// uses tls.RequireAndVerifyClientCert or VerifyClientCertIfGiven), so a
// presented but unverified certificate is refused. SAN URIs are tried first,
// then SAN DNS names, then the fingerprint. The result only depends on the
// connection, so callers may compute it once per connection.
func VerifyCert(cs *tls.ConnectionState, lookup CertLookup) (event.UUID, Reason) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return event.UUID{}, ReasonNoClientCert
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return event.UUID{}, ReasonUnknownCert
	}
	leaf := cs.VerifiedChains[0][0]
	for _, u := range leaf.URIs {
		if id, ok := lookup(control.SANURI, u.String()); ok {
			return id, ReasonOK
		}
	}
	for _, name := range leaf.DNSNames {
		if id, ok := lookup(control.SANDNS, name); ok {
			return id, ReasonOK
		}
	}
	if id, ok := lookup(control.FingerprintSHA256, Fingerprint(leaf.Raw)); ok {
		return id, ReasonOK
	}
	return event.UUID{}, ReasonUnknownCert
}

// Fingerprint returns the lower-case hex SHA-256 of a DER certificate, the
// form stored in control.MTLSIdentity.Value.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
