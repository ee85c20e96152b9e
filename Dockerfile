# syntax=docker/dockerfile:1
# pagesync in a container: built with the Rust the repository asks for (rust-version
# in Cargo.toml), run on Debian 12 slim as a fixed non-root user with its state in a
# volume. docs/packaging.md, "Container image", has the run commands.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The caches keep the registry and target/ between builds on the same builder; the
# binary is copied out of the cached target/ before the step ends. --strip-debug drops
# the line tables of [profile.release] but keeps the symbols, so a backtrace still
# names its functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pagesync \
    && objcopy --strip-debug target/release/pagesync /usr/local/bin/pagesync

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: the Graph API and the shops are verified against the system's
# certificate store. busybox: its wget is the HEALTHCHECK's HTTP client (pagesync has
# no health subcommand, and curl would bring a dozen libraries). Not pinned: the
# release's security updates replace old versions in the archive.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates busybox \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid (10001), so that a bind-mounted data dir or a bot container that
# reads the Page files can be given the same ids.
RUN groupadd --system --gid 10001 pagesync \
    && useradd --system --uid 10001 --gid pagesync --home-dir /var/lib/pagesync \
        --shell /usr/sbin/nologin pagesync \
    && install -d -o pagesync -g pagesync -m 0750 /var/lib/pagesync
COPY --from=build /usr/local/bin/pagesync /usr/bin/pagesync

# Listen on every interface of the container (publish the port to choose who reaches
# it); state in the volume; JSON logs for the container runtime.
ENV PAGESYNC_BIND=0.0.0.0:5000 \
    PAGESYNC_DATA_DIR=/var/lib/pagesync \
    PAGESYNC_LOG_FORMAT=json
VOLUME ["/var/lib/pagesync"]
EXPOSE 5000
USER 10001:10001
# pagesync reads .env from its working directory: / holds none.
WORKDIR /

# /readyz is 200 once the store is open and every actor answers, else 503; the port is
# taken from PAGESYNC_BIND when the check runs. The start period covers the inbox
# replay after an unclean stop. Shell form on purpose: it expands PAGESYNC_BIND.
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD busybox wget -q -O /dev/null "http://127.0.0.1:${PAGESYNC_BIND##*:}/readyz" || exit 1

# SIGTERM is a graceful stop: requests in flight get up to 10 s, then the store is
# flushed; give `docker stop` more than its default 10 s (docs/packaging.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/pagesync"]
CMD ["serve"]
