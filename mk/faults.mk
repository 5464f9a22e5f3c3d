# The fault suite (faults/): private Kafka, Redis and PostgreSQL killed -9,
# stopped and restarted empty under steady load, then every count checked.
# The whole suite is not part of `make test`; make test runs one fault
# (test-faults-quick: Redis restarted empty) and the non-destructive parts
# (spool restart, torn records, strict-mode recovery, reconcile and
# snapshot/restore/replay) through the packages' own tests.
FAULT_OUTAGE ?= 30s

.PHONY: test-faults test-faults-short test-faults-quick
test-faults:
	CARACAL_FAULTS=1 CARACAL_INTEGRATION=1 CARACAL_FAULT_OUTAGE=$(FAULT_OUTAGE) \
		go test -count=1 -timeout 30m -v ./faults/

test-faults-short:
	CARACAL_INTEGRATION=1 go test -count=1 ./gateway/spool/ ./gateway/meter/ ./consumers/recovery/

# The short fault run inside make test: Redis restarted empty for 5 s under
# steady load (fail closed, reconcile from the ledger, then the full counts).
test-faults-quick:
	set -a; eval "$$(scripts/services.sh env)"; set +a; \
	CARACAL_FAULTS=1 CARACAL_INTEGRATION=1 CARACAL_FAULT_OUTAGE=5s \
		$(GO) test -count=1 -timeout 10m -run '^TestRedisRestartEmpty$$' -v ./faults/ 2>&1 | grep -v '^20[0-9][0-9]/' ; exit $${PIPESTATUS[0]}
