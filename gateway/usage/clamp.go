package usage

import (
	"strconv"

	"github.com/caracal-gw/caracal/internal/control"
)

var (
	anthropicMaxNames = []string{"max_tokens"}
	openAIMaxNames    = []string{"max_tokens", "max_completion_tokens", "max_output_tokens"}
	streamOptionNames = []string{"stream_options"}
	includeUsageNames = []string{"include_usage"}
)

// ClampMaxTokens appends to dst the body with its output token limit set to
// maxOut: every max-tokens member of the dialect is rewritten (duplicates
// included); when there is none, one is inserted first in the object —
// max_tokens for Anthropic and generic upstreams, max_output_tokens for an
// OpenAI responses body, max_completion_tokens for OpenAI chat (the only one
// the reasoning models accept). ok is false, and dst returned unchanged,
// when the body is not a well-formed JSON object.
func ClampMaxTokens(dst, body []byte, p control.Provider, maxOut int64) ([]byte, bool) {
	names, insert := openAIMaxNames, "max_completion_tokens"
	switch {
	case p == control.Anthropic:
		names, insert = anthropicMaxNames, "max_tokens"
	case isResponses(body):
		insert = "max_output_tokens"
	case p != control.OpenAI:
		insert = "max_tokens"
	}
	maxOut = max(maxOut, 0)
	return setMembers(dst, body, names, insert, func(dst, _ []byte) []byte {
		return strconv.AppendInt(dst, maxOut, 10)
	})
}

func isResponses(body []byte) bool {
	return InspectRequest(control.OpenAI, body).API == APIResponses
}

// EnsureIncludeUsage appends to dst the body with stream_options.include_usage
// set to true, so that an OpenAI chat stream ends with a usage chunk the
// gateway can meter. Other stream options are kept. ok is false, and dst
// returned unchanged, when the body is not a well-formed JSON object.
func EnsureIncludeUsage(dst, body []byte) ([]byte, bool) {
	return setMembers(dst, body, streamOptionNames, "stream_options", putStreamOptions)
}

func putStreamOptions(dst, old []byte) []byte {
	if old != nil {
		if d, ok := setMembers(dst, old, includeUsageNames, "include_usage", putTrue); ok {
			return d
		}
	}
	return append(dst, `{"include_usage":true}`...)
}

func putTrue(dst, _ []byte) []byte {
	return append(dst, "true"...)
}

// setMembers appends obj to dst with the value of every member named in
// names replaced by what put appends (given the old value); when no such
// member exists, insert is added as the first member with put(dst, nil).
func setMembers(dst, obj []byte, names []string, insert string, put func(dst, old []byte) []byte) ([]byte, bool) {
	o, ok := openObject(obj)
	if !ok {
		return dst, false
	}
	start, last, found := len(dst), 0, false
	for {
		key, val, vs, ok := o.next()
		if !ok {
			break
		}
		if !keyIn(key, names) {
			continue
		}
		dst = append(dst, obj[last:vs]...)
		dst = put(dst, val)
		last, found = vs+len(val), true
	}
	if !o.closed {
		return dst[:start], false
	}
	if found {
		return append(dst, obj[last:]...), true
	}
	brace := o.brace() + 1
	dst = append(dst, obj[:brace]...)
	dst = append(dst, '"')
	dst = append(dst, insert...)
	dst = append(dst, '"', ':')
	dst = put(dst, nil)
	if o.members > 0 {
		dst = append(dst, ',')
	}
	return append(dst, obj[brace:]...), true
}

func keyIn(key []byte, names []string) bool {
	for _, n := range names {
		if keyIs(key, n) {
			return true
		}
	}
	return false
}
