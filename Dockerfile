# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are cooked in their own layer (cargo-chef),
# so a change to the sources rebuilds only the workspace's own crates; the
# runtime image is distroless, non-root (65532, "nonroot"), with no shell.
# Checked by hadolint in CI (.ci/packaging).

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin cerebral \
 && mkdir -p /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /app/target/release/cerebral /usr/local/bin/cerebral
# The embedded SQLite default lives here; mount a volume to keep it.
COPY --from=builder --chown=65532:65532 /data /data
# A container listens on every interface, so it must not come up open by
# accident: without a token key (CEREBRAL_JWT_SECRET, CEREBRAL_JWT_PUBLIC_KEY
# or CEREBRAL_JWKS_URL) it refuses to start. For a local trial only, opt
# out explicitly: docker run -e CEREBRAL_REQUIRE_AUTH=false -p 127.0.0.1:8000:8000 …
# /metrics (every tenant's figures, no token) is served on port 9000 only:
# let Prometheus reach it, never publish it.
ENV CEREBRAL_LISTEN=0.0.0.0:8000 \
    CEREBRAL_METRICS_LISTEN=0.0.0.0:9000 \
    CEREBRAL_REQUIRE_AUTH=true \
    DATABASE_URL=sqlite:///data/cerebral.db?mode=rwc
EXPOSE 8000 9000
VOLUME ["/data"]
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# No shell or curl in the image: the binary checks itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/cerebral", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cerebral"]
CMD ["serve"]
