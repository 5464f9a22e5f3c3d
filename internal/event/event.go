// Package event is the versioned wire format of Caracal's Kafka records: one
// encoder used by the gateway (allocation-free, into pooled buffers) and one
// decoder used by every consumer. The schema is docs/events.md and
// docs/event.schema.json.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Version is the schema version written by this encoder.
const Version = 1

// MaxAncestors bounds the delegation depth carried in an event (agents.depth).
const MaxAncestors = 7

// Kind says what a metering event records.
type Kind uint8

const (
	// KindUsage is a completed request priced from its response.
	KindUsage Kind = iota + 1
	// KindIncomplete is a strict-mode intent that never completed, charged at
	// its reserved estimate.
	KindIncomplete
)

var kindNames = [...]string{KindUsage: "usage", KindIncomplete: "incomplete"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// Pricing says how the cost was found.
type Pricing uint8

const (
	PricingTokens Pricing = iota + 1
	PricingPerRequest
	PricingHeader
	PricingEstimate
)

var pricingNames = [...]string{PricingTokens: "tokens", PricingPerRequest: "per_request", PricingHeader: "header", PricingEstimate: "estimate"}

func (p Pricing) String() string {
	if int(p) < len(pricingNames) && pricingNames[p] != "" {
		return pricingNames[p]
	}
	return "unknown"
}

// Metering is one request's record on caracal.metering.events, keyed by the
// agent id. Money is integer micro-units of Currency.
type Metering struct {
	ID         ID
	TimeUnixUs int64
	Kind       Kind
	Agent      UUID
	Root       UUID
	// Ancestors are the agent's parent, grandparent, ... up to the root.
	Ancestors    [MaxAncestors]UUID
	NumAncestors int
	Route        []byte
	Model        []byte
	RequestID    []byte
	Gateway      []byte
	InputTokens  int64
	OutputTokens int64
	CostMicros   int64
	// ReservedMicros is what the gateway took from its lease for the request.
	ReservedMicros int64
	Currency       [3]byte
	Status         int
	LatencyUs      int64
	Pricing        Pricing
}

// Reset clears e for reuse, keeping the capacity of its byte slices.
func (e *Metering) Reset() {
	*e = Metering{Route: e.Route[:0], Model: e.Model[:0], RequestID: e.RequestID[:0], Gateway: e.Gateway[:0]}
}

// AppendJSON appends the JSON form of e to dst without allocating (once dst
// has room).
func (e *Metering) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = append(dst, `,"id":"`...)
	dst = e.ID.AppendText(dst)
	dst = append(dst, `","ts_us":`...)
	dst = strconv.AppendInt(dst, e.TimeUnixUs, 10)
	dst = append(dst, `,"kind":"`...)
	dst = append(dst, e.Kind.String()...)
	dst = append(dst, `","agent":"`...)
	dst = e.Agent.AppendText(dst)
	dst = append(dst, `","root":"`...)
	dst = e.Root.AppendText(dst)
	dst = append(dst, `","ancestors":[`...)
	for i := 0; i < e.NumAncestors; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = e.Ancestors[i].AppendText(dst)
		dst = append(dst, '"')
	}
	dst = append(dst, `],"route":`...)
	dst = AppendString(dst, e.Route)
	dst = append(dst, `,"model":`...)
	dst = AppendString(dst, e.Model)
	dst = append(dst, `,"request_id":`...)
	dst = AppendString(dst, e.RequestID)
	dst = append(dst, `,"gateway":`...)
	dst = AppendString(dst, e.Gateway)
	dst = append(dst, `,"input_tokens":`...)
	dst = strconv.AppendInt(dst, e.InputTokens, 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, e.OutputTokens, 10)
	dst = append(dst, `,"cost_micros":`...)
	dst = strconv.AppendInt(dst, e.CostMicros, 10)
	dst = append(dst, `,"reserved_micros":`...)
	dst = strconv.AppendInt(dst, e.ReservedMicros, 10)
	dst = append(dst, `,"currency":"`...)
	dst = append(dst, e.Currency[:]...)
	dst = append(dst, `","status":`...)
	dst = strconv.AppendInt(dst, int64(e.Status), 10)
	dst = append(dst, `,"latency_us":`...)
	dst = strconv.AppendInt(dst, e.LatencyUs, 10)
	dst = append(dst, `,"pricing":"`...)
	dst = append(dst, e.Pricing.String()...)
	return append(dst, `"}`...)
}

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
	Cost         *int64   `json:"cost_micros"`
	Reserved     int64    `json:"reserved_micros"`
	Currency     string   `json:"currency"`
	Status       int      `json:"status"`
	LatencyUs    int64    `json:"latency_us"`
	Pricing      string   `json:"pricing"`
}

// ErrInvalid wraps every decoding failure: such a record goes to the DLQ.
var ErrInvalid = errors.New("invalid metering event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// DecodeMetering parses and validates one record value into e.
func DecodeMetering(b []byte, e *Metering) error {
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

// AppendString appends s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8, without allocating.
func AppendString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
