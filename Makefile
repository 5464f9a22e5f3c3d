# Caracal: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/caracal
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# make test stays well under 20 minutes; soak, fuzz and load runs have their own targets.
TEST_TIMEOUT ?= 15m

.PHONY: build run services services-down test test-go test-unit check

# Fragments: deploy (chart/manifest validation), bench (benchmarks, load,
# peers), faults (fault suite). make test also runs their quick checks.
-include mk/*.mk
TEST_EXTRA := $(if $(wildcard mk/deploy.mk),deploy-check) $(if $(wildcard mk/bench.mk),bench-smoke) $(if $(wildcard mk/faults.mk),test-faults-quick)

build:
	$(GO) build -o $(BIN) ./cmd/caracal

services:
	scripts/services.sh up

services-down:
	scripts/services.sh down

# One command: build, start local Postgres and Redis (and Kafka when it can be
# installed), migrate, and run the whole stack in one process.
run: build
	scripts/services.sh up pg redis
	$(BIN) db migrate up
	exec $(BIN) dev

# Unit tests and integration tests against the real PostgreSQL, Redis and
# Kafka started by scripts/services.sh, then the fragments' quick checks.
test: test-go $(TEST_EXTRA)

test-go:
	scripts/services.sh up
	set -a; eval "$$(scripts/services.sh env)"; set +a; \
	export CARACAL_INTEGRATION=1; \
	if [ -z "$${CARACAL_TEST_KAFKA_BROKERS:-}" ]; then \
	  echo "test: Kafka-dependent tests run against an in-process kfake cluster (no real broker)"; \
	else echo "test: Kafka-dependent tests run against Apache Kafka $${CARACAL_TEST_KAFKA_VERSION:-?} at $$CARACAL_TEST_KAFKA_BROKERS"; fi; \
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./... && \
	if [ -z "$${CARACAL_TEST_KAFKA_BROKERS:-}" ]; then echo "test summary: PASS (Kafka tests used kfake, not a real broker)"; \
	else echo "test summary: PASS (real PostgreSQL, Redis and Apache Kafka $${CARACAL_TEST_KAFKA_VERSION:-})"; fi

# Unit tests only: no services needed.
test-unit:
	$(GO) test -count=1 ./...

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@$(GO) mod tidy && git diff --exit-code -- go.mod go.sum || { echo "go.mod/go.sum not tidy"; exit 1; }
	@if [ -f mk/security.mk ]; then $(MAKE) --no-print-directory gosec govulncheck-gate; fi
	@echo "check: PASS"

