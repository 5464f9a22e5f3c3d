// Package faults is the fault suite: a gateway, a ledger writer and a
// metrics aggregator under steady load against private instances of Kafka,
// Redis and PostgreSQL that the tests kill -9, stop and restart (empty),
// followed by the counts: requests answered 2xx == requests the mock
// upstream served == ledger rows, no duplicate request ids, Redis totals ==
// ledger sums, the ledger verifies.
//
// The services are private (own ports and data directories, started from the
// same binaries as scripts/services.sh), so the shared ones other tests use
// are never disturbed. Run with `make test-faults` (CARACAL_FAULTS=1);
// CARACAL_FAULT_OUTAGE sets how long each service stays down (default 30s).
package faults
