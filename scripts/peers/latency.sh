#!/usr/bin/env bash
# Added latency of the gateway's full path: open-loop runs to the fixed
# upstream directly and through `caracal gateway` (pinned alone to core 1,
# GOMAXPROCS=1), interleaved in the same script; added = gateway − direct at
# each percentile. Loads: 1 connection at 1000 req/s, and LAT_RATES on
# 64 connections.
#
#   scripts/peers/latency.sh     # LAT_DURATION=10s LAT_RATES="1000 5000 10000"
source "$(dirname "$0")/common.sh"
DUR=${LAT_DURATION:-10s}
RATES=${LAT_RATES:-"1000 5000 10000"}
OUT=${LAT_OUT:-$ROOT/bench-latency.txt}
RESULTS=$WORK/latency.tsv
: >"$RESULTS"

build
body
gateway_env
GW_KEY=$(setup_gateway 2>/dev/null)
start 0 upstream "$BIN/bench-upstream" -listen 127.0.0.1:18000
wait_port 127.0.0.1:18000
CARACAL_GATEWAY_PLAINTEXT=true start 1 gateway "$BIN/caracal" gateway
wait_port 127.0.0.1:18005

# one NAME RATE CONNS URL [flags]: a warm-up and a measured run.
one() {
	local name=$1 rate=$2 conns=$3 url=$4
	shift 4
	load "$url" "$rate" 2s "$conns" "$@" >/dev/null
	load "$url" "$rate" "$DUR" "$conns" "$@" >"$WORK/lat.json"
	python3 - "$WORK/lat.json" "$name" "$rate" "$conns" >>"$RESULTS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); l = s["latency"]
v = s["service"]
print("\t".join(map(str, [sys.argv[2], sys.argv[3], sys.argv[4], s["ok"], s["attempted"] - s["ok"], l["p50_us"], l["p99_us"], l["p999_us"], l["max_us"], v["p50_us"], v["p99_us"]])))
PY
	log "$(tail -1 "$RESULTS")"
}

one direct 1000 1 http://127.0.0.1:18000/v1/chat/completions
one gateway 1000 1 http://127.0.0.1:18005/benchai/chat/completions -key "$GW_KEY"
for r in $RATES; do
	one direct "$r" 64 http://127.0.0.1:18000/v1/chat/completions
	one gateway "$r" 64 http://127.0.0.1:18005/benchai/chat/completions -key "$GW_KEY"
done

{
	echo "# scripts/peers/latency.sh  $(date -u +%Y-%m-%dT%H:%MZ)  duration=$DUR, gateway on core 1 (GOMAXPROCS=1), load + upstream on core 0"
	python3 - "$RESULTS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
d = {}
for r in rows:
    d.setdefault((r[1], r[2]), {})[r[0]] = r
print("latency from the scheduled send time (open loop); 'svc' columns: service time from the actual send (µs)")
print(f"{'rate':>6} {'conns':>5} {'errors':>6} {'direct p50':>10} {'gw p50':>8} {'added p50':>9} {'direct p99':>10} {'gw p99':>8} {'added p99':>9} {'added p99.9':>11} {'svc added p50':>13} {'svc added p99':>13}")
for (rate, conns), v in d.items():
    a, g = v["direct"], v["gateway"]
    f = lambda r, i: float(r[i])
    print(f"{rate:>6} {conns:>5} {int(a[4]) + int(g[4]):>6} {f(a,5):>10.0f} {f(g,5):>8.0f} {f(g,5)-f(a,5):>9.0f} {f(a,6):>10.0f} {f(g,6):>8.0f} {f(g,6)-f(a,6):>9.0f} {f(g,7)-f(a,7):>11.0f} {f(g,9)-f(a,9):>13.0f} {f(g,10)-f(a,10):>13.0f}")
PY
} | tee "$OUT"
