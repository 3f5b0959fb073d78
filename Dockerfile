# herald: multi-stage build. The runtime image holds the binary, CA certificates and nothing else
# that runs; herald runs as an unprivileged user and keeps its data in the /data volume.
#
#   docker build -t herald .
#   docker run -v herald-data:/data -p 8080:8080 -e SENTRY_CLIENT_SECRET=… herald
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# make: jemalloc (herald's malloc) is built from source.
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
RUN cargo build --release --locked && strip target/release/herald

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin herald \
 && mkdir /data && chown herald /data
COPY --from=build /src/target/release/herald /usr/local/bin/herald
COPY config.example.toml /etc/herald/herald.toml
ENV HERALD_CONFIG=/etc/herald/herald.toml \
    HERALD_LISTEN=0.0.0.0:8080 \
    HERALD_DATA_DIR=/data
USER herald
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["herald", "healthcheck"]
ENTRYPOINT ["herald"]
CMD ["serve"]
