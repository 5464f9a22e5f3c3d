// Package ssrf guards routes that let the client choose the target URL.
//
// CheckURL accepts only http and https URLs without userinfo whose host is on the
// allow-list; an IP literal in any spelling a resolver accepts (decimal, octal, hex,
// short forms, bracketed IPv6 with embedded IPv4) is decoded and denied when it points
// into a private, loopback, link-local or otherwise special range.
//
// Dial is a fasthttp.DialFunc that resolves the name itself, rejects the name when any
// of its addresses is denied, and connects only to an address it has just checked: a
// DNS answer that changes between the check and the connection (rebinding) cannot
// reach a private address, because no second lookup happens.
//
// Redirects: the gateway's proxy never follows them (a 3xx goes back to the client
// unchanged), so a redirect to a private address is never fetched by the gateway; a
// client that follows it does so from its own network.
package ssrf
