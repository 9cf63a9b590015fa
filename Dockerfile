# syntax=docker/dockerfile:1
# hello-k8s container image: a static release binary on distroless/static, non-root.
#
#   make build                    (docker, BuildKit: the default since Docker 23)
#   make build CONTAINER=podman   (podman/buildah, no daemon; docs/image.md)
#
# The builder runs scripts/build-release.sh, the project's one release build command (also
# used by `make release`, `make run` and `make image-test`), so the binary tested outside
# Docker is built exactly like this one. Dependencies are cached across builds in BuildKit
# cache mounts (cargo registry and target/), so a source change recompiles only the workspace.
# Base images are pinned to versions; pin digests too (image@sha256:...) for bit-for-bit
# reproducible builds, at the cost of updating them by hand.

# Fully qualified: podman resolves no short names where registries.conf lists no search registry.
FROM docker.io/library/rust:1.95.0-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The binary leaves target/ (a cache mount, absent from the layer) for /out, after
# check-static.sh proves it needs no loader and no libc: the runtime image has neither.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    bin="$(scripts/build-release.sh)" \
    && scripts/check-static.sh "$bin" \
    && install -D -m 0555 "$bin" /out/hello-k8s

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot (65532); no shell.
FROM gcr.io/distroless/static-debian12:nonroot
# From git, by scripts/image-meta.sh (`make build` passes them); "unknown" in a bare build.
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="hello-k8s" \
      org.opencontainers.image.description="Hello World from Kubernetes! (actix-web): probes, metrics, graceful drain" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=builder /out/hello-k8s /hello-k8s
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 5600
# Listen on every interface inside the container (the binary's default is loopback).
ENV HOST=0.0.0.0 \
    PORT=5600
# For `docker run`/Compose; the kubelet ignores HEALTHCHECK and uses the pod's probes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/hello-k8s", "healthcheck"]
ENTRYPOINT ["/hello-k8s"]
