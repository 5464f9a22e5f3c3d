// Package usage reads what the gateway needs from LLM API traffic without
// allocating: the model, token limits and an input size estimate from a
// request body; token usage from a JSON response or an SSE stream; and it
// turns tokens into integer micro-units with a pricebook.
//
// Every parser here is a small hand-written scanner over []byte that walks
// only the keys it needs and skips every other value whole. It never
// recurses (nesting depth costs nothing), never panics on any input (see
// the fuzz targets) and never allocates: results are integers or
// sub-slices of the input.
//
// Rules worth knowing:
//   - Duplicate keys: the last one wins, as in the Python and Go JSON
//     decoders upstreams use; ClampMaxTokens rewrites every occurrence.
//   - Keys are compared after decoding JSON escapes, so "max\u005ftokens" is
//     max_tokens; a model name that contains an escape is reported raw with
//     Request.ModelEscaped set, and the proxy should refuse it.
//   - Numbers are read the way lenient upstream validators read them
//     (100, 100.0, 1e2 and "100" are all 100); fractions round up.
//   - Money is int64 micro-units; every product is computed in 128 bits,
//     rounded up and saturated at math.MaxInt64, never wrapped.
package usage
