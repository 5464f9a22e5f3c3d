# Deployment targets; included from the Makefile.
#   make deploy-check  validate Dockerfile, Helm chart, kustomize, alerts, dashboard, compose
#   make image         build the container image (only where a Docker engine answers)
IMAGE ?= caracal:dev
DEPLOYCHECK_KEYS := $(CURDIR)/bin/caracal-config-keys.txt

.PHONY: deploy-check image

# tools/deploycheck is its own Go module (helm, kustomize, prometheus, compose-go stay
# out of the product's go.mod). The binary's config key list makes it reject any key in
# the rendered config that caracal would refuse.
deploy-check:
	@mkdir -p bin
	$(GO) run ./cmd/caracal config keys > $(DEPLOYCHECK_KEYS)
	cd tools/deploycheck && $(GO) run . -repo ../.. -config-keys $(DEPLOYCHECK_KEYS)
	cd tools/deploycheck && $(GO) test -count=1 ./...

image:
	@if docker info >/dev/null 2>&1; then \
	  docker build -t $(IMAGE) . ; \
	else echo "image: skipped, no Docker engine answers (docker info failed)"; fi
