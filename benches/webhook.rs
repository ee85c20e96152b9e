#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end webhook benchmark: the release `pagesync serve` binary under `wrk`, on
//! loopback, against pagesync's own Meta emulator (in-process). Run it with `benches/webhook.sh`
//! (installs `wrk` if missing, then `cargo bench --bench webhook`); docs/benchmarks.md
//! explains the set-up and records results.
//!
//! What happens, in order:
//! 1. A temporary data dir gets Page tokens for [`PAGES`] Pages, sealed and stored
//!    through the library's TokenVaultActor, before the daemon starts.
//! 2. The emulator (`pagesync::emulator`, own thread) answers `GET /v25.0/{page_id}` after
//!    [`GRAPH_LATENCY`] and counts the GETs per Page.
//! 3. `pagesync check-config`, then `pagesync serve`, wait for `/readyz`.
//! 4. `wrk -t1 -c64 --latency` posts signed ~140-byte deliveries cycling over the
//!    Pages: a warm-up, then the measured run.
//! 5. The daemon's peak RSS (`VmHWM`).
//! 6. Once refreshes have drained: a burst of [`BURST`] deliveries for one Page,
//!    counting the Graph GETs it causes, and a check of its `page_data.json`.
//! 7. SIGTERM, exit status and stop time; the inbox must be empty afterwards.
//!
//! Missed targets are reported, not failed: the exit status is non-zero only when the
//! harness itself cannot do its job (no wrk, the daemon does not start, ...).
//!
//! Knobs (environment): `PAGESYNC_BENCH_SECONDS` (measured run, default 10),
//! `PAGESYNC_BENCH_KEEP=1` (keep the temporary data dir and its daemon log).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use pagesync_actors::EncryptionKey;

#[path = "webhook/burst.rs"]
mod burst;
#[path = "webhook/daemon.rs"]
mod daemon;
#[path = "webhook/emulator.rs"]
mod emulator;
#[path = "webhook/relay.rs"]
mod relay;
#[path = "webhook/report.rs"]
mod report;
#[path = "webhook/seed.rs"]
mod seed;
#[path = "webhook/wrk.rs"]
mod wrk;

use burst::{check_page_file, run_burst};
use daemon::{Daemon, LogSummary, check_config, daemon_env, free_port, http, smoke_test};
use emulator::GraphThread;
use report::indent;
use seed::{inbox_len, seed_tokens};
use wrk::{Signed, delivery_body, run_wrk, wrk_script};

/// Pages with a stored token; the throughput run cycles over all of them.
const PAGES: u64 = 100;
/// Page `i` has the id `PAGE_BASE + i` (15 digits, like real Page ids).
const PAGE_BASE: u64 = 104_857_600_000_000;
/// How long the emulator takes to answer a Page GET, like a fast real call.
const GRAPH_LATENCY: Duration = Duration::from_millis(20);
const APP_SECRET: &str = "bench_app_secret_0123456789abcdef";
/// wrk: one load thread (the machine has two cores, the daemon needs them), 64
/// connections.
const WRK_THREADS: u32 = 1;
const WRK_CONNECTIONS: u32 = 64;
const WARMUP_SECONDS: u64 = 2;
const DEFAULT_SECONDS: u64 = 10;
/// The one-Page burst: deliveries and how many are in flight at once.
const BURST: usize = 2000;
const BURST_CONCURRENCY: usize = 64;
/// "Refreshes have drained": no Graph GET for this long.
const QUIET: Duration = Duration::from_secs(1);

// Targets (issue 2): reported beside the measurements.
const TARGET_RPS: f64 = 15_000.0;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 40.0;
const TARGET_GETS_PER_DELIVERY: f64 = 0.1;

fn main() -> ExitCode {
    report::exit_status("webhook", run())
}

fn run() -> anyhow::Result<()> {
    let seconds = match std::env::var("PAGESYNC_BENCH_SECONDS") {
        Ok(s) => {
            s.parse::<u64>().ok().filter(|n| *n > 0).context("PAGESYNC_BENCH_SECONDS must be a whole number > 0")?
        }
        Err(_) => DEFAULT_SECONDS,
    };
    let wrk_version = Command::new("wrk").arg("-v").output().map_err(|e| {
        anyhow!("cannot run wrk ({e}); run benches/webhook.sh, which installs it (apt-get install -y wrk)")
    })?;
    let wrk_version = String::from_utf8_lossy(&wrk_version.stdout);
    let wrk_version = wrk_version.split(" Copyright").next().unwrap_or("wrk").trim().to_owned();

    // `PAGESYNC_BENCH_MODE=relay` (benches/relay.sh) measures the relay instead.
    let relay = std::env::var("PAGESYNC_BENCH_MODE").is_ok_and(|m| m == "relay");
    report::in_temp_dir("pagesync-bench-", |dir| {
        if relay { relay::bench(dir, seconds, &wrk_version) } else { bench(dir, seconds, &wrk_version) }
    })
}

/// Steps a to h in the temp dir `dir`.
fn bench(dir: &Path, seconds: u64, wrk_version: &str) -> anyhow::Result<()> {
    let dir = dir.to_owned();
    let data_dir = dir.join("data");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    say(&format!("temp dir {}; {cores} cores; {wrk_version}", dir.display()));

    // a. Seed the Page tokens while no daemon holds the database.
    let pages: Vec<String> = (0..PAGES).map(|i| (PAGE_BASE + i).to_string()).collect();
    let key = EncryptionKey::generate().map_err(|e| anyhow!("cannot generate an encryption key: {e}"))?;
    let started = Instant::now();
    seed_tokens(&data_dir.join("db"), &key, &pages).context("seeding Page tokens")?;
    say(&format!("seeded {} Page tokens in {:.2} s", pages.len(), started.elapsed().as_secs_f64()));

    // b. Graph: the emulator.
    let graph = GraphThread::start(&pages).context("starting the emulator")?;
    say(&format!("emulator (Graph) on 127.0.0.1:{} ({} ms per Page answer)", graph.port, GRAPH_LATENCY.as_millis()));

    // c. The daemon.
    let port = free_port()?;
    let env = daemon_env(&data_dir, port, graph.port, &key);
    check_config(&dir, &env)?;
    let mut daemon = Daemon::spawn(&dir, &env, port)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ready_in = daemon.wait_ready(Duration::from_secs(30))?;
    say(&format!("pagesync serve (pid {}) ready on {addr} in {:.2} s", daemon.pid(), ready_in.as_secs_f64()));
    smoke_test(addr, &pages[0])?;
    // The smoke test's forged delivery is logged as refused, on purpose; only what
    // comes after it counts.
    let expected_log_lines = LogSummary::read(&daemon.log, 0).lines;

    // d. Throughput.
    let deliveries: Vec<Signed> =
        pages.iter().enumerate().map(|(i, page)| Signed::new(delivery_body(page, 1_767_225_600, i))).collect();
    let sizes = deliveries.iter().map(|d| d.body.len());
    let (min_size, max_size) = (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0));
    let script = dir.join("deliveries.lua");
    std::fs::write(&script, wrk_script(&deliveries)).context("cannot write the wrk script")?;
    let url = format!("http://{addr}/facebook/webhook");

    say(&format!("warm-up: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WARMUP_SECONDS}s"));
    let warmup = run_wrk(&script, &url, WARMUP_SECONDS)?;
    say(&format!("warm-up: {:.0} deliveries/s, {} errors", warmup.rps, warmup.errors()));
    daemon.ensure_running()?;

    let gets_before = graph.total();
    say(&format!(
        "measured run: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds}s --latency ({min_size}-{max_size}-byte bodies, {PAGES} Pages)"
    ));
    let load = run_wrk(&script, &url, seconds)?;
    println!("{}", indent(&load.raw));
    daemon.ensure_running()?;
    let gets_during = graph.total() - gets_before;

    // e. Memory right after the load.
    let mem_after_load = daemon.memory()?;

    // f. Drain, then a burst for one Page.
    let drained = graph.wait_quiet(QUIET, Duration::from_secs(120));
    let drain_note = match drained {
        Some(t) => format!("Graph quiet {:.2} s after the load", t.as_secs_f64()),
        None => "Graph GETs had not stopped 120 s after the load".to_owned(),
    };
    let gets_after_drain = graph.total() - gets_before;
    say(&format!(
        "{drain_note}; {gets_after_drain} Graph GETs for {} deliveries of the measured run ({} while it ran)",
        load.requests, gets_during
    ));
    let written = pages.iter().filter(|p| data_dir.join("facebook").join(p).join("page_data.json").is_file()).count();

    let burst_page = pages[0].clone();
    let burst_before = graph.count(&burst_page);
    say(&format!("burst: {BURST} deliveries for Page {burst_page}, {BURST_CONCURRENCY} at a time"));
    let burst = run_burst(addr, &burst_page, BURST, BURST_CONCURRENCY)?;
    let burst_quiet = graph.wait_quiet(QUIET, Duration::from_secs(60));
    let burst_gets = graph.count(&burst_page) - burst_before;
    let gets_per_delivery = burst_gets as f64 / BURST as f64;
    say(&format!(
        "burst: {} x 200 in {:.3} s ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, other answers {:?}; {burst_gets} Graph GETs{}",
        burst.ok,
        burst.elapsed.as_secs_f64(),
        BURST as f64 / burst.elapsed.as_secs_f64(),
        burst.p50_ms,
        burst.p99_ms,
        burst.other,
        if burst_quiet.is_none() { " (Graph still busy after 60 s)" } else { "" },
    ));
    let file_check = check_page_file(&data_dir, &burst_page, graph.emulator.page(&burst_page));
    match &file_check {
        Ok(note) | Err(note) => say(&format!("page_data.json of Page {burst_page}: {note}")),
    }

    let mem_final = daemon.memory()?;
    let graph_bad_auth = graph.refused();

    // g. Stop.
    let stop = daemon.terminate(Duration::from_secs(30))?;
    say(&format!("SIGTERM: {} after {:.3} s", stop.describe(), stop.took.as_secs_f64()));
    let log = LogSummary::read(&daemon.log, expected_log_lines);
    if !stop.clean() {
        println!("last lines of the daemon log ({}):\n{}", daemon.log.display(), indent(&log.tail(20)));
    }
    let inbox_left = inbox_len(&data_dir.join("db"));
    graph.stop();

    // h. Summary.
    let errors = load.errors();
    let mut problems = Vec::new();
    if errors > 0 {
        problems.push(format!(
            "{errors} failed requests in the measured run (socket errors {:?}, non-2xx {})",
            load.socket, load.non_2xx
        ));
    }
    if warmup.errors() > 0 {
        problems.push(format!("{} failed requests in the warm-up", warmup.errors()));
    }
    if burst.ok != BURST {
        problems
            .push(format!("burst: {} of {BURST} deliveries answered 200 success; others: {:?}", burst.ok, burst.other));
    }
    if drained.is_none() || burst_quiet.is_none() {
        problems.push("Graph refreshes did not drain in time".to_owned());
    }
    if written != pages.len() {
        problems.push(format!("only {written} of {} Pages had a page_data.json after the load", pages.len()));
    }
    if let Err(e) = &file_check {
        problems.push(format!("page_data.json check: {e}"));
    }
    if graph_bad_auth > 0 {
        problems.push(format!("{graph_bad_auth} Page GETs refused by the emulator (token or appsecret_proof)"));
    }
    if !stop.clean() {
        problems.push(format!("stop: {}", stop.describe()));
    }
    match &inbox_left {
        Ok(0) => {}
        Ok(n) => problems.push(format!("{n} deliveries left in the inbox after a drained, clean stop")),
        Err(e) => problems.push(format!("cannot inspect the inbox after the stop: {e:#}")),
    }
    if log.lines > 0 {
        problems.push(format!("{} warn/error lines in the daemon log: {}", log.lines, log.top(5)));
    }

    let yes = |ok: bool| if ok { "yes" } else { "NO" };
    let mut out = String::new();
    let _ = writeln!(out, "\n==== pagesync webhook benchmark ====");
    let _ = writeln!(
        out,
        "setup: {cores} cores, wrk on the same machine ({wrk_version}); {PAGES} Pages, {min_size}-{max_size}-byte \
         signed bodies (both headers); emulator (Graph) {} ms; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds}s after a \
         {WARMUP_SECONDS}s warm-up",
        GRAPH_LATENCY.as_millis()
    );
    let _ = writeln!(out, "{:<34} {:>16}   {:<12} met", "metric", "measured", "target");
    let row = |out: &mut String, name: &str, value: String, target: &str, met: &str| {
        let _ = writeln!(out, "{name:<34} {value:>16}   {target:<12} {met}");
    };
    row(&mut out, "deliveries/s at c64", format!("{:.0}", load.rps), ">= 15000", yes(load.rps >= TARGET_RPS));
    row(&mut out, "latency p50", format!("{:.2} ms", load.p50_ms), "-", "");
    row(&mut out, "latency p99", format!("{:.2} ms", load.p99_ms), "< 10 ms", yes(load.p99_ms < TARGET_P99_MS));
    if let Some(extra) = &load.lua {
        row(&mut out, "latency p99.9 / max", format!("{:.2} / {:.2} ms", extra.p999_ms, extra.max_ms), "-", "");
    }
    row(&mut out, "errors (socket + non-2xx)", format!("{errors}"), "0", yes(errors == 0));
    row(&mut out, "requests in the measured run", format!("{}", load.requests), "-", "");
    row(
        &mut out,
        "peak RSS (VmHWM), whole run",
        format!("{:.1} MiB", mem_final.hwm_mib),
        "< 40 MiB",
        yes(mem_final.hwm_mib < TARGET_RSS_MIB),
    );
    row(
        &mut out,
        "RSS after load / at the end",
        format!("{:.1} / {:.1} MiB", mem_after_load.rss_mib, mem_final.rss_mib),
        "-",
        "",
    );
    row(
        &mut out,
        "Graph GETs per delivery (burst)",
        format!("{gets_per_delivery:.4} ({burst_gets}/{BURST})"),
        "<= 0.1",
        yes(gets_per_delivery <= TARGET_GETS_PER_DELIVERY),
    );
    row(
        &mut out,
        "Graph GETs per delivery (c64 run)",
        format!("{:.4}", gets_after_drain as f64 / load.requests.max(1) as f64),
        "-",
        "",
    );
    row(&mut out, "burst p99 (harness client)", format!("{:.2} ms", burst.p99_ms), "-", "");
    row(&mut out, "page_data.json check", if file_check.is_ok() { "ok" } else { "FAILED" }.to_owned(), "ok", "");
    let inbox_note = match &inbox_left {
        Ok(n) => format!("{n} deliveries"),
        Err(_) => "unknown".to_owned(),
    };
    row(&mut out, "inbox after the stop", inbox_note, "0", "");
    row(&mut out, "stop on SIGTERM", format!("{} in {:.2} s", stop.short(), stop.took.as_secs_f64()), "exit 0", "");
    report::write_problems(&mut out, &problems);
    print!("{out}");
    Ok(())
}

fn say(msg: &str) {
    println!("webhook bench: {msg}");
}
