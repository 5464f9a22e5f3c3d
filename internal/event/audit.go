package event

import (
	"strconv"
)

// Audit is one record on caracal.policy.decisions (a denial and its reason)
// or caracal.audit.events (authentication failures, administrative events).
// It never carries a secret: at most the visible prefix of a key.
type Audit struct {
	ID         ID
	TimeUnixUs int64
	// Type is "decision" or "auth_failure" (or another audit type).
	Type      []byte
	Agent     UUID // zero when unknown
	Route     []byte
	Reason    []byte
	Status    int
	ClientIP  []byte
	KeyPrefix []byte
	RequestID []byte
	Gateway   []byte
}

// Reset clears a for reuse.
func (a *Audit) Reset() {
	*a = Audit{Type: a.Type[:0], Route: a.Route[:0], Reason: a.Reason[:0], ClientIP: a.ClientIP[:0],
		KeyPrefix: a.KeyPrefix[:0], RequestID: a.RequestID[:0], Gateway: a.Gateway[:0]}
}

// AppendJSON appends the JSON form of a without allocating.
func (a *Audit) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = append(dst, `,"id":"`...)
	dst = a.ID.AppendText(dst)
	dst = append(dst, `","ts_us":`...)
	dst = strconv.AppendInt(dst, a.TimeUnixUs, 10)
	dst = append(dst, `,"type":`...)
	dst = AppendString(dst, a.Type)
	dst = append(dst, `,"agent":`...)
	if a.Agent.IsZero() {
		dst = append(dst, `null`...)
	} else {
		dst = append(dst, '"')
		dst = a.Agent.AppendText(dst)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"route":`...)
	dst = AppendString(dst, a.Route)
	dst = append(dst, `,"reason":`...)
	dst = AppendString(dst, a.Reason)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(a.Status), 10)
	dst = append(dst, `,"client_ip":`...)
	dst = AppendString(dst, a.ClientIP)
	dst = append(dst, `,"key_prefix":`...)
	dst = AppendString(dst, a.KeyPrefix)
	dst = append(dst, `,"request_id":`...)
	dst = AppendString(dst, a.RequestID)
	dst = append(dst, `,"gateway":`...)
	dst = AppendString(dst, a.Gateway)
	return append(dst, '}')
}

// DecodeAudit parses and validates one audit or decision record into a
// without allocating (once a's byte slices have room). Every decoding failure
// wraps ErrInvalid.
func DecodeAudit(b []byte, a *Audit) error {
	return decodeAudit(b, a)
}
