package usage

import (
	"unicode/utf8"

	"github.com/caracal-gw/caracal/internal/control"
)

// API is the request dialect found in a body.
type API uint8

const (
	APIUnknown   API = iota
	APIChat          // OpenAI chat completions: "messages"
	APIResponses     // OpenAI responses: "input"
	APIMessages      // Anthropic messages
)

// Request is what the gateway reads from a request body before forwarding.
type Request struct {
	// Model is the raw content of the "model" string, a sub-slice of the
	// body; nil when absent or not a string.
	Model []byte
	// ModelEscaped is set when Model contains a JSON escape or invalid
	// UTF-8: its raw bytes are then not the name the upstream sees, so the
	// proxy should refuse the request rather than price or allow-list it by
	// those bytes.
	ModelEscaped bool
	// MaxTokens is the output token limit the body asks for, or -1 when it
	// sets none. For OpenAI it is the largest of max_tokens,
	// max_completion_tokens and max_output_tokens present.
	MaxTokens int64
	// Stream is set by "stream": true.
	Stream bool
	// IncludeUsage is set by "stream_options": {"include_usage": true},
	// without which an OpenAI chat stream carries no usage.
	IncludeUsage bool
	// InputTokens is the input size estimate: see EstimateInputTokens.
	InputTokens int64
	// API is the dialect the body looks like.
	API API
	// Object is set when the body is a JSON object whose top-level members
	// were all read; when false, the fields above may be incomplete and the
	// proxy should not trust them (the upstream will reject such a body,
	// but a route that clamps should refuse it first).
	Object bool
}

// EstimateInputTokens is the input size rule: one token per 4 bytes of the
// whole body, rounded up. The whole body counts, not only "messages" or
// "input", because every top-level value (system, tools, instructions,
// response_format, ...) reaches the model, and counting a chosen subset
// would let a client hide input from the estimate. The JSON syntax around
// each message (at least ~25 bytes) stands in for the per-message overhead
// the tokenizers add (3-4 tokens). Text with many multi-byte characters
// tokenizes denser than 4 bytes a token; that shortfall is part of the
// documented overshoot and is settled from the real usage.
func EstimateInputTokens(bodyLen int) int64 {
	if bodyLen <= 0 {
		return 0
	}
	return (int64(bodyLen) + 3) / 4
}

// InspectRequest reads a request body of the given provider's dialect. It
// never fails: what it cannot find stays at its zero value (MaxTokens -1).
func InspectRequest(p control.Provider, body []byte) Request {
	r := Request{MaxTokens: -1, InputTokens: EstimateInputTokens(len(body))}
	o, ok := openObject(body)
	if !ok {
		return r
	}
	if p == control.Anthropic {
		r.API = APIMessages
	}
	for {
		key, val, _, ok := o.next()
		if !ok {
			break
		}
		r.member(p, key, val)
	}
	r.Object = o.closed
	return r
}

func (r *Request) member(p control.Provider, key, val []byte) {
	switch {
	case keyIs(key, "model"):
		r.Model, r.ModelEscaped = nil, false
		if s, ok := stringContent(val); ok {
			r.Model, r.ModelEscaped = s, hasBackslash(s) || !utf8.Valid(s)
		}
	case keyIs(key, "stream"):
		r.Stream = isTrue(val)
	case keyIs(key, "stream_options"):
		r.IncludeUsage = includeUsage(val)
	case keyIs(key, "max_tokens"):
		r.maxTokens(val)
	case p == control.Anthropic:
	case keyIs(key, "max_completion_tokens"):
		r.maxTokens(val)
	case keyIs(key, "max_output_tokens"):
		r.maxTokens(val)
		r.API = APIResponses
	case keyIs(key, "input"):
		r.API = APIResponses
	case keyIs(key, "messages"):
		if r.API == APIUnknown {
			r.API = APIChat
		}
	}
}

func (r *Request) maxTokens(val []byte) {
	if n, ok := parseCount(val); ok && n > r.MaxTokens {
		r.MaxTokens = n
	}
}

func includeUsage(val []byte) bool {
	o, _ := openObject(val)
	on := false
	for {
		key, v, _, ok := o.next()
		if !ok {
			return on
		}
		if keyIs(key, "include_usage") {
			on = isTrue(v)
		}
	}
}
