# keygate: multi-stage build of the same two binaries the tests use (keygate, keygate-echo).
FROM rust:1-bookworm AS build
# pingora's zlib-ng build needs cmake.
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin keygate --bin keygate-echo

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/keygate keygate \
    && mkdir -p /var/lib/keygate /etc/keygate && chown keygate /var/lib/keygate
COPY --from=build /src/target/release/keygate /src/target/release/keygate-echo /usr/local/bin/
COPY config/keygate.docker.yaml /etc/keygate/keygate.yaml
USER keygate
WORKDIR /var/lib/keygate
EXPOSE 8080 9090 9100
CMD ["keygate", "serve", "--config", "/etc/keygate/keygate.yaml"]
