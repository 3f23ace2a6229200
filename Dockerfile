# syntax=docker/dockerfile:1.7
#
# ext-authz-adapter: OpenID Connect ext_authz server for Envoy/Istio (oauth2-proxy drop-in).
#
#   docker build -t ext-authz-adapter:dev .          (from the repository root; needs BuildKit)
#   docker run --rm -p 4180:4180 ext-authz-adapter:dev --oidc-issuer-url=... --client-id=...
#
# Two stages: the Rust toolchain builds the one binary; the runtime image is distroless
# (glibc, libgcc, CA certificates, nothing else: no shell, no package manager) and runs it as
# the unprivileged user 65532. Nothing is written at run time, so the container works with a
# read-only root filesystem (the Helm chart sets readOnlyRootFilesystem and mounts /tmp).

# Must match rust-toolchain.toml (and the glibc of the runtime image: both Debian 12 bookworm).
ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
ARG RUST_VERSION
# Use the image's toolchain as it is (rust-toolchain.toml would have rustup fetch components
# that a release build does not need).
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to resolve Cargo.lock
# (.dockerignore keeps target/ and .git/ out).
COPY . .
# Registry and target caches are BuildKit cache mounts (not layers), so the binary is copied
# out of target/ before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --profile dist --locked --package ext-authz-adapter --bin ext-authz-adapter \
 && install -D -m 0755 target/dist/ext-authz-adapter /out/ext-authz-adapter
# Fail the build here, not in the cluster, if the binary does not start.
RUN /out/ext-authz-adapter --version

# cc: glibc + libgcc (the binary is dynamically linked against glibc); :nonroot runs as 65532.
# Pin by digest for production (gcr.io/distroless/cc-debian12:nonroot@sha256:...).
FROM gcr.io/distroless/cc-debian12:nonroot
ARG RUST_VERSION
LABEL org.opencontainers.image.title="ext-authz-adapter" \
      org.opencontainers.image.description="OpenID Connect ext_authz server for Envoy and Istio (oauth2-proxy compatible)" \
      org.opencontainers.image.source="https://github.com/oidc-authz/oidc-authz" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder --chown=0:0 --chmod=0555 /out/ext-authz-adapter /usr/local/bin/ext-authz-adapter
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# A container must listen beyond loopback (the adapter's default is 127.0.0.1:4180, like
# oauth2-proxy's); --http-address still overrides this.
ENV OAUTH2_PROXY_HTTP_ADDRESS=0.0.0.0:4180
# 4180: HTTP (oauth2-proxy endpoints, /ping, /ready, envoyExtAuthzHttp checks).
# 4181: gRPC envoy.service.auth.v3.Authorization (envoyExtAuthzGrpc), when started with
#       --grpc-address=0.0.0.0:4181.
EXPOSE 4180 4181
ENTRYPOINT ["/usr/local/bin/ext-authz-adapter"]
