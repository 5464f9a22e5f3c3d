// Package proxy forwards a request that the gateway has admitted to an upstream pool
// and streams the answer back.
//
// Request hygiene (hygiene.go): hop-by-hop headers and those named in Connection are
// removed, so are every X-Caracal-* header and the agent's own credentials; the
// upstream's credential is injected; X-Forwarded-For is kept only from trusted proxies.
//
// Forwarding (forward.go): the request is copied into a pooled upstream request (the
// server's ctx.Request stays intact for the rest of the pipeline), sent over a
// fasthttp.HostClient picked round-robin. A response with a small known
// Content-Length (Options.BufferBodySize) is read whole and its connection pooled at
// once, without allocating; any other body is streamed to the client: each read from
// the upstream is written and flushed at once when the size is unknown (chunked, and
// so text/event-stream is flushed event by event and never buffered whole).
//
// Benchmarks (proxy_timing_test.go, 2 cores, loopback): CleanRequest ~1.1 µs and 0
// allocations vs ~3.8 µs and 11 allocations for the same work on http.Header; a small
// POST through Forward ~32-65 µs and 0 allocations (client, frontend and upstream in
// one process) vs ~100-180 µs and 184 allocations through httputil.ReverseProxy.
//
// Redirects are never followed: a 3xx from the upstream goes back to the client
// unchanged, so a redirect cannot lead the gateway to a target the allow-list or the
// SSRF guard did not check.
package proxy
