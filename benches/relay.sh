#!/usr/bin/env bash
# The relay benchmark, in one command (see docs/benchmarks.md):
#
#   benches/relay.sh
#
# Same harness as benches/webhook.sh (installs wrk if missing, builds the release
# binary): ack throughput with and without PAGESYNC_FORWARD_URL, forward latency at
# 1,000 deliveries/s, and 100,000 pending forwards drained once the bot is back.
set -euo pipefail
cd "$(dirname "$0")/.."
export PAGESYNC_BENCH_MODE=relay
exec benches/webhook.sh "$@"
