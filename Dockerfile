# syntax=docker/dockerfile:1
# svcplane's image for those who build with Docker. It describes the same image as
# `scripts/image`, which needs no Docker daemon: the release binary on distroless/cc (glibc,
# libgcc_s, no shell), the nonroot user, the webhook's and the controller-manager's ports.
# `tests/tests/image.rs` checks this file against the archive scripts/image writes.
#
#   docker build -t ghcr.io/svcplane/svcplane:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /svcplane
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --locked --profile image -p svcplane --bin svcplane

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /svcplane/target/image/svcplane /usr/bin/svcplane
LABEL org.opencontainers.image.title="svcplane" \
      org.opencontainers.image.description="The Kubernetes Service control plane, in Rust" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/svcplane/svcplane"
USER 65532:65532
WORKDIR /home/nonroot
# 9443: the admission webhook (HTTPS); 10357: the controller-manager's /metrics, /healthz, /readyz.
EXPOSE 9443/tcp 10357/tcp
ENTRYPOINT ["/usr/bin/svcplane"]
