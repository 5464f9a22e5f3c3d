#!/usr/bin/env bash
# make load-1k / load-10k: one tier end to end on this machine against
# `caracal dev` (gateway, kfake broker, mock upstream, ledger consumer in one
# process): start it, wait for /readyz, create a load agent with no rate limit
# and a large budget, run the tier's scenario (thresholds: error rate, p99,
# ledger rows == accepted requests), stop it. Loopback only, bounded.
#
#   loadtest/tier.sh 1k|10k [extra caracal-loadgen flags]
set -euo pipefail
tier=${1:?usage: loadtest/tier.sh 1k|10k}
shift
cd "$(dirname "$0")/.."
GO=${GO:-go}
DB=${CARACAL_DATABASE_URL:-postgres://caracal:caracal@127.0.0.1:5432/caracal?sslmode=disable}
export CARACAL_DATABASE_URL=$DB
log=$(mktemp /tmp/caracal-dev.XXXXXX)
pid=
stop() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$log"
}
trap stop EXIT

scripts/services.sh up pg redis
if [ -z "${LOAD_NO_BUILD:-}" ]; then # LOAD_NO_BUILD=1: use the binaries in bin/ as they are
	$GO build -o bin/caracal ./cmd/caracal
	$GO build -o bin/caracal-loadgen ./cmd/caracal-loadgen
fi
bin/caracal dev >"$log" 2>&1 &
pid=$!
for i in $(seq 1 300); do
	curl -fs http://127.0.0.1:9090/readyz >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "load: caracal dev exited"; exit 1; }
	[ "$i" = 300 ] && { cat "$log"; echo "load: caracal dev never ready"; exit 1; }
	sleep 0.1
done

n=load-$(date +%s)-$$
bin/caracal agent create "$n" >/dev/null
bin/caracal policy set --agent "$n" --limit 1000000 --window daily --reason "load tier $tier" >/dev/null
key=$(bin/caracal key create --agent "$n" -o json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["key"] if isinstance(d, dict) else d[0]["key"])')

echo "load: tier $tier against caracal dev (kfake broker in process) as agent $n"
rc=0
bin/caracal-loadgen -scenario "$tier" -url http://127.0.0.1:8080/openai/chat/completions -key "$key" -db "$DB" "$@" || rc=$?
# Memory and GC of the whole dev process (gateway + consumers + kfake + mock).
gc=$(curl -fs http://127.0.0.1:9090/metrics | awk '$1 == "go_gc_cpu_seconds_total" { print $2 }')
hz=$(getconf CLK_TCK)
cpu=$(awk -v hz="$hz" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$pid/stat")
echo "process     $(grep -E '^VmHWM' "/proc/$pid/status" | tr -s ' ')  $(grep -E '^VmRSS' "/proc/$pid/status" | tr -s ' ')  cpu ${cpu}s  gc cpu ${gc:-?}s ($(awk -v g="${gc:-0}" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.1f", 100 * g / c; else print "?" }')% of the process)"
exit $rc
