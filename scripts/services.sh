#!/usr/bin/env bash
# scripts/services.sh — install and run the real services Caracal's tests and
# `make run` need: PostgreSQL 15, Redis 7 and Apache Kafka 4.x (KRaft, single node).
#
# Target: a Debian 12 machine, run as root, no Docker, no systemd (daemons are
# started directly). Every service binds to 127.0.0.1 only.
#
# Usage:
#   scripts/services.sh up [pg|redis|kafka|pgbouncer ...]  start (and install) services; default all
#   scripts/services.sh down                      stop Kafka, Redis, and Postgres if we started it
#   scripts/services.sh status                    one line per service
#   scripts/services.sh env                       shell exports for the tests (eval "$(... env)")
#
# Environment:
#   CARACAL_STATE_DIR     state, pid files, Kafka data, logs   (default /tmp/caracal-services)
#   CARACAL_CACHE_DIR     Kafka jars, outside the repo         (default $HOME/.cache/caracal)
#   KAFKA_VERSION         Kafka version to use (default: newest cached/resolvable of
#                         4.1.1 4.1.0 4.0.1 4.0.0)
#   CARACAL_REQUIRE_KAFKA 1 = Kafka being unavailable is an error (CI); otherwise tests
#                         fall back to in-process kfake
#   CARACAL_PG_VERSION    PostgreSQL major version (default 15); cluster name CARACAL_PG_CLUSTER (main)
#   CARACAL_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   CARACAL_MVN_TIMEOUT   seconds allowed for one mvn resolve (default 600)
#
# PgBouncer (apt package pgbouncer, run as user postgres) listens on 127.0.0.1:6432 in
# transaction pooling mode in front of the local PostgreSQL: databases caracal,
# caracal_test and a `*` fallback so per-test databases work; its ini and userlist live
# in $CARACAL_STATE_DIR/pgbouncer. When it cannot be installed, `up` says so in one line
# and `env` leaves CARACAL_TEST_PGBOUNCER_DSN empty.
#
# Exit status of `up`: 0 when every requested service runs (or Kafka is merely
# unavailable from Maven and CARACAL_REQUIRE_KAFKA is not 1), 1 otherwise.
set -euo pipefail

STATE=${CARACAL_STATE_DIR:-/tmp/caracal-services}
CACHE=${CARACAL_CACHE_DIR:-$HOME/.cache/caracal}
LOGS=$STATE/logs

HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093

PG_VERSION=${CARACAL_PG_VERSION:-15}
PG_CLUSTER=${CARACAL_PG_CLUSTER:-main}
PG_USER=caracal
PG_PASSWORD=caracal
PG_DATABASES=(caracal caracal_test)

KAFKA_CANDIDATES=(4.1.1 4.1.0 4.0.1 4.0.0)
KAFKA_VERSION=${KAFKA_VERSION:-}   # empty: chosen from KAFKA_CANDIDATES
LOG4J_VERSION=${CARACAL_LOG4J_VERSION:-2.24.3}
KAFKA_START_TIMEOUT=${CARACAL_KAFKA_START_TIMEOUT:-90}
MVN_TIMEOUT=${CARACAL_MVN_TIMEOUT:-600}
REQUIRE_KAFKA=${CARACAL_REQUIRE_KAFKA:-0}

KAFKA_PIDFILE=$STATE/kafka.pid
KAFKA_VERSION_FILE=$STATE/kafka.version
KAFKA_CONF_DIR=$STATE/kafka
KAFKA_DATA=$STATE/kafka-data
REDIS_PIDFILE=$STATE/redis.pid
PGB_PORT=6432
PGB_DIR=$STATE/pgbouncer
PGB_PIDFILE=$PGB_DIR/pgbouncer.pid
PG_MARKER=$STATE/postgres.started-by-us

JAVA=${JAVA:-java}
KAFKA_MVN_LOG=''
APT_UPDATED=0

log() { printf '%s\n' "$*"; }
err() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- helpers

# port_open PORT: true when something accepts TCP on 127.0.0.1:PORT (1 s bound).
port_open() {
	timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# pid_alive PID PATTERN: the process exists and its command line contains PATTERN.
pid_alive() {
	local pid=$1 pat=$2 cmd
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *"$pat"* ]]
}

read_pidfile() {
	if [[ -f $1 ]]; then head -n1 "$1" 2>/dev/null | tr -dc '0-9' || true; fi
}

# show_tail FILE...: last lines of logs, for failure messages.
show_tail() {
	local f
	for f in "$@"; do
		[[ -s $f ]] || continue
		err "---- last lines of $f ----"
		tail -n 25 "$f" >&2 || true
	done
}

need_root() {
	if [[ $(id -u) -ne 0 ]]; then
		err "services: $1 needs root (run as root)"
		return 1
	fi
}

# apt_install PKG...: install missing packages; apt-get update only once, only if needed.
apt_install() {
	need_root "installing $*" || return 1
	mkdir -p "$LOGS"
	log "services: installing $* (apt-get; log in $LOGS/apt.log)"
	# Keep the packages' own init scripts from starting daemons during install:
	# this script starts them itself, bound to 127.0.0.1.
	local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
	fi
	if [[ $APT_UPDATED -eq 0 ]]; then
		if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q \
			>>"$LOGS/apt.log" 2>&1 9>&-; then
			APT_UPDATED=1
		else
			rc=1
		fi
	fi
	if [[ $rc -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
			--no-install-recommends "$@" >>"$LOGS/apt.log" 2>&1 9>&- || rc=1
	fi
	[[ $created_policy -eq 1 ]] && rm -f "$policy"
	if [[ $rc -ne 0 ]]; then
		err "services: apt-get install $* failed"
		show_tail "$LOGS/apt.log"
	fi
	return "$rc"
}

as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	elif [[ $(id -un) == postgres ]]; then
		"$@"
	else
		sudo -n -u postgres -- "$@"
	fi
}

take_lock() {
	mkdir -p "$STATE" "$LOGS"
	exec 9>"$STATE/.lock"
	if ! flock -w 600 9; then
		err "services: another services.sh holds $STATE/.lock for more than 600 s"
		exit 1
	fi
}

# ---------------------------------------------------------------- PostgreSQL

PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PG_CONF_DIR=/etc/postgresql/$PG_VERSION/$PG_CLUSTER

pg_ready() { pg_isready -q -h "$HOST" -p "$PG_PORT" -t 1 >/dev/null 2>&1; }

pg_setup_db() {
	local sql db
	sql="DO \$\$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END\$\$;
-- Tests drop their databases WITH (FORCE), which signals leftover backends.
GRANT pg_signal_backend TO $PG_USER;"
	for db in "${PG_DATABASES[@]}"; do
		sql+="
SELECT 'CREATE DATABASE $db OWNER $PG_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\\gexec
ALTER DATABASE $db OWNER TO $PG_USER;"
	done
	if ! printf '%s\n' "$sql" | as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres \
		>"$LOGS/pg-setup.log" 2>&1; then
		err "postgres: creating role/databases failed"
		show_tail "$LOGS/pg-setup.log"
		return 1
	fi
	# Prove the DSN the tests use actually works (TCP + password).
	if ! PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -q -h "$HOST" -p "$PG_PORT" -U "$PG_USER" \
		-d caracal_test -tAc 'SELECT 1' >/dev/null 2>>"$LOGS/pg-setup.log"; then
		err "postgres: cannot log in as $PG_USER@$HOST:$PG_PORT/caracal_test"
		show_tail "$LOGS/pg-setup.log"
		return 1
	fi
}

pg_cluster_running() {
	# pg_ctlcluster status: 0 running, 3 stopped, other = error
	pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1
}

pg_remove_stale_pid() {
	local datadir pidfile pid
	datadir=$(cat "$PG_CONF_DIR/data_directory" 2>/dev/null || true)
	[[ -n $datadir ]] || datadir=/var/lib/postgresql/$PG_VERSION/$PG_CLUSTER
	pidfile=$datadir/postmaster.pid
	[[ -f $pidfile ]] || return 0
	pid=$(read_pidfile "$pidfile")
	if ! pid_alive "$pid" postgres; then
		log "postgres: removing stale $pidfile"
		rm -f "$pidfile"
	fi
}

pg_up() {
	if [[ ! -x $PG_BIN/postgres ]] || ! command -v pg_ctlcluster >/dev/null || ! command -v pg_isready >/dev/null; then
		apt_install postgresql || return 1
		[[ -x $PG_BIN/postgres ]] || {
			err "postgres: $PG_BIN/postgres missing after install (is PostgreSQL $PG_VERSION the distribution's version?)"
			return 1
		}
	fi

	if ! pg_ready; then
		need_root "starting PostgreSQL" || return 1
		if [[ ! -f $PG_CONF_DIR/postgresql.conf ]]; then
			log "postgres: creating cluster $PG_VERSION/$PG_CLUSTER"
			pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >"$LOGS/pg-create.log" 2>&1 9>&- || {
				err "postgres: pg_createcluster failed"
				show_tail "$LOGS/pg-create.log"
				return 1
			}
		fi
		# Loopback only, fixed port. conf.d is included by Debian's postgresql.conf.
		mkdir -p "$PG_CONF_DIR/conf.d"
		local want
		want=$(printf "# written by caracal scripts/services.sh\nlisten_addresses = '%s'\nport = %s\n" "$HOST" "$PG_PORT")
		if [[ $(cat "$PG_CONF_DIR/conf.d/caracal.conf" 2>/dev/null || true) != "$want" ]]; then
			printf '%s\n' "$want" >"$PG_CONF_DIR/conf.d/caracal.conf"
		fi

		if pg_cluster_running; then
			# Running but not answering on 127.0.0.1:5432: give it a moment, then restart
			# so the listen settings above apply.
			local i
			for ((i = 0; i < 10; i++)); do pg_ready && break; sleep 0.5; done
			if ! pg_ready; then
				log "postgres: cluster $PG_VERSION/$PG_CLUSTER runs but not on $HOST:$PG_PORT; restarting it"
				pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart -m fast >"$LOGS/pg-start.log" 2>&1 9>&- || true
				touch "$PG_MARKER"
			fi
		else
			pg_remove_stale_pid
			if ! pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >"$LOGS/pg-start.log" 2>&1 9>&-; then
				err "postgres: pg_ctlcluster $PG_VERSION $PG_CLUSTER start failed"
				show_tail "$LOGS/pg-start.log" "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
				return 1
			fi
			touch "$PG_MARKER"
		fi
		local i
		for ((i = 0; i < 60; i++)); do pg_ready && break; sleep 0.5; done
		if ! pg_ready; then
			err "postgres: not ready on $HOST:$PG_PORT after 30 s"
			show_tail "$LOGS/pg-start.log" "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
			return 1
		fi
		pg_setup_db || return 1
		log "postgres: PostgreSQL $PG_VERSION on $HOST:$PG_PORT (started; databases ${PG_DATABASES[*]} owned by $PG_USER)"
	else
		pg_setup_db || return 1
		log "postgres: PostgreSQL $PG_VERSION on $HOST:$PG_PORT (already running)"
	fi
}

pg_down() {
	if [[ ! -f $PG_MARKER ]]; then
		if pg_ready; then
			log "postgres: left running (not started by services.sh)"
		else
			log "postgres: already stopped"
		fi
		return 0
	fi
	if pg_cluster_running; then
		if pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast >"$LOGS/pg-stop.log" 2>&1 9>&-; then
			log "postgres: stopped cluster $PG_VERSION/$PG_CLUSTER"
		else
			err "postgres: stopping cluster $PG_VERSION/$PG_CLUSTER failed"
			show_tail "$LOGS/pg-stop.log"
			return 1
		fi
	else
		log "postgres: already stopped"
	fi
	rm -f "$PG_MARKER"
}

# ---------------------------------------------------------------- Redis

redis_ping() { [[ $(timeout 2 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_version() {
	timeout 2 redis-cli -h "$HOST" -p "$REDIS_PORT" info server 2>/dev/null |
		sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p' || true
}

redis_up() {
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		apt_install redis-server || return 1
	fi
	if redis_ping; then
		log "redis: Redis $(redis_version) on $HOST:$REDIS_PORT (already running)"
		return 0
	fi
	if port_open "$REDIS_PORT"; then
		err "redis: $HOST:$REDIS_PORT is taken by something that does not answer PING"
		return 1
	fi
	mkdir -p "$STATE/redis"
	rm -f "$REDIS_PIDFILE"
	if ! redis-server --port "$REDIS_PORT" --bind "$HOST" --daemonize yes \
		--pidfile "$REDIS_PIDFILE" --dir "$STATE/redis" --logfile "$LOGS/redis.log" \
		--save '' --appendonly no 9>&-; then
		err "redis: redis-server failed to start"
		show_tail "$LOGS/redis.log"
		return 1
	fi
	local i
	for ((i = 0; i < 40; i++)); do redis_ping && break; sleep 0.25; done
	if ! redis_ping; then
		err "redis: no PONG on $HOST:$REDIS_PORT after 10 s"
		show_tail "$LOGS/redis.log"
		return 1
	fi
	log "redis: Redis $(redis_version) on $HOST:$REDIS_PORT (started)"
}

redis_down() {
	local pid
	pid=$(read_pidfile "$REDIS_PIDFILE")
	if pid_alive "$pid" redis-server; then
		timeout 10 redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 40; i++)); do pid_alive "$pid" redis-server || break; sleep 0.25; done
		if pid_alive "$pid" redis-server; then kill -KILL "$pid" 2>/dev/null || true; fi
		rm -f "$REDIS_PIDFILE"
		log "redis: stopped"
	elif redis_ping; then
		rm -f "$REDIS_PIDFILE"
		log "redis: left running (not started by services.sh)"
	else
		rm -f "$REDIS_PIDFILE"
		log "redis: already stopped"
	fi
}

# ---------------------------------------------------------------- Kafka

kafka_home() { printf '%s/kafka-%s' "$CACHE" "$1"; }
kafka_cached() { [[ -f $(kafka_home "$1")/.complete ]]; }

# kafka_pid: pid of *our* broker (pid file, or found by its config path), empty if none.
kafka_pid() {
	local pid pat="$KAFKA_CONF_DIR/server.properties" p
	pid=$(read_pidfile "$KAFKA_PIDFILE")
	if pid_alive "$pid" "kafka.Kafka $pat"; then
		printf '%s' "$pid"
		return 0
	fi
	# Pid file missing or stale: look for a broker running with our config.
	while IFS= read -r p; do
		p=${p#/proc/}
		p=${p%/cmdline}
		if pid_alive "$p" "kafka.Kafka $pat"; then
			printf '%s\n' "$p" >"$KAFKA_PIDFILE" 2>/dev/null || true
			printf '%s' "$p"
			return 0
		fi
	done < <(grep -lzxF -- "$pat" /proc/[0-9]*/cmdline 2>/dev/null || true)
	return 0
}

# ensure_java: Kafka 4 brokers need Java 17+.
ensure_java() {
	local major
	if command -v "$JAVA" >/dev/null 2>&1; then
		major=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
		if [[ ${major:-0} -ge 17 ]]; then return 0; fi
	fi
	apt_install openjdk-17-jre-headless || return 1
	JAVA=/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)/bin/java
	[[ -x $JAVA ]]
}

# kafka_fetch VERSION: resolve the broker's jars with Maven into the cache.
# Returns 0 ok, 2 version not found, 1 other failure (network, mvn missing, ...).
kafka_fetch() {
	local v=$1 home libs tmp mlog
	home=$(kafka_home "$v")
	libs=$home/libs
	mkdir -p "$home"
	mlog=$home/mvn.log
	cat >"$home/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- written by caracal scripts/services.sh: the classpath of a single-node Kafka broker -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>caracal.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$v</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$v</version>
    </dependency>
    <!-- command-line tools (TopicCommand, BrokerApiVersionsCommand, ...) -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$v</version>
    </dependency>
    <!-- slf4j 1.x -> log4j2 binding; Kafka 4 logs through log4j2 -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
	if ! command -v mvn >/dev/null 2>&1; then
		apt_install maven || return 1
	fi
	tmp=$home/libs.tmp.$$
	rm -rf "$tmp"
	log "kafka: resolving org.apache.kafka:kafka_2.13:$v with Maven (log in $mlog)"
	if ! timeout "$MVN_TIMEOUT" mvn -B -q -Dstyle.color=never -f "$home/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" >"$mlog" 2>&1 9>&-; then
		rm -rf "$tmp"
		if grep -qE "(Could not find artifact|Failure to find) org\.apache\.kafka:[a-z_.0-9-]+:(jar|pom):${v//./\\.}" "$mlog"; then
			return 2
		fi
		return 1
	fi
	# copy-dependencies includes the direct dependency kafka_2.13 itself; check it.
	if [[ ! -f $tmp/kafka_2.13-$v.jar || ! -f $tmp/kafka-clients-$v.jar ]]; then
		err "kafka: Maven finished but kafka_2.13-$v.jar is missing in $tmp"
		rm -rf "$tmp"
		return 1
	fi
	if [[ -f $home/.complete ]]; then
		rm -rf "$tmp" # a concurrent run finished first
	else
		rm -rf "$libs"
		mv "$tmp" "$libs"
		printf '%s\n' "$v" >"$home/.complete"
	fi
	return 0
}

# kafka_choose: sets KAFKA_VERSION to a cached (or freshly resolved) version.
# Returns 0 ok, 1 unavailable.
kafka_choose() {
	local v rc candidates
	if [[ -n $KAFKA_VERSION ]]; then
		candidates=("$KAFKA_VERSION")
	else
		candidates=("${KAFKA_CANDIDATES[@]}")
	fi
	for v in "${candidates[@]}"; do
		if kafka_cached "$v"; then
			KAFKA_VERSION=$v
			return 0
		fi
	done
	for v in "${candidates[@]}"; do
		rc=0
		kafka_fetch "$v" || rc=$?
		case $rc in
		0)
			KAFKA_VERSION=$v
			return 0
			;;
		2) log "kafka: version $v not found in Maven, trying the next one" ;;
		*)
			KAFKA_MVN_LOG=$(kafka_home "$v")/mvn.log
			return 1 # network / tooling failure: other versions would fail the same way
			;;
		esac
	done
	return 1
}

kafka_write_config() {
	mkdir -p "$KAFKA_CONF_DIR" "$KAFKA_DATA" "$LOGS"
	cat >"$KAFKA_CONF_DIR/server.properties" <<EOF
# written by caracal scripts/services.sh — single-node KRaft broker+controller
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
	cat >"$KAFKA_CONF_DIR/log4j2.properties" <<EOF
# written by caracal scripts/services.sh
status = warn
name = caracal-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $LOGS/kafka.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.requestlog.name = kafka.request.logger
logger.requestlog.level = WARN
EOF
	# one-shot tools (StorageTool): warnings to stderr, never into the broker's log
	cat >"$KAFKA_CONF_DIR/log4j2-tools.properties" <<EOF
status = warn
name = caracal-kafka-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# kafka_java CLASS ARGS...: run a Kafka class on the cached classpath (foreground).
kafka_java() {
	"$JAVA" -Xmx512m -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$KAFKA_CONF_DIR/log4j2-tools.properties" \
		-cp "$(kafka_home "$KAFKA_VERSION")/libs/*" "$@"
}

kafka_format() {
	[[ -f $KAFKA_DATA/meta.properties ]] && return 0
	local id
	id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka-format.log" | tail -n1 | tr -d '[:space:]')
	if [[ ! $id =~ ^[A-Za-z0-9_-]{22}$ ]]; then
		err "kafka: could not generate a cluster id"
		show_tail "$LOGS/kafka-format.log"
		return 1
	fi
	if ! kafka_java kafka.tools.StorageTool format -t "$id" -c "$KAFKA_CONF_DIR/server.properties" \
		>>"$LOGS/kafka-format.log" 2>&1 9>&-; then
		err "kafka: formatting $KAFKA_DATA failed"
		show_tail "$LOGS/kafka-format.log"
		return 1
	fi
	log "kafka: formatted $KAFKA_DATA (cluster id $id)"
}

kafka_broker_version() {
	# AppInfoParser logs "Kafka version: X" at start; fall back to the chosen jars.
	local v
	v=$(sed -n 's/.*Kafka version: \([^ ]*\).*/\1/p' "$LOGS/kafka.log" 2>/dev/null | tail -n1 || true)
	printf '%s' "${v:-$KAFKA_VERSION}"
}

# kafka_up: 0 running, 1 failed, 2 unavailable (cannot resolve from Maven).
kafka_up() {
	local pid
	pid=$(kafka_pid)
	if [[ -n $pid ]] && port_open "$KAFKA_PORT"; then
		log "kafka: Apache Kafka $(cat "$KAFKA_VERSION_FILE" 2>/dev/null || echo unknown) on $HOST:$KAFKA_PORT (already running)"
		return 0
	fi
	if [[ -n $pid ]]; then
		# Our process exists but the port is not open yet: it may still be starting.
		log "kafka: broker pid $pid is starting; waiting"
	else
		rm -f "$KAFKA_PIDFILE"
		if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
			err "kafka: $HOST:$KAFKA_PORT or :$KAFKA_CONTROLLER_PORT is already in use by a process services.sh did not start (state dir $STATE)"
			return 1
		fi
		ensure_java || {
			err "kafka: no Java 17+ available"
			return 1
		}
		if ! kafka_choose; then
			return 2
		fi
		kafka_write_config
		kafka_format || return 1
		# Keep the previous run's log for post-mortems; start a fresh one.
		[[ -f $LOGS/kafka.log ]] && mv -f "$LOGS/kafka.log" "$LOGS/kafka.log.1"
		: >"$LOGS/kafka.log"
		printf '%s\n' "$KAFKA_VERSION" >"$KAFKA_VERSION_FILE"
		local home
		home=$(kafka_home "$KAFKA_VERSION")
		(
			cd "$STATE"
			exec setsid nohup "$JAVA" -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
				-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
				-Djava.awt.headless=true \
				-Dlog4j2.configurationFile="$KAFKA_CONF_DIR/log4j2.properties" \
				-Dkafka.logs.dir="$LOGS" \
				-cp "$home/libs/*" kafka.Kafka "$KAFKA_CONF_DIR/server.properties" \
				>"$LOGS/kafka.out" 2>&1 </dev/null 9>&-
		) &
		pid=$!
		printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
	fi

	local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) started=0
	while ((SECONDS < deadline)); do
		if [[ -z $(kafka_pid) ]]; then
			err "kafka: broker exited during start-up"
			show_tail "$LOGS/kafka.out" "$LOGS/kafka.log"
			rm -f "$KAFKA_PIDFILE"
			return 1
		fi
		if grep -q "Kafka Server started" "$LOGS/kafka.log" 2>/dev/null && port_open "$KAFKA_PORT"; then
			started=1
			break
		fi
		sleep 0.5
	done
	if [[ $started -ne 1 ]]; then
		err "kafka: broker not ready on $HOST:$KAFKA_PORT after ${KAFKA_START_TIMEOUT} s (pid $(kafka_pid); still running, see logs)"
		show_tail "$LOGS/kafka.out" "$LOGS/kafka.log"
		return 1
	fi
	local v
	v=$(kafka_broker_version)
	printf '%s\n' "$v" >"$KAFKA_VERSION_FILE"
	log "kafka: Apache Kafka $v on $HOST:$KAFKA_PORT"
}

kafka_down() {
	local pid i
	pid=$(kafka_pid)
	if [[ -z $pid ]]; then
		rm -f "$KAFKA_PIDFILE"
		log "kafka: already stopped"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 120; i++)); do
		pid_alive "$pid" kafka.Kafka || break
		sleep 0.5
	done
	if pid_alive "$pid" kafka.Kafka; then
		err "kafka: pid $pid ignored SIGTERM for 60 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$KAFKA_PIDFILE"
	log "kafka: stopped (data kept in $KAFKA_DATA)"
}

kafka_running() { [[ -n $(kafka_pid) ]] && port_open "$KAFKA_PORT"; }

# ---------------------------------------------------------------- PgBouncer

pgb_ready() {
	PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 timeout 5 psql -X -q -h "$HOST" -p "$PGB_PORT" \
		-U "$PG_USER" -d caracal_test -tAc 'SELECT 1' >/dev/null 2>&1
}

pgb_pid() {
	local pid
	pid=$(read_pidfile "$PGB_PIDFILE")
	if pid_alive "$pid" pgbouncer; then printf '%s' "$pid"; fi
	return 0
}

pgb_running() { [[ -n $(pgb_pid) ]] && port_open "$PGB_PORT"; }

pgb_bin() { command -v pgbouncer 2>/dev/null || { [[ -x /usr/sbin/pgbouncer ]] && echo /usr/sbin/pgbouncer; }; }

pgb_write_config() {
	mkdir -p "$PGB_DIR"
	# userlist: a plain password lets PgBouncer answer SCRAM towards both sides.
	printf '"%s" "%s"\n' "$PG_USER" "$PG_PASSWORD" >"$PGB_DIR/userlist.txt"
	cat >"$PGB_DIR/pgbouncer.ini" <<EOF
; written by caracal scripts/services.sh — transaction pooling in front of $HOST:$PG_PORT
[databases]
caracal = host=$HOST port=$PG_PORT dbname=caracal
caracal_test = host=$HOST port=$PG_PORT dbname=caracal_test
* = host=$HOST port=$PG_PORT

[pgbouncer]
listen_addr = $HOST
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
max_db_connections = 60
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_PIDFILE
admin_users = $PG_USER
EOF
	# PgBouncer refuses to run as root: it runs as postgres, which owns its directory.
	if [[ $(id -u) -eq 0 ]]; then
		chown -R postgres: "$PGB_DIR"
	fi
	chmod 600 "$PGB_DIR/userlist.txt"
}

pgb_up() {
	local bin pid i
	bin=$(pgb_bin || true)
	if [[ -z $bin ]]; then
		if ! apt_install pgbouncer || [[ -z $(pgb_bin || true) ]]; then
			log "pgbouncer: cannot be installed (apt-get install pgbouncer failed); CARACAL_TEST_PGBOUNCER_DSN stays empty"
			return 1
		fi
		bin=$(pgb_bin)
	fi
	if pgb_running && pgb_ready; then
		log "pgbouncer: $("$bin" --version 2>/dev/null | head -n1) on $HOST:$PGB_PORT (already running)"
		return 0
	fi
	pid=$(pgb_pid)
	if [[ -n $pid ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 20; i++)); do pid_alive "$pid" pgbouncer || break; sleep 0.25; done
	fi
	if port_open "$PGB_PORT"; then
		err "pgbouncer: $HOST:$PGB_PORT is taken by a process services.sh did not start"
		return 1
	fi
	rm -f "$PGB_PIDFILE"
	pgb_write_config
	local -a pgb_cmd=("$bin" -d "$PGB_DIR/pgbouncer.ini")
	if [[ $(id -u) -eq 0 ]]; then
		pgb_cmd=(runuser -u postgres -- "${pgb_cmd[@]}")
	fi
	if ! "${pgb_cmd[@]}" >"$LOGS/pgbouncer.out" 2>&1 9>&-; then
		err "pgbouncer: failed to start"
		show_tail "$LOGS/pgbouncer.out" "$PGB_DIR/pgbouncer.log"
		return 1
	fi
	for ((i = 0; i < 40; i++)); do pgb_ready && break; sleep 0.25; done
	if ! pgb_ready; then
		err "pgbouncer: cannot log in as $PG_USER through $HOST:$PGB_PORT after 10 s"
		show_tail "$LOGS/pgbouncer.out" "$PGB_DIR/pgbouncer.log"
		return 1
	fi
	log "pgbouncer: $("$bin" --version 2>/dev/null | head -n1) on $HOST:$PGB_PORT (started; pool_mode=transaction)"
}

pgb_down() {
	local pid i
	pid=$(pgb_pid)
	if [[ -z $pid ]]; then
		rm -f "$PGB_PIDFILE"
		log "pgbouncer: already stopped"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 40; i++)); do pid_alive "$pid" pgbouncer || break; sleep 0.25; done
	if pid_alive "$pid" pgbouncer; then kill -KILL "$pid" 2>/dev/null || true; fi
	rm -f "$PGB_PIDFILE"
	log "pgbouncer: stopped"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local want=("$@") s failed=0 rc
	[[ ${#want[@]} -gt 0 ]] || want=(pg redis kafka pgbouncer)
	for s in "${want[@]}"; do
		case $s in
		pg | postgres | postgresql | redis | kafka | pgbouncer) ;;
		*)
			err "services: unknown service '$s' (pg, redis, kafka, pgbouncer)"
			exit 2
			;;
		esac
	done
	take_lock
	# Test tools: sslscan checks the gateway's TLS posture in the tests (a
	# crypto/tls scan runs too, so a failed install is not fatal).
	if [[ $# -eq 0 ]] && ! command -v sslscan >/dev/null 2>&1; then
		apt_install sslscan || log "services: sslscan could not be installed; the TLS scan test uses crypto/tls alone"
	fi
	for s in "${want[@]}"; do
		case $s in
		pg | postgres | postgresql) pg_up || failed=1 ;;
		redis) redis_up || failed=1 ;;
		pgbouncer) pgb_up || failed=1 ;;
		kafka)
			rc=0
			kafka_up || rc=$?
			if [[ $rc -eq 2 ]]; then
				if [[ $REQUIRE_KAFKA == 1 ]]; then
					[[ -n $KAFKA_MVN_LOG ]] && show_tail "$KAFKA_MVN_LOG"
					err "services: kafka unavailable (cannot resolve org.apache.kafka:kafka_2.13 from Maven) and CARACAL_REQUIRE_KAFKA=1"
					failed=1
				else
					log "services: kafka unavailable (cannot resolve org.apache.kafka:kafka_2.13 from Maven); Kafka tests will use in-process kfake"
				fi
			elif [[ $rc -ne 0 ]]; then
				failed=1
			fi
			;;
		esac
	done
	return "$failed"
}

cmd_down() {
	local failed=0
	take_lock
	pgb_down || failed=1
	kafka_down || failed=1
	redis_down || failed=1
	pg_down || failed=1
	return "$failed"
}

cmd_status() {
	if pg_ready; then
		log "postgres: up   $HOST:$PG_PORT"
	else
		log "postgres: down $HOST:$PG_PORT"
	fi
	if redis_ping; then
		log "redis:    up   $HOST:$REDIS_PORT"
	else
		log "redis:    down $HOST:$REDIS_PORT"
	fi
	if kafka_running; then
		log "kafka:    up   $HOST:$KAFKA_PORT (Apache Kafka $(cat "$KAFKA_VERSION_FILE" 2>/dev/null || echo unknown))"
	elif port_open "$KAFKA_PORT"; then
		log "kafka:    up   $HOST:$KAFKA_PORT (not started by services.sh)"
	else
		log "kafka:    down $HOST:$KAFKA_PORT"
	fi
	if pgb_running; then
		log "pgbouncer: up  $HOST:$PGB_PORT (pool_mode=transaction)"
	else
		log "pgbouncer: down $HOST:$PGB_PORT"
	fi
}

cmd_env() {
	local brokers='' version=''
	if kafka_running; then
		brokers=$HOST:$KAFKA_PORT
		version=$(cat "$KAFKA_VERSION_FILE" 2>/dev/null || true)
	elif port_open "$KAFKA_PORT"; then
		brokers=$HOST:$KAFKA_PORT
	fi
	# single quotes: the "?" must not be globbed when the output is eval'ed
	printf "export CARACAL_TEST_PG_DSN='%s'\n" "postgres://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/caracal_test?sslmode=disable"
	printf 'export CARACAL_TEST_REDIS_ADDR=%s\n' "$HOST:$REDIS_PORT"
	printf 'export CARACAL_TEST_KAFKA_BROKERS=%s\n' "$brokers"
	if pgb_running; then
		printf "export CARACAL_TEST_PGBOUNCER_DSN='%s'\n" "postgres://$PG_USER:$PG_PASSWORD@$HOST:$PGB_PORT/caracal_test?sslmode=disable"
	else
		printf "export CARACAL_TEST_PGBOUNCER_DSN=''\n"
	fi
	if [[ -n $version ]]; then
		printf 'export CARACAL_TEST_KAFKA_VERSION=%s\n' "$version"
	fi
}

usage() {
	sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down ;;
	status) cmd_status ;;
	env) cmd_env ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
