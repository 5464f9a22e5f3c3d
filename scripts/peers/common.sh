# Shared helpers of the peer and latency scripts (sourced, not run).
# Everything listens on 127.0.0.1; every process started is killed by its pid.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$ROOT/bin
WORK=${PEERS_WORK:-$(mktemp -d /tmp/caracal-peers.XXXXXX)}
PIDS=()
HZ=$(getconf CLK_TCK)

cleanup() {
	local p
	[ -n "${SERVICES_PINNED:-}" ] && pin_services "0-$(($(nproc) - 1))"
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	[ -n "${PEERS_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "peers: $*" >&2; }

# pin_services CPUS: sets the CPU affinity of the shared services (Kafka,
# PostgreSQL and its backends, Redis, PgBouncer) and all their threads, so that
# during a run the measured core carries only the process under test (the
# gateway's own Kafka produce would otherwise wake the broker there); cleanup
# gives them every CPU back.
pin_services() {
	local p c
	for p in $(pgrep -f 'kafka\.Kafka|postgres -D|redis-server|pgbouncer' || true); do
		for c in "$p" $(pgrep -P "$p" || true); do
			taskset -a -p -c "$1" "$c" >/dev/null 2>&1 || true
		done
	done
	SERVICES_PINNED=1
}

# build compiles the binaries the runs need.
build() {
	[ -n "${PEERS_NO_BUILD:-}" ] && return
	(cd "$ROOT" && go build -o "$BIN/caracal" ./cmd/caracal && go build -o "$BIN/caracal-loadgen" ./cmd/caracal-loadgen &&
		go build -o "$BIN/bench-upstream" ./bench/upstream && go build -o "$BIN/minproxy" ./bench/minproxy &&
		go build -o "$BIN/fwdproxy" ./bench/fwdproxy)
}

# install_peers installs HAProxy and nginx from the distribution when missing.
install_peers() {
	if command -v haproxy >/dev/null && command -v nginx >/dev/null; then return; fi
	log "installing haproxy and nginx from apt"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq haproxy nginx-light >/dev/null 2>&1 || apt-get install -y -qq haproxy nginx >/dev/null
}

# certs writes a self-signed certificate for 127.0.0.1.
certs() {
	[ -f "$WORK/cert.pem" ] && return
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
	cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"
}

# start CORE NAME CMD...: runs CMD pinned to CORE in the background.
start() {
	local core=$1 name=$2
	shift 2
	GOMAXPROCS=1 taskset -c "$core" "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	LAST_PID=$!
}

# stop_last kills the process started last.
stop_last() {
	kill "$LAST_PID" 2>/dev/null || true
	wait "$LAST_PID" 2>/dev/null || true
}

# wait_port HOST:PORT: up to 30 s for a listener.
wait_port() {
	local i
	for i in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	log "nothing listens on $1"
	return 1
}

# core_ticks CORE: busy clock ticks of that core so far (user+nice+system+irq+softirq+steal).
core_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# proc_ctxsw PID: context switches (voluntary + involuntary) of the process's
# threads so far, and of its children (nginx's worker).
proc_ctxsw() {
	local p t=0 n
	for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
		n=$(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }')
		t=$((t + n))
	done
	echo "$t"
}

# proc_ticks PID: user+system clock ticks of the process and its threads.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# proc_uticks PID: user clock ticks of the process and its threads.
proc_uticks() { awk '{ print $14 }' "/proc/$1/stat"; }

# load URL RATE DURATION CONNS [extra loadgen flags]: the open-loop generator
# on core 0, JSON summary to stdout.
load() {
	local url=$1 rate=$2 dur=$3 conns=$4
	shift 4
	GOMAXPROCS=1 taskset -c 0 "$BIN/caracal-loadgen" -url "$url" -rate "$rate" -duration "$dur" \
		-connections "$conns" -json -body-file "$WORK/body.json" "$@"
}

# body writes the request body every run sends (bench.ChatBody).
body() {
	printf '%s' '{"model":"gpt-bench","max_tokens":16,"messages":[{"role":"user","content":"hello there"}]}' >"$WORK/body.json"
}

# admin_metric NAME: a counter's value on the gateway's admin listener.
admin_metric() {
	curl -s "http://$CARACAL_GATEWAY_ADMIN_LISTEN/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'
}

# gateway_env points bin/caracal at the local services with the bench's own
# topics (replication 1: a single local broker) and listeners.
gateway_env() {
	export CARACAL_GATEWAY_LISTEN=127.0.0.1:18005 CARACAL_GATEWAY_ADMIN_LISTEN=127.0.0.1:19095
	export CARACAL_KAFKA_TOPICS_METERING=caracal.bench.metering CARACAL_KAFKA_TOPICS_DECISIONS=caracal.bench.decisions
	export CARACAL_KAFKA_TOPICS_AUDIT=caracal.bench.audit CARACAL_KAFKA_TOPICS_DLQ=caracal.bench.dlq
	export CARACAL_KAFKA_TOPICS_REPLICATION_FACTOR=1 CARACAL_KAFKA_TOPICS_MIN_INSYNC_REPLICAS=1 CARACAL_KAFKA_TOPICS_PARTITIONS=3
	export CARACAL_LOG_LEVEL=warn CARACAL_BENCH_UPSTREAM_KEY=sk-bench
	# A database of its own, so that routes of other stacks (caracal dev) do not mix in.
	export CARACAL_DATABASE_URL=${PEERS_DATABASE_URL:-postgres://caracal:caracal@127.0.0.1:5432/caracal_bench?sslmode=disable}
	local base=${CARACAL_DATABASE_URL%%\?*} name
	name=${base##*/}
	if ! psql "${base%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
		psql "${base%/*}/postgres" -qc "CREATE DATABASE $name" >/dev/null
	fi
}

# setup_gateway creates (in the configured database) an agent with a large
# budget under a parent, route "benchai" to the fixed upstream, its prices,
# and prints a fresh API key.
setup_gateway() {
	local c="$BIN/caracal" n
	n=bench-$(date +%s)-$$
	$c db migrate up >/dev/null
	$c kafka create-topics >/dev/null
	$c agent create "$n-org" >/dev/null
	$c agent create "$n" --parent "$n-org" >/dev/null
	$c policy set --agent "$n-org" --limit 100000000 --window daily --reason "peer bench" >/dev/null
	$c policy set --agent "$n" --limit 10000000 --window daily --reason "peer bench" >/dev/null
	$c route set benchai --prefix /benchai --upstream http://127.0.0.1:18000/v1 --credential env:CARACAL_BENCH_UPSTREAM_KEY >/dev/null
	$c pricebook set --resource benchai --model gpt-bench --unit input_mtok --price 1 >/dev/null
	$c pricebook set --resource benchai --model gpt-bench --unit output_mtok --price 2 >/dev/null
	# Gateways serve only once the budget totals are marked complete.
	$c kafka create-topics >/dev/null
	$c reconcile --wait 30s >/dev/null
	$c key create --agent "$n" -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["key"] if isinstance(d, dict) else d[0]["key"])'
}
