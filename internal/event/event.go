// Package event is the versioned wire format of Caracal's Kafka records: one
// encoder used by the gateway (allocation-free, into pooled buffers) and one
// decoder used by every consumer. The schema is docs/events.md and
// docs/event.schema.json.
package event

import (
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
	// InputTokens counts every input token, prompt-cache writes and reads
	// included; CacheWriteTokens and CacheReadTokens are those parts
	// (Anthropic's cache_creation_input_tokens and cache_read_input_tokens),
	// priced apart. They are written only when not zero.
	InputTokens      int64
	OutputTokens     int64
	CacheWriteTokens int64
	CacheReadTokens  int64
	CostMicros       int64
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
	if e.CacheWriteTokens != 0 {
		dst = append(dst, `,"cache_write_tokens":`...)
		dst = strconv.AppendInt(dst, e.CacheWriteTokens, 10)
	}
	if e.CacheReadTokens != 0 {
		dst = append(dst, `,"cache_read_tokens":`...)
		dst = strconv.AppendInt(dst, e.CacheReadTokens, 10)
	}
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

// ErrInvalid wraps every decoding failure: such a record goes to the DLQ.
var ErrInvalid = errors.New("invalid metering event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// DecodeMetering parses and validates one record value into e without
// allocating (once e's byte slices have room). Every decoding failure wraps
// ErrInvalid.
func DecodeMetering(b []byte, e *Metering) error {
	return decodeMetering(b, e)
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
