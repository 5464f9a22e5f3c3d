# Performance targets (included by the Makefile). Method: BENCHMARKS.md.
# Everything is bounded in time and runs on loopback only.
.PHONY: bench bench-smoke bench-peers load-1k load-10k

BENCH_PKGS = $(shell find . -name '*_timing_test.go' -not -path './.git/*' -exec dirname {} \; | sort -u)
BENCH_ENV = set -a; eval "$$(scripts/services.sh env)"; set +a; export CARACAL_INTEGRATION=1

# benchstat-comparable output in bench.txt (benchstat old.txt bench.txt).
bench:
	scripts/services.sh up
	$(BENCH_ENV); $(GO) test -run '^$$' -bench . -benchmem -count 6 -timeout 60m $(BENCH_PKGS) | tee bench.txt

# Fast (< 2 min), no timing thresholds: fails when the hot path allocates
# or a harness breaks. make test calls it.
bench-smoke:
	scripts/services.sh up
	$(BENCH_ENV); bench/smoke.sh

# CPU per request vs HAProxy, nginx and a minimal fasthttp proxy, plain and
# TLS, pinned cores (10 s per peer): table in bench-peers.txt.
bench-peers:
	scripts/services.sh up
	scripts/peers/run.sh

# The guide's tiers end to end against `caracal dev`.
load-1k:
	loadtest/tier.sh 1k

load-10k:
	loadtest/tier.sh 10k
