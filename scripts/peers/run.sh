#!/usr/bin/env bash
# CPU per request of the gateway and its peers, per ../../../shared/MEASURE.md:
# each proxy alone on core 1 (taskset -c 1, GOMAXPROCS=1 for Go), the
# open-loop load generator and the fixed fasthttp upstream on core 0; the busy
# time of core 1 from /proc/stat (and of the proxy process from
# /proc/PID/stat, a cross-check immune to other work landing on core 1)
# before and after a fixed-length run at the same rate and concurrency.
#
#   scripts/peers/run.sh            # all peers, plain and TLS, 10 s each
#   PEERS_DURATION=5s PEERS_RATE=8000 PEERS_ONLY="haproxy minproxy" scripts/peers/run.sh
#   PEERS_ROUNDS=3 scripts/peers/run.sh   # every peer 3 times, interleaved; medians and ratio ranges
#   PEERS_MODES=tls PEERS_ONLY="nginx gateway gateway-base" PEERS_BASE_BIN=/tmp/caracal-before scripts/peers/run.sh
#
# Needs PostgreSQL, Redis and Kafka (scripts/services.sh up) for the gateway's full path.
source "$(dirname "$0")/common.sh"
DUR=${PEERS_DURATION:-10s}
RATE=${PEERS_RATE:-10000}
CONNS=${PEERS_CONNECTIONS:-32}
# minproxy-raw: minproxy on internal/rawconn sockets; gateway-netio: the gateway
# with gateway.rawSocketIO=false (Go's ordinary socket I/O), for the A/B;
# gateway-base: another build of caracal (PEERS_BASE_BIN, e.g. of the commit
# before a change), for an A/B of two versions in the same rounds.
ONLY=${PEERS_ONLY:-"haproxy nginx minproxy minproxy-raw fwdproxy gateway gateway-netio"}
OUT=${PEERS_OUT:-$ROOT/bench-peers.txt}
RESULTS=$WORK/results.tsv
: >"$RESULTS"

install_peers
build
# The services on core 0 with the load generator (PEERS_PIN_SERVICES=0: leave them).
[ "${PEERS_PIN_SERVICES:-1}" = 1 ] && pin_services 0
certs
body
gateway_env

start 0 upstream "$BIN/bench-upstream" -listen 127.0.0.1:18000
wait_port 127.0.0.1:18000

# measure NAME MODE URL [loadgen flags]: one warm-up and one measured run
# against the proxy started last.
measure() {
	local name=$1 mode=$2 url=$3
	shift 3
	load "$url" 2000 2s "$CONNS" "$@" >/dev/null
	local c0 p0 c1 p1 x0 x1 u0 u1
	c0=$(core_ticks 1)
	p0=$(proc_ticks "$LAST_PID")
	u0=$(proc_uticks "$LAST_PID")
	x0=$(proc_ctxsw "$LAST_PID")
	local rt0=""
	[[ $name == gateway* ]] && rt0=$(admin_metric caracal_budget_redis_round_trips_total)
	load "$url" "$RATE" "$DUR" "$CONNS" "$@" >"$WORK/$name-$mode.json"
	if [ -n "$rt0" ]; then
		# Redis round trips per request in steady state (the lease's goal: <= 0.05).
		python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("%s %s round %s: %d Redis round trips for %d requests, %.5f per request" % (sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), s["ok"], int(sys.argv[5]) / max(s["ok"], 1)))' \
			"$WORK/$name-$mode.json" "$name" "$mode" "${ROUND:-1}" $(($(admin_metric caracal_budget_redis_round_trips_total) - rt0)) >>"$WORK/rtt.txt"
	fi
	c1=$(core_ticks 1)
	p1=$(proc_ticks "$LAST_PID")
	u1=$(proc_uticks "$LAST_PID")
	x1=$(proc_ctxsw "$LAST_PID")
	python3 - "$WORK/$name-$mode.json" "$name" "$mode" $((c1 - c0)) $((p1 - p0)) "$HZ" $((x1 - x0)) "${ROUND:-1}" $((u1 - u0)) >>"$RESULTS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
name, mode, core, proc, hz, cs = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
n = max(s["ok"], 1)
print("\t".join(map(str, [name, mode, s["ok"], s["attempted"] - s["ok"], round(core / hz * 1e6 / n, 1),
      round(proc / hz * 1e6 / n, 1), round(s["achieved_rate"]), s["latency"]["p50_us"], s["latency"]["p99_us"],
      round(cs / n, 2), sys.argv[8], round(int(sys.argv[9]) / hz * 1e6 / n, 1)])))
PY
	log "$(tail -1 "$RESULTS")"
}

run_peer() {
	local name=$1 mode=$2 port url flags=()
	port=$([ "$mode" = tls ] && echo 1 || echo 0)
	case $name in
	minproxy | minproxy-raw)
		local tlsf=()
		[ "$mode" = tls ] && tlsf=(-cert "$WORK/cert.pem" -key "$WORK/key.pem")
		[ "$name" = minproxy-raw ] && tlsf+=(-raw)
		start 1 "$name-$mode" "$BIN/minproxy" -listen 127.0.0.1:180${port}1 -upstream 127.0.0.1:18000 "${tlsf[@]}"
		url=127.0.0.1:180${port}1/v1/chat/completions ;;
	fwdproxy)
		local tlsf=()
		[ "$mode" = tls ] && tlsf=(-cert "$WORK/cert.pem" -key "$WORK/key.pem")
		start 1 "$name-$mode" "$BIN/fwdproxy" -listen 127.0.0.1:180${port}2 -upstream http://127.0.0.1:18000 "${tlsf[@]}"
		url=127.0.0.1:180${port}2/v1/chat/completions ;;
	haproxy)
		sed "s#@WORK@#$WORK#g" "$(dirname "$0")/haproxy.cfg" >"$WORK/haproxy.cfg"
		start 1 "$name-$mode" haproxy -db -f "$WORK/haproxy.cfg"
		url=127.0.0.1:180${port}3/v1/chat/completions ;;
	nginx)
		sed "s#@WORK@#$WORK#g" "$(dirname "$0")/nginx.conf" >"$WORK/nginx.conf"
		start 1 "$name-$mode" nginx -p "$WORK" -c "$WORK/nginx.conf"
		url=127.0.0.1:180${port}4/v1/chat/completions ;;
	gateway | gateway-netio | gateway-base)
		if [ -z "${GW_KEY:-}" ]; then GW_KEY=$(setup_gateway 2>/dev/null); fi
		local rawio=true gw=$BIN/caracal
		[ "$name" = gateway-base ] && gw=${PEERS_BASE_BIN:?gateway-base needs PEERS_BASE_BIN}
		[ "$name" = gateway-netio ] && rawio=false
		if [ "$mode" = tls ]; then
			CARACAL_GATEWAY_RAW_SOCKET_IO=$rawio CARACAL_GATEWAY_LISTEN=127.0.0.1:18015 CARACAL_GATEWAY_PLAINTEXT=false \
				CARACAL_GATEWAY_CERT_FILE=$WORK/cert.pem CARACAL_GATEWAY_KEY_FILE=$WORK/key.pem start 1 "$name-$mode" "$gw" gateway
		else
			CARACAL_GATEWAY_RAW_SOCKET_IO=$rawio CARACAL_GATEWAY_PLAINTEXT=true start 1 "$name-$mode" "$gw" gateway
		fi
		url=127.0.0.1:180${port}5/benchai/chat/completions
		flags=(-key "$GW_KEY") ;;
	esac
	wait_port "${url%%/*}"
	if [ "$mode" = tls ]; then url=https://$url; flags+=(-insecure); else url=http://$url; fi
	measure "$name" "$mode" "$url" "${flags[@]}"
	stop_last
}

ROUNDS=${PEERS_ROUNDS:-1}
for round in $(seq 1 "$ROUNDS"); do
	ROUND=$round
	for mode in ${PEERS_MODES:-plain tls}; do
		for p in $ONLY; do run_peer "$p" "$mode"; done
	done
done

{
	echo "# scripts/peers/run.sh  $(date -u +%Y-%m-%dT%H:%MZ)  rate=$RATE/s duration=$DUR connections=$CONNS rounds=$ROUNDS (peers interleaved in each round)"
	echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3)"
	echo "# µs/req and ctxsw/req: median over rounds; ×peer: the ratio of process µs/req to that peer's in the same round, median [min-max] over rounds"
	python3 - "$RESULTS" <<'PY'
import statistics as st, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}   # (name, mode) -> {round: row}
order = []
for r in rows:
    k = (r[0], r[1])
    if k not in by:
        by[k] = {}
        order.append(k)
    by[k][r[10]] = r
def med(k, i):
    return st.median(float(r[i]) for r in by[k].values())
def ratio(k, peer):
    b = by.get((peer, k[1]))
    if not b:
        return "-"
    xs = [float(r[5]) / float(b[rd][5]) for rd, r in by[k].items() if rd in b and float(b[rd][5]) > 0]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{st.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"
# user µs/req: the process's user time alone (a change to the proxy's own code shows
# there first; system time is mostly the kernel's loopback work and varies more).
base = any(k[0] == "gateway-base" for k in order)
print(f"{'peer':<13} {'mode':<5} {'ok':>8} {'err':>5} {'core1 µs/req':>12} {'proc µs/req':>11} {'user µs/req':>11} {'ctxsw/req':>9} {'×haproxy':>17} {'×nginx':>17} {'×minproxy':>17}"
      + (f" {'×gateway-base':>17}" if base else "") + f" {'p99 µs':>8}")
for k in order:
    ok = sum(int(r[2]) for r in by[k].values())
    err = sum(int(r[3]) for r in by[k].values())
    print(f"{k[0]:<13} {k[1]:<5} {ok:>8} {err:>5} {med(k, 4):>12.1f} {med(k, 5):>11.1f} {med(k, 11):>11.1f} {med(k, 9):>9.2f} {ratio(k, 'haproxy'):>17} {ratio(k, 'nginx'):>17} {ratio(k, 'minproxy'):>17}"
          + (f" {ratio(k, 'gateway-base'):>17}" if base else "") + f" {med(k, 8):>8.0f}")
PY
	[ -f "$WORK/rtt.txt" ] && sed 's/^/# /' "$WORK/rtt.txt"
} | tee "$OUT"
