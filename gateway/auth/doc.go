// Package auth proves who an agent is: API keys (hashed, O(1) lookup,
// constant-time compare), JWTs (algorithms pinned per issuer, keys from PEM or
// JWKS; no embedded key is ever trusted) and mTLS client certificates
// (verified by the TLS stack, mapped by SAN URI, SAN DNS or fingerprint).
//
// Every failure is a Reason with a stable snake_case name, which the gateway
// uses as the error code of its 401 body and as the reason of audit events.
//
// The API-key path does not allocate, nor does a JWT seen before: verified
// tokens are cached (jwt_cache.go), so only a token's first verification
// decodes JSON and checks a signature. The mTLS path allocates a little
// (certificate names) and is not on the per-request hot path of keep-alive
// mTLS connections.
package auth
