// Package guard rejects request-smuggling and oversized request heads before
// fasthttp's parser sees them.
//
// fasthttp alone is lenient where a front proxy must not be (it accepts some framing
// that another hop may read differently). Listener wraps a net.Listener (plain or TLS)
// so that every request head on a connection, pipelined ones included, is checked
// byte for byte; the bodies between heads are followed through Content-Length and
// chunked framing to find the next head. A rejected head is never passed on: the
// responses to the requests before it are flushed by fasthttp, then the guard writes
// 400 (or 431) with Connection: close and closes the connection.
//
// Rejected: Content-Length with Transfer-Encoding; a second, list-valued or
// non-numeric Content-Length; a second Transfer-Encoding or any value other than
// "chunked"; Transfer-Encoding in HTTP/1.0; a second Host; bare LF or bare CR; obs-fold;
// control characters, spaces or underscores in header names; control characters in
// values; malformed chunk framing; more than Limits.MaxHeaders header lines or a head
// over Limits.MaxHeadSize (431).
//
// Not supported: protocol upgrades (after a 101 the bytes are not HTTP/1.1 requests;
// the gateway strips Upgrade and never answers 101) and CONNECT.
package guard
