package auth

// Reason says why a credential was refused; ReasonOK means it was accepted.
type Reason uint8

const (
	ReasonOK Reason = iota
	ReasonMissing
	ReasonMalformed
	ReasonUnknownKey
	ReasonRevoked
	ReasonExpired
	ReasonBadSignature
	ReasonAlgNotAllowed
	ReasonExpiredToken
	ReasonNotYetValid
	ReasonWrongAudience
	ReasonWrongIssuer
	ReasonUnknownKid
	ReasonMissingClaim
	ReasonKeyUnavailable
	ReasonNoClientCert
	ReasonUnknownCert
	reasonCount
)

var reasonNames = [reasonCount]string{
	ReasonOK:             "ok",
	ReasonMissing:        "missing_credentials",
	ReasonMalformed:      "malformed_credentials",
	ReasonUnknownKey:     "unknown_key",
	ReasonRevoked:        "key_revoked",
	ReasonExpired:        "key_expired",
	ReasonBadSignature:   "bad_signature",
	ReasonAlgNotAllowed:  "alg_not_allowed",
	ReasonExpiredToken:   "token_expired",
	ReasonNotYetValid:    "token_not_yet_valid",
	ReasonWrongAudience:  "wrong_audience",
	ReasonWrongIssuer:    "wrong_issuer",
	ReasonUnknownKid:     "unknown_kid",
	ReasonMissingClaim:   "missing_claim",
	ReasonKeyUnavailable: "key_unavailable",
	ReasonNoClientCert:   "no_client_cert",
	ReasonUnknownCert:    "unknown_cert",
}

// String returns the stable snake_case name used in error bodies and events.
func (r Reason) String() string {
	if r < reasonCount {
		return reasonNames[r]
	}
	return "unknown_reason"
}
