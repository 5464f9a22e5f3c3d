package event

import (
	"encoding/json"
	"math"
	"math/big"
)

// meteringJSON is the decoding shape; DisallowUnknownFields is not used so
// that a newer minor writer may add fields, but every known field is checked.
type meteringJSON struct {
	V            *int     `json:"v"`
	ID           string   `json:"id"`
	TsUs         int64    `json:"ts_us"`
	Kind         string   `json:"kind"`
	Agent        string   `json:"agent"`
	Root         string   `json:"root"`
	Ancestors    []string `json:"ancestors"`
	Route        string   `json:"route"`
	Model        string   `json:"model"`
	RequestID    string   `json:"request_id"`
	Gateway      string   `json:"gateway"`
	InputTokens  int64    `json:"input_tokens"`
	OutputTokens int64    `json:"output_tokens"`
	CacheWrite   int64    `json:"cache_write_tokens"`
	CacheRead    int64    `json:"cache_read_tokens"`
	Cost         *int64   `json:"cost_micros"`
	Reserved     int64    `json:"reserved_micros"`
	Currency     string   `json:"currency"`
	Status       int      `json:"status"`
	LatencyUs    int64    `json:"latency_us"`
	Pricing      string   `json:"pricing"`
}

// decodeMeteringJSON is the encoding/json decoder DecodeMetering replaced,
// kept as the reference of the differential fuzz test.
func decodeMeteringJSON(b []byte, e *Metering) error {
	var j meteringJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return invalid("%v", err)
	}
	if j.V == nil || *j.V != Version {
		return invalid("unsupported schema version")
	}
	e.Reset()
	var err error
	if e.ID, err = ParseID([]byte(j.ID)); err != nil {
		return invalid("%v", err)
	}
	if j.TsUs <= 0 {
		return invalid("ts_us must be positive")
	}
	e.TimeUnixUs = j.TsUs
	switch j.Kind {
	case "usage":
		e.Kind = KindUsage
	case "incomplete":
		e.Kind = KindIncomplete
	default:
		return invalid("unknown kind %q", j.Kind)
	}
	if e.Agent, err = ParseUUID([]byte(j.Agent)); err != nil {
		return invalid("agent: %v", err)
	}
	if e.Root, err = ParseUUID([]byte(j.Root)); err != nil {
		return invalid("root: %v", err)
	}
	if len(j.Ancestors) > MaxAncestors {
		return invalid("more than %d ancestors", MaxAncestors)
	}
	for i, a := range j.Ancestors {
		if e.Ancestors[i], err = ParseUUID([]byte(a)); err != nil {
			return invalid("ancestors[%d]: %v", i, err)
		}
	}
	e.NumAncestors = len(j.Ancestors)
	if (e.NumAncestors == 0) != (e.Root == e.Agent) || (e.NumAncestors > 0 && e.Ancestors[e.NumAncestors-1] != e.Root) {
		return invalid("root does not match the ancestors")
	}
	if j.Route == "" {
		return invalid("route is empty")
	}
	e.Route = append(e.Route, j.Route...)
	e.Model = append(e.Model, j.Model...)
	e.RequestID = append(e.RequestID, j.RequestID...)
	e.Gateway = append(e.Gateway, j.Gateway...)
	if j.InputTokens < 0 || j.OutputTokens < 0 || j.Reserved < 0 || j.LatencyUs < 0 {
		return invalid("negative token count, reservation or latency")
	}
	if j.Cost == nil || *j.Cost < 0 {
		return invalid("cost_micros missing or negative")
	}
	e.InputTokens, e.OutputTokens, e.CostMicros, e.ReservedMicros = j.InputTokens, j.OutputTokens, *j.Cost, j.Reserved
	// The parts may not exceed the total, unless the total is saturated.
	overTotal := new(big.Int).Add(big.NewInt(j.CacheWrite), big.NewInt(j.CacheRead)).Cmp(big.NewInt(j.InputTokens)) > 0
	if j.CacheWrite < 0 || j.CacheRead < 0 || (overTotal && j.InputTokens != math.MaxInt64) {
		return invalid("cache_write_tokens and cache_read_tokens must be non-negative and within input_tokens")
	}
	e.CacheWriteTokens, e.CacheReadTokens = j.CacheWrite, j.CacheRead
	if len(j.Currency) != 3 || !isUpper(j.Currency) {
		return invalid("currency must be three capital letters")
	}
	copy(e.Currency[:], j.Currency)
	if j.Status < 100 || j.Status > 599 {
		return invalid("status %d out of range", j.Status)
	}
	e.Status, e.LatencyUs = j.Status, j.LatencyUs
	switch j.Pricing {
	case "tokens":
		e.Pricing = PricingTokens
	case "per_request":
		e.Pricing = PricingPerRequest
	case "header":
		e.Pricing = PricingHeader
	case "estimate":
		e.Pricing = PricingEstimate
	default:
		return invalid("unknown pricing %q", j.Pricing)
	}
	return nil
}

func isUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
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

// decodeAuditJSON is the encoding/json decoder DecodeAudit replaced, kept
// as the reference of the differential fuzz test.
func decodeAuditJSON(b []byte, a *Audit) error {
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
