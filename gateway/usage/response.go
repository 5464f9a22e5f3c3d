package usage

import "github.com/caracal-gw/caracal/internal/control"

// Usage is the token usage of one call. InputTokens is every input token:
// for Anthropic, input_tokens plus cache_creation_input_tokens plus
// cache_read_input_tokens (saturated at math.MaxInt64); OpenAI's
// prompt_tokens already include its cached tokens, which are not split out.
// CacheWriteTokens and CacheReadTokens are the parts of InputTokens that
// wrote to and read from Anthropic's prompt cache, so that Cost prices them
// at their own rates.
type Usage struct {
	InputTokens      int64
	OutputTokens     int64
	CacheWriteTokens int64
	CacheReadTokens  int64
}

// ParseUsageJSON reads the usage of a JSON response body: usage.prompt_tokens
// and usage.completion_tokens (OpenAI chat completions), usage.input_tokens
// and usage.output_tokens (OpenAI responses, Anthropic messages, plus
// Anthropic's cache_creation_input_tokens and cache_read_input_tokens).
// Generic upstreams are read as OpenAI. ok is false when the body has no
// usage object.
func ParseUsageJSON(p control.Provider, body []byte) (Usage, bool) {
	o, _ := openObject(body)
	var f usageFields
	for {
		key, val, _, ok := o.next()
		if !ok {
			break
		}
		if keyIs(key, "usage") {
			f.read(val)
		}
	}
	if !f.seen {
		return Usage{}, false
	}
	return f.usage(p), true
}

// usageFields are the counters of one usage object, each with its presence.
type usageFields struct {
	in, out, cacheCreate, cacheRead int64
	has                             uint8
	seen                            bool
}

const (
	hasIn uint8 = 1 << iota
	hasOut
	hasCacheCreate
	hasCacheRead
)

// read merges the members of a usage object into f; a value that is not an
// object (null) leaves f as it is.
func (f *usageFields) read(val []byte) {
	o, ok := openObject(val)
	if !ok {
		return
	}
	f.seen = true
	for {
		key, v, _, ok := o.next()
		if !ok {
			return
		}
		n, ok := parseCount(v)
		if !ok {
			continue
		}
		switch {
		case keyIs(key, "input_tokens"), keyIs(key, "prompt_tokens"):
			f.in, f.has = n, f.has|hasIn
		case keyIs(key, "output_tokens"), keyIs(key, "completion_tokens"):
			f.out, f.has = n, f.has|hasOut
		case keyIs(key, "cache_creation_input_tokens"):
			f.cacheCreate, f.has = n, f.has|hasCacheCreate
		case keyIs(key, "cache_read_input_tokens"):
			f.cacheRead, f.has = n, f.has|hasCacheRead
		}
	}
}

// merge overwrites f's counters with those present in g (Anthropic's
// message_delta carries cumulative counts).
func (f *usageFields) merge(g *usageFields) {
	if g.has&hasIn != 0 {
		f.in = g.in
	}
	if g.has&hasOut != 0 {
		f.out = g.out
	}
	if g.has&hasCacheCreate != 0 {
		f.cacheCreate = g.cacheCreate
	}
	if g.has&hasCacheRead != 0 {
		f.cacheRead = g.cacheRead
	}
	f.has |= g.has
	f.seen = f.seen || g.seen
}

func (f *usageFields) usage(p control.Provider) Usage {
	if p != control.Anthropic {
		return Usage{InputTokens: f.in, OutputTokens: f.out}
	}
	return Usage{InputTokens: addSat(addSat(f.in, f.cacheCreate), f.cacheRead), OutputTokens: f.out,
		CacheWriteTokens: f.cacheCreate, CacheReadTokens: f.cacheRead}
}
