package usage

import (
	"math"

	"github.com/caracal-gw/caracal/internal/control"
)

// Estimate returns the most a request may cost, in micro-units:
// ceil(InputTokens×inPrice/1e6) + ceil(maxOut×OutputPerMTok/1e6) +
// PerRequest, saturated at math.MaxInt64. inPrice is the highest of the
// input, cache write and cache read prices: before the answer nobody knows
// how much of the input the upstream will write to or read from its prompt
// cache, so the estimate assumes the dearest. maxOut is the body's
// MaxTokens, or defaultMaxTokens when the body sets none (use the model's
// output limit). A per-request route passes PerRequestPrice, whose estimate
// is its fixed price.
func Estimate(req Request, price control.Price, defaultMaxTokens int64) int64 {
	maxOut := req.MaxTokens
	if maxOut < 0 {
		maxOut = defaultMaxTokens
	}
	c := mulDivCeil(req.InputTokens, estimateInputPrice(&price))
	c = addSat(c, mulDivCeil(maxOut, price.OutputPerMTok))
	return addSat(c, max(price.PerRequest, 0))
}

// PerRequestPrice is the price of a route priced per request (and the
// fallback of a header-priced route): no token component.
func PerRequestPrice(r *control.Route) control.Price {
	return control.Price{PerRequest: r.PricePerRequest}
}

// MaxAffordableOutput returns the largest output token limit whose estimate
// with inTok input tokens stays within remaining micro-units: 0 when even
// the input and the per-request price do not fit (the request should be
// denied), math.MaxInt64 when output tokens are free.
func MaxAffordableOutput(remaining, inTok int64, price control.Price) int64 {
	if remaining <= 0 {
		return 0
	}
	avail := remaining - addSat(mulDivCeil(inTok, estimateInputPrice(&price)), max(price.PerRequest, 0))
	if avail < 0 {
		return 0
	}
	if price.OutputPerMTok <= 0 {
		return math.MaxInt64
	}
	return mulDivFloor(avail, price.OutputPerMTok)
}

// estimateInputPrice is the price per million input tokens an estimate
// reserves: the highest of the input, cache write and cache read prices.
func estimateInputPrice(p *control.Price) int64 {
	return max(p.InputPerMTok, p.CacheWrite(), p.CacheRead())
}
