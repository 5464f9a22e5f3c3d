package event

import (
	"encoding/json"
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

type auditJSON struct {
	V         *int    `json:"v"`
	ID        string  `json:"id"`
	TsUs      int64   `json:"ts_us"`
	Type      string  `json:"type"`
	Agent     *string `json:"agent"`
	Route     string  `json:"route"`
	Reason    string  `json:"reason"`
	Status    int     `json:"status"`
	ClientIP  string  `json:"client_ip"`
	KeyPrefix string  `json:"key_prefix"`
	RequestID string  `json:"request_id"`
	Gateway   string  `json:"gateway"`
}

// DecodeAudit parses and validates one audit or decision record into a.
func DecodeAudit(b []byte, a *Audit) error {
	var j auditJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return invalid("%v", err)
	}
	if j.V == nil || *j.V != Version {
		return invalid("unsupported schema version")
	}
	a.Reset()
	var err error
	if a.ID, err = ParseID([]byte(j.ID)); err != nil {
		return invalid("%v", err)
	}
	if j.TsUs <= 0 {
		return invalid("ts_us must be positive")
	}
	if j.Type == "" {
		return invalid("type is empty")
	}
	if j.Agent != nil {
		if a.Agent, err = ParseUUID([]byte(*j.Agent)); err != nil {
			return invalid("agent: %v", err)
		}
	}
	if j.Status != 0 && (j.Status < 100 || j.Status > 599) {
		return invalid("status %d out of range", j.Status)
	}
	a.TimeUnixUs, a.Status = j.TsUs, j.Status
	a.Type = append(a.Type, j.Type...)
	a.Route = append(a.Route, j.Route...)
	a.Reason = append(a.Reason, j.Reason...)
	a.ClientIP = append(a.ClientIP, j.ClientIP...)
	a.KeyPrefix = append(a.KeyPrefix, j.KeyPrefix...)
	a.RequestID = append(a.RequestID, j.RequestID...)
	a.Gateway = append(a.Gateway, j.Gateway...)
	return nil
}
