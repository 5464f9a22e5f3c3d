# Security checks (included by the Makefile): fuzzing and static analysis.
# docs/security.md says which promise each fuzz target backs.
.PHONY: fuzz check-security govulncheck govulncheck-gate gosec

# Seconds (or any go test -fuzztime value) per fuzz target.
FUZZTIME ?= 60s
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
GOSEC := github.com/securego/gosec/v2/cmd/gosec@v2.30.0

# package:FuzzTarget, run one after another (go test -fuzz takes one target
# per run). make test replays every corpus (testdata/fuzz and the f.Add
# seeds) as plain tests.
FUZZ_TARGETS := \
	./gateway/auth:FuzzParseCredential \
	./gateway/auth:FuzzJWT \
	./gateway/replay:FuzzReplayHeaders \
	./gateway:FuzzRouteMatch \
	./gateway/ssrf:FuzzCheckURL \
	./gateway/usage:FuzzInspectRequest \
	./gateway/usage:FuzzParseUsageJSON \
	./gateway/usage:FuzzSSEScanner \
	./gateway/spool:FuzzDecodeRecord \
	./gateway/spool:FuzzSpoolSegment \
	./internal/event:FuzzDecodeMetering \
	./internal/event:FuzzDecodeAudit \
	./internal/money:FuzzParse \
	./internal/money:FuzzFormat \
	./internal/config:FuzzLoad \
	./consumers/ledger:FuzzCheckProof \
	./consumers/ledger:FuzzParseCheckpoint \
	./consumers/ledger:FuzzOpenCheckpoint

# A crash is written under the package's testdata/fuzz/<Target>/: commit it
# as a regression seed once fixed.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz: $$pkg $$name for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# govulncheck: no known vulnerability in code we call. It reads a local
# copy of the Go vulnerability database, so vuln.go.dev need not be
# reachable: tools/vulndb (its own module) builds it under VULNDB_DIR from
# the OSV records in golang.org/x/vulndb, fetched through the Go module
# proxy (the version is tools/vulndb's Version constant; it returns at once
# when the copy is current). GOVULNDB=https://vuln.go.dev or
# GOVULNDB=file:///path/to/mirror uses that database instead.
GOVULNDB ?=
VULNDB_DIR ?= $(HOME)/.cache/caracal/vulndb
govulncheck:
	$(if $(GOVULNDB),,$(GO) -C tools/vulndb run . -out $(VULNDB_DIR))
	$(GO) run $(GOVULNCHECK) -db $(or $(GOVULNDB),file://$(VULNDB_DIR)) ./...

# govulncheck-gate (part of make check): fails on any vulnerability in called
# code that mk/govulncheck-accepted.txt does not list with its reason.
govulncheck-gate:
	@mkdir -p $(CURDIR)/bin
	@$(if $(GOVULNDB),,$(GO) -C tools/vulndb run . -out $(VULNDB_DIR) >/dev/null)
	@$(GO) run $(GOVULNCHECK) -db $(or $(GOVULNDB),file://$(VULNDB_DIR)) -format json ./... > $(CURDIR)/bin/govulncheck.json
	@set -o pipefail; found=$$(python3 mk/govulncheck_findings.py bin/govulncheck.json) || exit 1; \
	accepted=$$(grep -v '^#' mk/govulncheck-accepted.txt | awk 'NF {print $$1}' | sort -u); \
	new=$$(comm -23 <(printf '%s\n' $$found) <(printf '%s\n' $$accepted) | grep . || true); \
	if [ -n "$$new" ]; then echo "govulncheck: vulnerabilities in called code not accepted in mk/govulncheck-accepted.txt:"; echo "$$new"; exit 1; fi; \
	echo "govulncheck: $$(printf '%s\n' $$found | grep -c . || true) findings in called code, all accepted in mk/govulncheck-accepted.txt"

# gosec over ./... . An accepted finding is marked in place
# (// #nosec Gxxx -- reason) where its file's owner adds it; these rules are
# excluded project-wide, each for the reason given (docs/security.md lists
# every site):
#   G104 unhandled errors: best-effort Close/Write/Shutdown calls, marked
#        //nolint:errcheck by house style; go vet and staticcheck run in
#        make check.
#   G115 integer conversions: each flagged conversion is on a bounded value
#        (lengths of 36-byte keys, ports, partition and replica counts, pool
#        sizes checked by config validation, CRC/record framing, the
#        round-robin index); money stays int64 end to end and
#        internal/money has overflow tests and a fuzz target.
#   G304 file path from a variable: every such path is operator input (the
#        config file, certFile/keyFile/clientCAFile, database.passwordFile,
#        file: credential refs, the ledger key files, the spool directory);
#        operators are trusted (docs/security.md), agents never choose a path.
#   G306 WriteFile mode above 0600: the two sites write public Ed25519
#        verifier keys (0644 on purpose); secret keys are written 0600.
#   G103 unsafe: two audited zero-copy views on the hot path
#        (gateway/errors.go AppendString of a string, gateway/ssrf/guard.go
#        netip.ParseAddr of a byte slice that it does not retain).
#   G101 hard-coded credentials: the development default database.url
#        (caracal:caracal on 127.0.0.1) in config.Default(); production
#        deployments set database.url / passwordFile (docs/security.md).
# Directories of tooling that is not shipped in the image (load and benchmark
# drivers, the deploy checker, the load generator that reads -body files) are
# not scanned.
GOSEC_EXCLUDE := G104,G115,G304,G306,G103,G101
GOSEC_EXCLUDE_DIRS := bench loadtest tools caracal-loadgen
gosec:
	$(GO) run $(GOSEC) -quiet -exclude=$(GOSEC_EXCLUDE) $(addprefix -exclude-dir=,$(GOSEC_EXCLUDE_DIRS)) ./...

check-security: govulncheck gosec
