// Package bench holds Caracal's cross-package benchmarks (a whole request
// through the gateway next to an httputil.ReverseProxy twin and a direct
// call, event encoding, produce enqueue) and the small servers the peer
// comparison in scripts/peers runs: a fixed upstream (bench/upstream), a
// minimal fasthttp proxy (bench/minproxy) and the gateway's forwarder alone
// (bench/fwdproxy). Method: docs in BENCHMARKS.md.
package bench

import "github.com/valyala/fasthttp"

// UpstreamBody is the fixed answer of the benchmark upstream: a small chat
// completion with usage, so the gateway prices it from tokens.
const UpstreamBody = `{"id":"chatcmpl-bench","object":"chat.completion","model":"gpt-bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`

// ChatBody is the request body every benchmark and peer run sends.
const ChatBody = `{"model":"gpt-bench","max_tokens":16,"messages":[{"role":"user","content":"hello there"}]}`

// Upstream answers every request with UpstreamBody and allocates nothing.
func Upstream(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(UpstreamBody)
}
