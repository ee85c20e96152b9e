#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The scale benchmark (issue 12): the release `pagesync serve` binary on a data dir
//! seeded with many shops, Pages, sessions and pending inbox records, against
//! pagesync's emulator (in-process). Run it with `benches/scale.sh`; docs/benchmarks.md
//! ("Scale (issue 12)") explains it and records results.
//!
//! Mode `load` (the default), in order:
//! 1. Baseline: a data dir with [`BASELINE_PAGES`] Pages; the webhook bench's wrk run
//!    (c=64, signed ~140-byte deliveries cycling over the Pages) on it, no other load.
//! 2. The large data dir (`benches/scale/seed.rs`): shops, Pages, sessions, one API
//!    key and K pending inbox records. Time to `/readyz` 200 with that inbox, then the
//!    time until `pagesync_inbox_depth` is 0 (every replayed delivery refreshed against
//!    the emulator). RSS at rest and size on disk per Page.
//! 3. Once the poll has started (`PAGESYNC_POLL_INTERVAL` is short, see
//!    [`DEFAULT_POLL_INTERVAL`]): the same wrk run, cycling over Pages of the whole
//!    store, while other threads load the 500-Page shop's dashboard 10×/s, scrape
//!    `/metrics` 1×/s and walk `/api/v1/pages?limit=1000` slice by slice (at most
//!    one slice every [`LIST_SLICE_EVERY`]). RSS under that load.
//! 4. A restart of the same data dir (every Page has its file now, the inbox is empty),
//!    with `PAGESYNC_POLL_INTERVAL=24h` so that no poll run starts: time to ready and
//!    RSS at rest.
//!
//! Mode `spread` (`PAGESYNC_SCALE_MODE=spread`, about 12 minutes): the large data dir
//! without inbox records, `PAGESYNC_POLL_INTERVAL=10m`, no other load; the emulator's
//! Page GETs are counted per minute for [`SPREAD_MINUTES`] minutes (one interval) from
//! the poll's first GET (the first run after a start settles for a tenth of the
//! interval first), and then how many Pages were fetched once, more than once and never
//! by then (a poll that keeps its pace fetches each Page once per interval).
//!
//! Missed targets are reported, not failed: the exit status is non-zero only when the
//! harness cannot do its job.
//!
//! Knobs (environment): `PAGESYNC_SCALE_PAGES` (100000), `PAGESYNC_SCALE_SHOPS`
//! (10000), `PAGESYNC_SCALE_SESSIONS` (100000), `PAGESYNC_SCALE_INBOX` (1000000),
//! `PAGESYNC_SCALE_BIG_SHOP` (500), `PAGESYNC_SCALE_POLL_INTERVAL` (30s),
//! `PAGESYNC_SCALE_MODE` (`load` or `spread`), `PAGESYNC_SCALE_LIST` (`paged`: walk every
//! Page in slices of 1,000; `all`: every Page in one request; `shop`: `?shop=` of the
//! 500-Page shop; `off`), `PAGESYNC_SCALE_DASHBOARD=off`,
//! `PAGESYNC_SCALE_SCRIPT_PAGES` (1000: Pages the large run's deliveries cycle over),
//! `PAGESYNC_SCALE_LOAD_RUNS` (1: measured wrk runs in a row under the load; the
//! summary's figures are the last's, the earlier ones are listed),
//! `PAGESYNC_BENCH_SECONDS` (10),
//! `PAGESYNC_BENCH_KEEP=1`, `PAGESYNC_BENCH_PERF=DIR` (`perf record` of the daemon
//! during each measured run, `benches/scale/cpu.rs`).
//!
//! Each measured run also reports the CPU seconds the daemon, wrk and the harness's
//! threads used, and the daemon's CPU per acknowledged delivery.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use pagesync_actors::EncryptionKey;

#[path = "scale/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "webhook/daemon.rs"]
mod daemon;
#[allow(dead_code)]
#[path = "webhook/emulator.rs"]
mod emulator;
#[path = "scale/load.rs"]
mod load;
#[path = "webhook/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "scale/seed.rs"]
mod seed;
#[allow(dead_code)]
#[path = "webhook/wrk.rs"]
mod wrk;

use cpu::{CpuSample, CpuUse, Perf};
use daemon::{Daemon, LogSummary, Memory, check_config, daemon_env, free_port};
use emulator::GraphThread;
use load::{Probe, list_walker, loader, metric, poll_checks, scrape};
use report::indent;
use seed::{Plan, page_id};
use wrk::{Signed, WrkResult, delivery_body, run_wrk, wrk_script};

/// Read by the shared webhook modules (`super::...`).
const APP_SECRET: &str = "bench_app_secret_0123456789abcdef";
const GRAPH_LATENCY: Duration = Duration::from_millis(20);
const WRK_THREADS: u32 = 1;
const WRK_CONNECTIONS: u32 = 64;

const BASELINE_PAGES: usize = 100;
const WARMUP_SECONDS: u64 = 2;
/// Distinct deliveries (one per Page, Pages spread over the store) in the wrk script of
/// the large run, unless `PAGESYNC_SCALE_SCRIPT_PAGES` says otherwise.
const SCRIPT_DELIVERIES: u64 = 1000;
const DASHBOARD_PERIOD: Duration = Duration::from_millis(100);
const METRICS_PERIOD: Duration = Duration::from_secs(1);
const LIST_EVERY: Duration = Duration::from_secs(1);
/// `PAGESYNC_SCALE_LIST=paged` (the default): slices of this many Pages, one every
/// [`LIST_SLICE_EVERY`] at most (a bot walking the whole list at 10,000 Pages a second).
const LIST_SLICE: usize = 1000;
const LIST_SLICE_EVERY: Duration = Duration::from_millis(100);
/// Short, so that a poll run is under way soon after the daemon starts (the first run
/// resumes the current interval's Pages a tenth of the interval after the start).
const DEFAULT_POLL_INTERVAL: &str = "30s";
const SPREAD_INTERVAL: &str = "10m";
const SPREAD_MINUTES: usize = 10;
/// Idle time after the restart before RSS "at rest" is read.
const REST: Duration = Duration::from_secs(5);

// Targets (issue 12).
const TARGET_RATIO: f64 = 0.90;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_METRICS_MS: f64 = 5.0;
const TARGET_DASHBOARD_MS: f64 = 50.0;
const TARGET_READY_S: f64 = 5.0;
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_SPREAD: f64 = 2.0;

fn main() -> ExitCode {
    report::exit_status("scale", run())
}

/// A whole-number knob, or its default.
fn knob(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(s) => s.trim().replace('_', "").parse::<u64>().with_context(|| format!("{name} must be a whole number")),
        Err(_) => Ok(default),
    }
}

struct Knobs {
    plan: Plan,
    seconds: u64,
    poll_interval: String,
    /// What the list loader asks for: `paged` (slices), `all` Pages at once, the big
    /// `shop`'s, or `off`.
    list: String,
    /// Whether the dashboard is loaded (`PAGESYNC_SCALE_DASHBOARD=off` turns it off).
    dashboard: bool,
    /// Pages the large run's deliveries cycle over.
    script_pages: usize,
    /// Measured wrk runs in a row under the load; the summary's figures are the last's.
    load_runs: usize,
}

fn run() -> anyhow::Result<()> {
    let plan = Plan {
        pages: knob("PAGESYNC_SCALE_PAGES", 100_000)? as usize,
        shops: knob("PAGESYNC_SCALE_SHOPS", 10_000)? as usize,
        sessions: knob("PAGESYNC_SCALE_SESSIONS", 100_000)? as usize,
        inbox: knob("PAGESYNC_SCALE_INBOX", 1_000_000)?,
        big_shop_pages: knob("PAGESYNC_SCALE_BIG_SHOP", 500)? as usize,
    };
    anyhow::ensure!(plan.pages > 0 && plan.shops > 0, "PAGESYNC_SCALE_PAGES and PAGESYNC_SCALE_SHOPS must be > 0");
    let seconds = knob("PAGESYNC_BENCH_SECONDS", 10)?.max(1);
    let poll_interval =
        std::env::var("PAGESYNC_SCALE_POLL_INTERVAL").unwrap_or_else(|_| DEFAULT_POLL_INTERVAL.to_owned());
    let list = std::env::var("PAGESYNC_SCALE_LIST").unwrap_or_else(|_| "paged".to_owned());
    let dashboard = std::env::var("PAGESYNC_SCALE_DASHBOARD").map_or(true, |v| v != "off");
    let script_pages = knob("PAGESYNC_SCALE_SCRIPT_PAGES", SCRIPT_DELIVERIES)?.max(1) as usize;
    let load_runs = knob("PAGESYNC_SCALE_LOAD_RUNS", 1)?.max(1) as usize;
    let knobs = Knobs { plan, seconds, poll_interval, list, dashboard, script_pages, load_runs };
    let spread = std::env::var("PAGESYNC_SCALE_MODE").is_ok_and(|m| m == "spread");
    Command::new("wrk").arg("-v").output().map_err(|e| {
        anyhow!("cannot run wrk ({e}); run benches/scale.sh, which installs it (apt-get install -y wrk)")
    })?;

    report::in_temp_dir(
        "pagesync-scale-",
        |dir| if spread { bench_spread(dir, &knobs) } else { bench_load(dir, &knobs) },
    )
}

/// Seeds `dir/data` under `plan` and starts the emulator with every Page.
fn seed_dir(dir: &Path, plan: &Plan) -> anyhow::Result<(EncryptionKey, seed::Seeded, GraphThread)> {
    let key = EncryptionKey::generate().map_err(|e| anyhow!("cannot generate an encryption key: {e}"))?;
    let db = dir.join("data").join("db");
    std::fs::create_dir_all(&db).context("cannot create the data dir")?;
    let started = Instant::now();
    let seeded = actix_web::rt::System::new().block_on(seed::seed(&db, &key, plan))?;
    say(&format!(
        "seeded {} shops, {} Pages, {} sessions, {} inbox records in {:.1} s ({})",
        plan.shops,
        plan.pages,
        plan.sessions,
        plan.inbox,
        started.elapsed().as_secs_f64(),
        seeded.timings.iter().map(|(k, d)| format!("{k} {:.1} s", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    ));
    let pages: Vec<String> = (0..plan.pages).map(page_id).collect();
    // The emulator's app id is `pagesync::emulator::APP_ID`; `env_for` gives the daemon
    // the same, so the poll's `debug_token` calls are accepted.
    let graph = GraphThread::start(&pages).context("starting the emulator")?;
    Ok((key, seeded, graph))
}

/// The daemon's configuration: the webhook bench's, with the emulator's app id (the
/// poll's `debug_token` is checked against it) and `PAGESYNC_POLL_INTERVAL`.
fn env_for(data_dir: &Path, port: u16, graph_port: u16, key: &EncryptionKey, poll: &str) -> Vec<(String, String)> {
    let mut env = daemon_env(data_dir, port, graph_port, key);
    env.retain(|(k, _)| k != "FACEBOOK_APP_ID");
    env.push(("FACEBOOK_APP_ID".into(), pagesync::emulator::APP_ID.into()));
    env.push(("PAGESYNC_POLL_INTERVAL".into(), poll.into()));
    env
}

/// With `PAGESYNC_BENCH_KEEP`, writes the daemon's configuration (the encryption key
/// included, so mode 0600) to `dir/daemon.env`, so that the kept data dir can be served
/// again by hand: `pagesync serve --env-file dir/daemon.env` (the emulator is gone by
/// then: Graph calls fail, which is fine for looking at memory or the store).
fn keep_env(dir: &Path, env: &[(String, String)]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if std::env::var_os("PAGESYNC_BENCH_KEEP").is_none() {
        return Ok(());
    }
    let path = dir.join("daemon.env");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    for (k, v) in env {
        writeln!(file, "{k}={v}").with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn start_daemon(
    dir: &Path,
    env: &[(String, String)],
    port: u16,
    deadline: Duration,
) -> anyhow::Result<(Daemon, Duration)> {
    check_config(dir, env)?;
    let mut daemon = Daemon::spawn(dir, env, port)?;
    let ready = daemon.wait_ready(deadline)?;
    Ok((daemon, ready))
}

/// A wrk script of `n` signed deliveries cycling over `pages` Pages.
fn script(dir: &Path, name: &str, pages: usize, n: usize) -> anyhow::Result<std::path::PathBuf> {
    let step = (pages / n.max(1)).max(1);
    let deliveries: Vec<Signed> =
        (0..n.min(pages)).map(|i| Signed::new(delivery_body(&page_id(i * step), 1_767_225_600, i))).collect();
    let path = dir.join(name);
    std::fs::write(&path, wrk_script(&deliveries)).context("cannot write the wrk script")?;
    Ok(path)
}

/// wrk's warm-up and measured run, and the CPU each process used during the latter
/// (`run` names the `PAGESYNC_BENCH_PERF` file).
fn measure_wrk(daemon: &mut Daemon, script: &Path, seconds: u64, run: &str) -> anyhow::Result<(WrkResult, CpuUse)> {
    let url = format!("http://{}/facebook/webhook", daemon.addr);
    run_wrk(script, &url, WARMUP_SECONDS)?;
    daemon.ensure_running()?;
    let perf = Perf::start(daemon.pid(), run, seconds);
    let before = CpuSample::take(daemon.pid());
    let load = run_wrk(script, &url, seconds)?;
    let cpu = CpuSample::take(daemon.pid()).since(&before, load.requests);
    perf.finish();
    daemon.ensure_running()?;
    Ok((load, cpu))
}

/// Bytes allocated on disk below `path` (like `du`: blocks, folders included).
fn du(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => m.blocks() * 512 + du(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn mem(m: &Memory) -> String {
    format!("VmRSS {:.1} MiB, VmHWM {:.1} MiB", m.rss_mib, m.hwm_mib)
}

fn bench_load(dir: &Path, knobs: &Knobs) -> anyhow::Result<()> {
    let plan = &knobs.plan;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    say(&format!("temp dir {}; {cores} cores; {plan:?}", dir.display()));
    let mut problems: Vec<String> = Vec::new();

    // 1. Baseline: 100 Pages.
    let base_dir = dir.join("baseline");
    let base_plan = Plan { shops: 1, pages: BASELINE_PAGES, big_shop_pages: 0, sessions: 1, inbox: 0 };
    let (key, _, graph) = seed_dir(&base_dir, &base_plan)?;
    let port = free_port()?;
    let env = env_for(&base_dir.join("data"), port, graph.port, &key, "24h");
    let (mut daemon, _) = start_daemon(&base_dir, &env, port, Duration::from_secs(30))?;
    let base_script = script(&base_dir, "deliveries.lua", BASELINE_PAGES, BASELINE_PAGES)?;
    // Counted like the load run's: warm-up included.
    let base_gets_before = graph.total();
    let (base, base_cpu) = measure_wrk(&mut daemon, &base_script, knobs.seconds, "baseline")?;
    let base_gets = graph.total() - base_gets_before;
    say(&format!(
        "baseline ({BASELINE_PAGES} Pages): {:.0} deliveries/s, p99 {:.2} ms, {} errors, {base_gets} Page GETs",
        base.rps,
        base.p99_ms,
        base.errors()
    ));
    say(&format!("baseline {}", base_cpu.describe()));
    let stop = daemon.terminate(Duration::from_secs(30))?;
    if !stop.clean() {
        problems.push(format!("baseline daemon stop: {}", stop.describe()));
    }
    graph.stop();

    // 2. The large data dir: start-up with the inbox, drain, rest.
    let big_dir = dir.join("large");
    let (key, seeded, graph) = seed_dir(&big_dir, plan)?;
    let data_dir = big_dir.join("data");
    let disk_seeded = du(&data_dir.join("db"));
    let port = free_port()?;
    let env = env_for(&data_dir, port, graph.port, &key, &knobs.poll_interval);
    keep_env(&big_dir, &env)?;
    let (mut daemon, ready) = start_daemon(&big_dir, &env, port, Duration::from_secs(600))?;
    let addr = daemon.addr;
    say(&format!(
        "ready (/readyz 200) in {:.2} s with {} inbox records; {}",
        ready.as_secs_f64(),
        plan.inbox,
        mem(&daemon.memory()?)
    ));
    let drain_started = Instant::now();
    let drain_deadline = Duration::from_secs(1800);
    let drained = loop {
        daemon.ensure_running()?;
        let depth = scrape(addr).ok().and_then(|m| metric(&m, "pagesync_inbox_depth", ""));
        if depth == Some(0.0) {
            break Some(drain_started.elapsed());
        }
        if drain_started.elapsed() > drain_deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let drain_total = drained.map(|d| d + ready);
    match drained {
        Some(d) => {
            say(&format!("inbox drained {:.1} s after ready ({} Page GETs so far)", d.as_secs_f64(), graph.total()))
        }
        None => problems.push(format!("the inbox had not drained {} s after ready", drain_deadline.as_secs())),
    }
    let at_rest = daemon.memory()?;
    let disk_db = du(&data_dir.join("db"));
    let disk_files = du(&data_dir.join("facebook"));
    say(&format!(
        "at rest: {}; db {} MiB (seeded {} MiB), page files {} MiB",
        mem(&at_rest),
        disk_db >> 20,
        disk_seeded >> 20,
        disk_files >> 20
    ));

    // 3. Load with the poll running (unless a long interval was asked for, to measure
    // without it).
    let poll_wanted = knobs.poll_interval.ends_with('s') || knobs.poll_interval.ends_with('m');
    let poll_deadline = Instant::now() + Duration::from_secs(if poll_wanted { 120 } else { 0 });
    while poll_checks(addr) == 0.0 && Instant::now() < poll_deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let checks_before = poll_checks(addr);
    if checks_before == 0.0 && poll_wanted {
        problems.push("the poll had not started 120 s after the drain; the load ran without it".into());
    }
    let stop_flag = Arc::new(AtomicBool::new(false));
    let big_shop = seed::shop_domain(0);
    let cookie = format!("session_id={}", seeded.big_shop_cookie);
    let dashboard = if knobs.dashboard {
        loader(
            addr,
            "/".to_owned(),
            vec![("Cookie", cookie), ("Accept", "text/html".to_owned())],
            DASHBOARD_PERIOD,
            stop_flag.clone(),
            |body| body.contains("data-page-id="),
        )
    } else {
        std::thread::spawn(Probe::default)
    };
    let metrics = loader(addr, "/metrics".to_owned(), vec![], METRICS_PERIOD, stop_flag.clone(), |b| {
        b.contains("pagesync_inbox_depth")
    });
    let list_headers = vec![("Authorization", format!("Bearer {}", seeded.api_key))];
    let list_check: fn(&str) -> bool = |b| b.starts_with('{') && b.contains("\"pages\":[");
    let list = match knobs.list.as_str() {
        "off" => std::thread::spawn(Probe::default),
        "shop" => loader(
            addr,
            format!("/api/v1/pages?shop={big_shop}"),
            list_headers,
            LIST_EVERY,
            stop_flag.clone(),
            list_check,
        ),
        "all" => loader(addr, "/api/v1/pages".to_owned(), list_headers, LIST_EVERY, stop_flag.clone(), list_check),
        _ => list_walker(
            addr,
            format!("/api/v1/pages?limit={LIST_SLICE}"),
            list_headers,
            LIST_SLICE_EVERY,
            stop_flag.clone(),
            list_check,
        ),
    };
    let big_script = script(&big_dir, "deliveries.lua", plan.pages, knobs.script_pages)?;
    let gets_before = graph.total();
    // Run after run, while the loaders keep going: the first starts right after the
    // drain, the later ones show whether the store settles.
    let mut runs = Vec::new();
    let load = loop {
        let run = measure_wrk(&mut daemon, &big_script, knobs.seconds, &format!("load-{}", runs.len() + 1));
        match run {
            Ok(run) if runs.len() + 1 < knobs.load_runs => runs.push(run),
            Ok(run) => break Ok(run),
            Err(e) => break Err(e),
        }
    };
    let under_load = daemon.memory();
    stop_flag.store(true, Ordering::Relaxed);
    let probes: Vec<Probe> = [dashboard, metrics, list]
        .into_iter()
        .map(|h| h.join().map_err(|_| anyhow!("a loader panicked")))
        .collect::<Result<_, _>>()?;
    let ((load, load_cpu), under_load) = (load?, under_load?);
    for (k, (run, cpu)) in runs.iter().enumerate() {
        say(&format!("load run {}: {:.0} deliveries/s, p99 {:.2} ms; {}", k + 1, run.rps, run.p99_ms, cpu.describe()));
    }
    say(&format!("load run {}: {}", runs.len() + 1, load_cpu.describe()));
    let checks_during = poll_checks(addr) - checks_before;
    let gets_during = graph.total() - gets_before;
    println!("{}", indent(&load.raw));
    let names = ["dashboard (shop 0)", "/metrics", "/api/v1/pages (PAGESYNC_SCALE_LIST)"];
    for (name, probe) in names.iter().zip(&probes) {
        say(&format!("{name}: {}", probe.describe()));
        if !probe.failed.is_empty() {
            problems.push(format!("{name}: {} failed requests (first: {})", probe.failed.len(), probe.failed[0]));
        }
    }
    if checks_during == 0.0 && poll_wanted {
        problems.push("no poll debug_token call during the measured run: the poll was not active".into());
    }

    let stop = daemon.terminate(Duration::from_secs(60))?;
    if !stop.clean() {
        problems.push(format!("stop: {}", stop.describe()));
    }
    let log = LogSummary::read(&daemon.log, 0);
    if log.lines > 0 {
        problems.push(format!("{} warn/error lines in the daemon log: {}", log.lines, log.top(5)));
    }
    drop(daemon);

    // 4. A restart of the same data dir, now with every Page's file and an empty
    // inbox: what a routine restart costs, and RSS at rest without the drain's history.
    // At rest means the poll too: with the short interval its first run would start
    // a tenth of the interval (3 s) after the start and read every Page meanwhile; the
    // daily interval's first run waits 5 minutes.
    let rest_env = env_for(&data_dir, port, graph.port, &key, "24h");
    let (mut daemon, restart_ready) = start_daemon(&big_dir, &rest_env, port, Duration::from_secs(600))?;
    std::thread::sleep(REST);
    let restart_rest = daemon.memory()?;
    say(&format!(
        "restart: ready in {:.2} s; after {} s idle: {}",
        restart_ready.as_secs_f64(),
        REST.as_secs(),
        mem(&restart_rest)
    ));
    let restart_stop = daemon.terminate(Duration::from_secs(60))?;
    if !restart_stop.clean() {
        problems.push(format!("restart stop: {}", restart_stop.describe()));
    }
    graph.stop();

    // Summary.
    let yes = |ok: bool| if ok { "yes" } else { "NO" };
    let ratio = load.rps / base.rps;
    let mut out = String::new();
    let _ = writeln!(out, "\n==== pagesync scale benchmark ====");
    let _ = writeln!(
        out,
        "size: {} Pages, {} shops (shop 0: {} Pages, {big_shop}), {} sessions, {} pending inbox records; {cores} cores; \
         wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{}s after {WARMUP_SECONDS}s over {} Pages; emulator {} ms; poll interval {}",
        plan.pages,
        plan.shops,
        plan.big_shop_pages.min(plan.pages),
        plan.sessions,
        plan.inbox,
        knobs.seconds,
        knobs.script_pages.min(plan.pages),
        GRAPH_LATENCY.as_millis(),
        knobs.poll_interval
    );
    let _ = writeln!(out, "{:<44} {:>22}   {:<14} met", "metric", "measured", "target");
    let row = |out: &mut String, name: &str, value: String, target: &str, met: &str| {
        let _ = writeln!(out, "{name:<44} {value:>22}   {target:<14} {met}");
    };
    row(&mut out, "deliveries/s, 100 Pages, no other load", format!("{:.0}", base.rps), "-", "");
    row(&mut out, "  p99", format!("{:.2} ms", base.p99_ms), "-", "");
    row(&mut out, "  Page GETs during the run", format!("{base_gets}"), "-", "");
    let us = |c: &CpuUse| format!("{:.0} µs", c.daemon_us_per_delivery());
    row(&mut out, "  daemon CPU per delivery", us(&base_cpu), "-", "");
    row(
        &mut out,
        "deliveries/s, large store + load",
        format!("{:.0}", load.rps),
        ">= 90 % of base",
        yes(ratio >= TARGET_RATIO),
    );
    row(&mut out, "  ratio to the 100-Page run", format!("{:.0} %", ratio * 100.0), ">= 90 %", "");
    for (k, (run, _)) in runs.iter().enumerate() {
        let (rps, p99) = (run.rps, run.p99_ms);
        let value = format!("{rps:.0} ({:.0} %, {p99:.2} ms)", rps / base.rps * 100.0);
        row(&mut out, &format!("  earlier run {} of {}", k + 1, runs.len() + 1), value, "-", "");
    }
    row(&mut out, "  p99", format!("{:.2} ms", load.p99_ms), "< 10 ms", yes(load.p99_ms < TARGET_P99_MS));
    row(
        &mut out,
        "  errors (socket + non-2xx)",
        format!("{}", load.errors() + base.errors()),
        "0",
        yes(load.errors() + base.errors() == 0),
    );
    row(
        &mut out,
        "  poll debug_token calls during the run",
        format!("{checks_during:.0}"),
        "> 0",
        yes(checks_during > 0.0),
    );
    row(&mut out, "  Page GETs during the run", format!("{gets_during}"), "-", "");
    row(&mut out, "  daemon CPU per delivery", us(&load_cpu), "-", "");
    let target_ms = [TARGET_DASHBOARD_MS, TARGET_METRICS_MS, f64::INFINITY];
    for ((name, probe), target) in names.iter().zip(&probes).zip(target_ms) {
        let p99 = probe.pct(0.99);
        let t = if target.is_finite() { format!("< {target} ms") } else { "-".into() };
        let met = if target.is_finite() { yes(p99 < target) } else { "" };
        if probe.ms.is_empty() && probe.failed.is_empty() {
            row(&mut out, name, "not loaded".to_owned(), &t, "");
            continue;
        }
        row(
            &mut out,
            &format!("{name} p50 / p99 ({} req)", probe.ms.len()),
            format!("{:.1} / {:.1} ms", probe.pct(0.5), p99),
            &t,
            met,
        );
    }
    row(
        &mut out,
        "start-up to /readyz 200",
        format!("{:.2} s", ready.as_secs_f64()),
        "< 5 s",
        yes(ready.as_secs_f64() < TARGET_READY_S),
    );
    let drain = drain_total.map_or("not drained".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
    row(&mut out, &format!("  start to inbox drained ({} records)", plan.inbox), drain, "-", "");
    row(
        &mut out,
        "RSS at rest (after the drain)",
        format!("{:.1} MiB", at_rest.rss_mib),
        "< 64 MiB",
        yes(at_rest.rss_mib < TARGET_RSS_MIB),
    );
    row(
        &mut out,
        "restart (page files, empty inbox) to ready",
        format!("{:.2} s", restart_ready.as_secs_f64()),
        "-",
        "",
    );
    row(
        &mut out,
        &format!("RSS at rest after that restart ({} s idle)", REST.as_secs()),
        format!("{:.1} MiB", restart_rest.rss_mib),
        "< 64 MiB",
        yes(restart_rest.rss_mib < TARGET_RSS_MIB),
    );
    row(
        &mut out,
        "RSS under load / peak (VmHWM)",
        format!("{:.1} / {:.1} MiB", under_load.rss_mib, under_load.hwm_mib),
        "-",
        "",
    );
    let per_page = |bytes: u64| format!("{:.0} B", bytes as f64 / plan.pages as f64);
    row(&mut out, "db on disk per Page (after the drain)", per_page(disk_db), "-", "");
    row(&mut out, "db on disk per Page (as seeded)", per_page(disk_seeded), "-", "");
    row(&mut out, "page files on disk per Page", per_page(disk_files), "-", "");
    row(&mut out, "stop on SIGTERM", format!("{} in {:.2} s", stop.short(), stop.took.as_secs_f64()), "exit 0", "");
    report::write_problems(&mut out, &problems);
    let _ = writeln!(out, "poll spread: not measured in this mode (PAGESYNC_SCALE_MODE=spread)");
    print!("{out}");
    Ok(())
}

fn bench_spread(dir: &Path, knobs: &Knobs) -> anyhow::Result<()> {
    let plan = Plan { inbox: 0, ..knobs.plan.clone() };
    say(&format!("temp dir {}; spread mode; {plan:?}", dir.display()));
    let (key, _, graph) = seed_dir(dir, &plan)?;
    let port = free_port()?;
    let env = env_for(&dir.join("data"), port, graph.port, &key, SPREAD_INTERVAL);
    let (mut daemon, ready) = start_daemon(dir, &env, port, Duration::from_secs(600))?;
    say(&format!("ready in {:.2} s; waiting for the poll's first Page GET", ready.as_secs_f64()));
    // The minutes are counted from the poll's first GET: the first run after a start
    // holds back for a settle time (a tenth of the interval) on purpose, and that quiet
    // minute is not the spread of a run.
    let waiting = Instant::now();
    while graph.total() == 0 {
        daemon.ensure_running()?;
        anyhow::ensure!(waiting.elapsed() < Duration::from_secs(660), "no Page GET within 11 minutes of ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_get = waiting.elapsed();
    say(&format!(
        "first Page GET {:.1} s after ready; counting Page GETs per minute for {SPREAD_MINUTES} minutes",
        first_get.as_secs_f64()
    ));
    let start = Instant::now();
    let mut per_minute = Vec::with_capacity(SPREAD_MINUTES);
    let mut last = 0;
    for minute in 1..=SPREAD_MINUTES {
        let until = start + Duration::from_secs(60 * minute as u64);
        while Instant::now() < until {
            daemon.ensure_running()?;
            std::thread::sleep(Duration::from_millis(500));
        }
        let now = graph.total();
        per_minute.push(now - last);
        say(&format!("minute {minute}: {} Page GETs", now - last));
        last = now;
    }
    // One interval went by: a poll that kept its pace fetched every Page once.
    let (mut never, mut once, mut more) = (0usize, 0usize, 0usize);
    for i in 0..plan.pages {
        match graph.count(&page_id(i)) {
            0 => never += 1,
            1 => once += 1,
            _ => more += 1,
        }
    }
    let stop = daemon.terminate(Duration::from_secs(60))?;
    graph.stop();
    let total: u64 = per_minute.iter().sum();
    let mean = total as f64 / per_minute.len() as f64;
    let max = per_minute.iter().copied().max().unwrap_or(0);
    let ratio = if mean > 0.0 { max as f64 / mean } else { f64::NAN };
    println!("\n==== pagesync scale benchmark: poll spread ====");
    println!(
        "size: {} Pages, {} shops; PAGESYNC_POLL_INTERVAL={SPREAD_INTERVAL}; emulator {} ms",
        plan.pages,
        plan.shops,
        GRAPH_LATENCY.as_millis()
    );
    println!(
        "first Page GET {:.1} s after ready; Page GETs per minute from it: {per_minute:?}",
        first_get.as_secs_f64()
    );
    println!(
        "total {total} (of {} Pages), mean {mean:.0}/min, max {max}/min, max/mean {ratio:.2} (target <= {TARGET_SPREAD}: {})",
        plan.pages,
        if ratio <= TARGET_SPREAD { "met" } else { "MISSED" }
    );
    println!("Pages fetched in those {SPREAD_MINUTES} minutes: once {once}, more than once {more}, never {never}");
    println!("stop on SIGTERM: {} in {:.2} s", stop.short(), stop.took.as_secs_f64());
    Ok(())
}

fn say(msg: &str) {
    println!("scale bench: {msg}");
}
