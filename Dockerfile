# syntax=docker/dockerfile:1
# One image for every role: `caracal gateway`, `caracal consume ledger|metrics|audit`,
# `caracal db migrate up`, `caracal kafka create-topics`, and the `caracal-mock`
# upstream used by the compose stack. Static binaries on a distroless base, run as
# the unprivileged user 65532. Build: make image (or docker build -t caracal .).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first so the dependency layer is cached across source changes.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w" \
      -o /out/caracal ./cmd/caracal && \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w" \
      -o /out/caracal-mock ./cmd/caracal-mock

# distroless/static: CA certificates, /etc/passwd with the nonroot user, tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/caracal /usr/local/bin/caracal
COPY --from=build /out/caracal-mock /usr/local/bin/caracal-mock
USER 65532:65532
EXPOSE 8443 9090 9091
ENTRYPOINT ["/usr/local/bin/caracal"]
CMD ["gateway"]
