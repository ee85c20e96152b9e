#!/usr/bin/env bash
# The webhook benchmark, in one command (see docs/benchmarks.md):
#
#   benches/webhook.sh
#
# Installs the load generator wrk if it is missing (Debian/Ubuntu, as root or through
# sudo), then runs `cargo bench --bench webhook`, which builds pagesync in the bench
# (release) profile and drives the real binary on loopback. Extra arguments go to
# cargo, e.g. `benches/webhook.sh --quiet`. Knobs: PAGESYNC_BENCH_SECONDS (measured
# run, default 10), PAGESYNC_BENCH_KEEP=1 (keep the temp data dir and daemon log).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "webhook.sh: wrk not found; installing it with apt-get" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y wrk
fi

# benches/scale.sh reuses this script for another bench target.
exec cargo bench --bench "${PAGESYNC_BENCH_TARGET:-webhook}" "$@"
