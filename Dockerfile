# One image for every role: `chaukas gateway|writer|query|migrate|healthcheck|import`.
#
#   docker build -t chaukas-server .
#
# Stage 1 builds the release binary (protox compiles the protos: no protoc needed); stage 2
# is a distroless runtime with glibc and CA certificates, no shell, running as non-root.

FROM rust:1.89-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the code does not refetch the registry.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY proto proto
COPY tests tests
RUN cargo build --release --locked -p chaukas \
    && strip target/release/chaukas \
    && cp target/release/chaukas /chaukas

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /chaukas /usr/local/bin/chaukas
# 65532 is distroless's "nonroot" user; the filesystem can be mounted read-only.
USER 65532:65532
# gateway gRPC/HTTP, writer health, query gRPC/health
EXPOSE 50051 8080 8081 50052 8082
ENTRYPOINT ["/usr/local/bin/chaukas"]
CMD ["gateway"]
