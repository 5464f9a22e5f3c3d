#!/usr/bin/env bash
# One tier end to end against the real services (scripts/services.sh up):
# caracal-mock (upstream), `caracal gateway` and `caracal consume ledger`
# against Apache Kafka, PostgreSQL and Redis, in a database and on topics of
# their own. Same scenario and thresholds as loadtest/tier.sh (caracal dev).
#
#   loadtest/tier-real.sh 1k|10k [extra caracal-loadgen flags]
set -euo pipefail
tier=${1:?usage: loadtest/tier-real.sh 1k|10k}
shift
cd "$(dirname "$0")/.."
GO=${GO:-go}
work=$(mktemp -d /tmp/caracal-tier.XXXXXX)
pids=()
stop() {
	local p
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap stop EXIT

scripts/services.sh up
if [ -z "${LOAD_NO_BUILD:-}" ]; then
	$GO build -o bin/caracal ./cmd/caracal
	$GO build -o bin/caracal-loadgen ./cmd/caracal-loadgen
	$GO build -o bin/caracal-mock ./cmd/caracal-mock
fi
base=postgres://caracal:caracal@127.0.0.1:5432
psql "$base/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = 'caracal_load'" | grep -q 1 ||
	psql "$base/postgres" -qc "CREATE DATABASE caracal_load"
export CARACAL_DATABASE_URL="$base/caracal_load?sslmode=disable"
export CARACAL_KAFKA_BROKERS=${CARACAL_TEST_KAFKA_BROKERS:-127.0.0.1:9092}
export CARACAL_KAFKA_TOPICS_METERING=caracal.load.metering CARACAL_KAFKA_TOPICS_DECISIONS=caracal.load.decisions
export CARACAL_KAFKA_TOPICS_AUDIT=caracal.load.audit CARACAL_KAFKA_TOPICS_DLQ=caracal.load.dlq
export CARACAL_KAFKA_TOPICS_REPLICATION_FACTOR=1 CARACAL_KAFKA_TOPICS_MIN_INSYNC_REPLICAS=1 CARACAL_KAFKA_TOPICS_PARTITIONS=3
export CARACAL_GATEWAY_LISTEN=127.0.0.1:18080 CARACAL_GATEWAY_ADMIN_LISTEN=127.0.0.1:19090 CARACAL_GATEWAY_PLAINTEXT=true
export CARACAL_LOG_LEVEL=warn CARACAL_LOAD_UPSTREAM_KEY=sk-load
c=bin/caracal
$c db migrate up >/dev/null
$c kafka create-topics >/dev/null
$c merkle keygen --name caracal-load --out-dir "$work" >/dev/null
n=load-$(date +%s)-$$
$c agent create "$n" >/dev/null
$c policy set --agent "$n" --limit 1000000 --window daily --reason "load tier $tier" >/dev/null
$c route set openai --prefix /openai --upstream http://127.0.0.1:18089/v1 --credential env:CARACAL_LOAD_UPSTREAM_KEY >/dev/null
$c pricebook set --resource openai --model gpt-4o-mini --unit input_mtok --price 0.15 >/dev/null
$c pricebook set --resource openai --model gpt-4o-mini --unit output_mtok --price 0.6 >/dev/null
# Gateways serve only once the budget totals are marked complete.
$c reconcile --wait 30s >/dev/null
key=$($c key create --agent "$n" -o json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["key"] if isinstance(d, dict) else d[0]["key"])')

bin/caracal-mock -addr 127.0.0.1:18089 >"$work/mock.log" 2>&1 &
pids+=($!)
$c gateway >"$work/gateway.log" 2>&1 &
pids+=($!)
gw=$!
$c consume ledger --signer-key-file "$work/caracal-load.key" >"$work/ledger.log" 2>&1 &
pids+=($!)
for i in $(seq 1 300); do
	curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1 && break
	[ "$i" = 300 ] && { cat "$work/gateway.log"; echo "load: the gateway never got ready"; exit 1; }
	sleep 0.1
done

echo "load: tier $tier against caracal gateway + consume ledger on Apache Kafka $CARACAL_KAFKA_BROKERS as agent $n"
rc=0
bin/caracal-loadgen -scenario "$tier" -url http://127.0.0.1:18080/openai/chat/completions -key "$key" -db "$CARACAL_DATABASE_URL" "$@" || rc=$?
gc=$(curl -fs http://127.0.0.1:19090/metrics | awk '$1 == "go_gc_cpu_seconds_total" { print $2 }')
hz=$(getconf CLK_TCK)
cpu=$(awk -v hz="$hz" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$gw/stat")
echo "gateway     $(grep -E '^VmHWM' "/proc/$gw/status" | tr -s ' ')  $(grep -E '^VmRSS' "/proc/$gw/status" | tr -s ' ')  cpu ${cpu}s  gc cpu ${gc:-?}s ($(awk -v g="${gc:-0}" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.1f", 100 * g / c; else print "?" }')% of the gateway)"
[ "$rc" = 0 ] || tail -n 5 "$work/gateway.log" "$work/ledger.log"
exit $rc
