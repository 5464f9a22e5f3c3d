# The fault suite (faults/): private Kafka, Redis and PostgreSQL killed -9,
# stopped and restarted empty under steady load, then every count checked.
# Not part of `make test`; its short, non-destructive part (spool restart,
# torn records, strict-mode recovery, reconcile and snapshot/restore/replay
# against the shared services) is, through the packages' own tests.
FAULT_OUTAGE ?= 30s

.PHONY: test-faults test-faults-short
test-faults:
	CARACAL_FAULTS=1 CARACAL_INTEGRATION=1 CARACAL_FAULT_OUTAGE=$(FAULT_OUTAGE) \
		go test -count=1 -timeout 30m -v ./faults/

test-faults-short:
	CARACAL_INTEGRATION=1 go test -count=1 ./gateway/spool/ ./gateway/meter/ ./consumers/recovery/
