# pullstack container image: `docker build -t pullstack .`
#
# Stage 1 builds the release binary; dependencies are compiled in their own
# layer (against a stub crate) so a change in src/ does not rebuild them.
# Stage 2 is distroless (glibc, no shell, no package manager), running as the
# image's built-in non-root user.

FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# Dependency layer: only the manifests, with stub sources for the lib and bin
# targets. Rebuilt when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
# Cargo.toml names the bench targets, so their files must exist to build at all.
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin pullstack \
    && rm -rf src

# The real sources. templates/ is embedded in the binary (include_str!).
# touch: make cargo rebuild the crate even if the copied files are older than
# the stub build.
COPY src ./src
COPY templates ./templates
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin pullstack \
    && install -D -m 0755 target/release/pullstack /out/pullstack

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/pullstack /usr/local/bin/pullstack
COPY templates/shared.yaml templates/preview.yaml /usr/share/pullstack/templates/
ENV PULLSTACK_LISTEN=0.0.0.0:8080
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/pullstack", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/pullstack"]
CMD ["serve"]
