package gateway

import (
	"strconv"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/internal/event"
)

// Code is a stable error code of the gateway's one JSON error shape:
// {"error":{"code":"...","message":"...","request_id":"..."}}.
type Code uint8

const (
	CodeOverloaded Code = iota + 1
	CodeRouteNotFound
	CodeUnauthenticated
	CodeReplay
	CodeForbidden
	CodeAgentDisabled
	CodeRouteNotAllowed
	CodeModelNotAllowed
	CodeTargetNotAllowed
	CodeRateLimited
	CodeBudgetExceeded
	CodeBudgetUnavailable
	CodeControlUnavailable
	CodeReplayUnavailable
	CodeMeteringUnavailable
	CodeBadRequest
	CodeBodyTooLarge
	CodeUpstreamError
	CodeUpstreamTimeout
	CodeMethodNotAllowed
	CodeAuthRateLimited
	numCodes
)

type codeInfo struct {
	name    string
	status  int
	message string
}

var codes = [numCodes]codeInfo{
	CodeOverloaded:          {"overloaded", 503, "too many requests in flight; retry shortly"},
	CodeRouteNotFound:       {"route_not_found", 404, "no route matches this path"},
	CodeUnauthenticated:     {"unauthenticated", 401, "missing or invalid credentials"},
	CodeReplay:              {"replay_rejected", 401, "missing, stale or reused nonce"},
	CodeForbidden:           {"forbidden", 403, "not allowed"},
	CodeAgentDisabled:       {"agent_disabled", 403, "the agent or one of its ancestors is disabled"},
	CodeRouteNotAllowed:     {"route_not_allowed", 403, "the agent may not use this route"},
	CodeModelNotAllowed:     {"model_not_allowed", 403, "the agent may not use this model"},
	CodeTargetNotAllowed:    {"target_not_allowed", 403, "the target URL is not allowed"},
	CodeRateLimited:         {"rate_limited", 429, "request rate limit exceeded"},
	CodeBudgetExceeded:      {"budget_exceeded", 402, "the budget of the agent or an ancestor is exhausted"},
	CodeBudgetUnavailable:   {"budget_unavailable", 503, "the budget store is unreachable; request not forwarded"},
	CodeControlUnavailable:  {"policy_unavailable", 503, "policy data is unavailable; request not forwarded"},
	CodeReplayUnavailable:   {"replay_store_unavailable", 503, "the nonce store is unreachable; request not forwarded"},
	CodeMeteringUnavailable: {"metering_unavailable", 503, "metering is backed up; request not forwarded"},
	CodeBadRequest:          {"bad_request", 400, "malformed request"},
	CodeBodyTooLarge:        {"body_too_large", 413, "request body too large"},
	CodeUpstreamError:       {"upstream_error", 502, "the upstream failed"},
	CodeUpstreamTimeout:     {"upstream_timeout", 504, "the upstream did not answer in time"},
	CodeMethodNotAllowed:    {"method_not_allowed", 405, "method not allowed"},
	CodeAuthRateLimited:     {"auth_rate_limited", 429, "too many failed authentication attempts; retry later"},
}

// String returns the code's stable name.
func (c Code) String() string { return codes[c].name }

// Status returns the HTTP status the code is sent with.
func (c Code) Status() int { return codes[c].status }

var strContentTypeJSON = []byte("application/json")

// writeError writes the one error shape into scratch (returned for reuse)
// without allocating. msg, when not empty, replaces the generic message; it is
// always a fixed string of the gateway, never request input.
func writeError(ctx *fasthttp.RequestCtx, c Code, msg string, requestID, scratch []byte) []byte {
	info := &codes[c]
	ctx.Response.Reset()
	ctx.SetStatusCode(info.status)
	ctx.Response.Header.SetContentTypeBytes(strContentTypeJSON)
	if info.status == 503 || info.status == 429 {
		ctx.Response.Header.SetBytesKV(strRetryAfter, strOne)
	}
	if requestID != nil {
		ctx.Response.Header.SetBytesKV(strRequestID, requestID)
	}
	if msg == "" {
		msg = info.message
	}
	buf := append(scratch[:0], `{"error":{"code":"`...)
	buf = append(buf, info.name...)
	buf = append(buf, `","message":`...)
	buf = event.AppendString(buf, unsafe.Slice(unsafe.StringData(msg), len(msg)))
	buf = append(buf, `,"request_id":`...)
	buf = event.AppendString(buf, requestID)
	buf = append(buf, "}}\n"...)
	ctx.Response.SetBody(buf)
	return buf
}

var (
	strRetryAfter = []byte("Retry-After")
	strOne        = []byte("1")
	strRequestID  = []byte("X-Request-Id")
)

// appendInt is strconv.AppendInt for headers.
func appendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }
