// Package faults is the fault suite: a gateway, a ledger writer and a
// metrics aggregator under steady load against private instances of Kafka,
// Redis and PostgreSQL that the tests kill -9, stop and restart (empty),
// followed by the counts: requests answered 2xx == requests the mock
// upstream served == ledger rows (strict mode exactly; default mode with a
// gateway killed within the documented bound, printed), no duplicate event
// or request ids, Redis totals == ledger sums (reconcile-free: plus exactly
// the cost of records Kafka holds twice, which only a gateway crash makes;
// then after `caracal reconcile`), no budget exceeded (every policy of the
// run: ledger spend <= limit + the documented overshoot bound; the load
// reaches or approaches the limits), every entry sealed under a verified
// checkpoint, and `caracal merkle verify` passes. TestSnapshotRestoreReplay
// runs the snapshot recovery with the real commands and compares every
// window of every agent and the ledger root with the undisturbed run.
//
// The services are private (own ports and data directories, started from the
// same binaries as scripts/services.sh), so the shared ones other tests use
// are never disturbed. Run with `make test-faults` (CARACAL_FAULTS=1);
// CARACAL_FAULT_OUTAGE sets how long each service stays down (default 30s).
// docs/runbook.md lists which runbook procedures each test follows.
package faults
