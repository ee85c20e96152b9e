#!/usr/bin/env bash
# The scale benchmark (issue 12), in one command (see docs/benchmarks.md, "Scale"):
#
#   benches/scale.sh
#
# Same wrapper as benches/webhook.sh (installs wrk if missing, builds the release
# binary), running `cargo bench --bench scale`: a seeded data dir (100,000 Pages,
# 10,000 shops, 100,000 sessions, 1,000,000 pending inbox records by default), start-up
# and drain, ack throughput under concurrent dashboard, /metrics and /api/v1 load with
# the poll running, against a 100-Page baseline. Knobs: PAGESYNC_SCALE_PAGES,
# PAGESYNC_SCALE_SHOPS, PAGESYNC_SCALE_SESSIONS, PAGESYNC_SCALE_INBOX,
# PAGESYNC_SCALE_BIG_SHOP (500), PAGESYNC_SCALE_POLL_INTERVAL (30s),
# PAGESYNC_SCALE_MODE (load, or spread for the 10-minute poll-spread run),
# PAGESYNC_SCALE_LIST (all, shop or off: what the /api/v1/pages loader lists),
# PAGESYNC_SCALE_DASHBOARD=off (no dashboard load), PAGESYNC_SCALE_SCRIPT_PAGES (1000),
# PAGESYNC_SCALE_LOAD_RUNS (1), PAGESYNC_BENCH_SECONDS (10), PAGESYNC_BENCH_KEEP=1,
# PAGESYNC_BENCH_PERF=DIR (perf record of the daemon during each measured run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PAGESYNC_BENCH_TARGET=scale
exec benches/webhook.sh "$@"
