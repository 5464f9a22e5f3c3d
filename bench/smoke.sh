#!/usr/bin/env bash
# make bench-smoke: every benchmark once at a small fixed count (no timing
# thresholds), then
#   - fails when a hot-path benchmark reports allocs/op above 0 (the list below),
#   - fails when a benchmark or a harness breaks: the load generator runs 2 s
#     at 200 req/s against a local mock upstream and must see 0 errors, and
#     the k6 scripts must parse (node --check).
# Integration benchmarks (the full gateway path, produce, Redis leases) run
# when the services are up (scripts/services.sh env), as under make test.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=$(mktemp /tmp/bench-smoke.XXXXXX)
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; rm -f "$out"' EXIT

# Hot path: must not allocate per request (anchored benchmark names).
HOT='^Benchmark(GatewayFullPath|APIKeyVerify|ParseCredential|JWTVerifyCached|AgentHit|APIKeyHit|InspectRequest|ParseUsageJSON|Scanner|ClampMaxTokens|PricebookLookup|TakeSettle|EventAppendJSON|ProduceEnqueue|CleanRequest|Forward|CheckLocalReject)(-[0-9]+)?$'

pkgs=$(find . -name '*_timing_test.go' -not -path './.git/*' -exec dirname {} \; | sort -u)
echo "bench-smoke: $(echo $pkgs | wc -w) packages"
# Pass 1: every benchmark once (a harness that breaks fails here).
if ! $GO test -run '^$' -bench . -benchmem -benchtime 1x -timeout 10m $pkgs >"$out" 2>&1; then
	cat "$out"
	echo "bench-smoke: FAIL (a benchmark failed)"
	exit 1
fi
grep -c '^Benchmark' "$out" | sed 's/^/bench-smoke: ran benchmarks once: /'
if grep -q -- '--- SKIP' "$out"; then echo "bench-smoke: some benchmarks were skipped (services not set up)"; fi
# Pass 2: the hot path at 10000 iterations, three times; each benchmark
# warms its pools first. A background goroutine or a GC that empties a
# sync.Pool can put one run above 0, so the gate is the smallest of the three:
# a real regression allocates in every run.
if ! $GO test -run '^$' -bench "${HOT%(-*}\$" -benchmem -benchtime 10000x -count 3 -timeout 5m $pkgs >"$out" 2>&1; then
	cat "$out"
	echo "bench-smoke: FAIL (a hot-path benchmark failed)"
	exit 1
fi
fail=0
seen=0
while read -r name allocs; do
	[[ $name =~ $HOT ]] || continue
	seen=$((seen + 1))
	if [ "$allocs" != 0 ]; then
		echo "bench-smoke: $name allocates $allocs times per op in its best of 3 runs (hot path must be 0)"
		fail=1
	fi
done < <(awk '/^Benchmark/ { a = "?"; for (i = 1; i < NF; i++) if ($(i+1) == "allocs/op") a = $i
	if (!($1 in min) || a + 0 < min[$1] + 0) min[$1] = a } END { for (k in min) print k, min[k] }' "$out")
grep '^Benchmark' "$out"
if [ "${CARACAL_INTEGRATION:-}" = 1 ] && [ "$seen" -lt 17 ]; then
	echo "bench-smoke: only $seen of the 17 hot-path benchmarks ran"
	fail=1
fi

# The load generator against a local mock upstream.
$GO build -o bin/caracal-loadgen ./cmd/caracal-loadgen
$GO build -o bin/caracal-mock ./cmd/caracal-mock
port=$((20000 + RANDOM % 20000))
bin/caracal-mock -addr 127.0.0.1:$port >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
if ! bin/caracal-loadgen -url http://127.0.0.1:$port/v1/chat/completions -rate 200 -duration 2s -connections 4 -json >"$out"; then
	echo "bench-smoke: the load generator failed"
	fail=1
elif ! python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["ok"] == s["attempted"] == 400 and not s["errors"] else 1)' "$out"; then
	cat "$out"
	echo "bench-smoke: the load generator saw errors or missed requests against the mock"
	fail=1
fi

# k6 scripts: syntax only (k6 is not installed here).
for f in loadtest/k6/*.js; do
	node --check "$f" || { echo "bench-smoke: $f does not parse"; fail=1; }
done

[ "$fail" = 0 ] && echo "bench-smoke: PASS" || { echo "bench-smoke: FAIL"; exit 1; }
