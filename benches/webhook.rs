#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end webhook benchmark: the release `pagesync serve` binary under `wrk`, on
//! loopback, against an in-process fake Graph API. Run it with `benches/webhook.sh`
//! (installs `wrk` if missing, then `cargo bench --bench webhook`); docs/benchmarks.md
//! explains the set-up and records results.
//!
//! What happens, in order:
//! 1. A temporary data dir gets Page tokens for [`PAGES`] Pages, sealed and stored
//!    through the library's TokenVaultActor, before the daemon starts.
//! 2. A fake Graph API (actix-web, own thread) answers `GET /v25.0/{page_id}` after
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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor as _;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context as _, anyhow, bail, ensure};
use pagesync::verify::{sign_sha1, sign_sha256};
use pagesync_actors::messages::{Shutdown, StorePageToken};
use pagesync_actors::store::trees;
use pagesync_actors::{EncryptionKey, PageId, Sealer, Secret, Store, StoreConfig, TokenVaultActor, UserId};

#[path = "webhook/relay.rs"]
mod relay;

/// Pages with a stored token; the throughput run cycles over all of them.
const PAGES: u64 = 100;
/// Page `i` has the id `PAGE_BASE + i` (15 digits, like real Page ids).
const PAGE_BASE: u64 = 104_857_600_000_000;
/// How long the fake Graph API takes to answer, like a fast real call.
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
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
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

    let tmp = tempfile::Builder::new().prefix("pagesync-bench-").tempdir().context("cannot create a temp dir")?;
    // `PAGESYNC_BENCH_MODE=relay` (benches/relay.sh) measures the relay instead.
    let relay = std::env::var("PAGESYNC_BENCH_MODE").is_ok_and(|m| m == "relay");
    let result =
        if relay { relay::bench(tmp.path(), seconds, &wrk_version) } else { bench(tmp.path(), seconds, &wrk_version) };
    match result {
        Ok(()) if std::env::var_os("PAGESYNC_BENCH_KEEP").is_none() => Ok(()),
        Ok(()) => {
            let kept = tmp.keep();
            println!("kept {} (daemon log: {})", kept.display(), kept.join("pagesync.log").display());
            Ok(())
        }
        // Keep the data dir and the daemon's log for a look at what went wrong.
        Err(e) => Err(e.context(format!("temp dir kept: {}", tmp.keep().display()))),
    }
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

    // b. The fake Graph API.
    let graph = FakeGraph::start().context("starting the fake Graph API")?;
    say(&format!("fake Graph API on 127.0.0.1:{} ({} ms per answer)", graph.port, GRAPH_LATENCY.as_millis()));

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
    let file_check = check_page_file(&data_dir, &burst_page);
    match &file_check {
        Ok(note) | Err(note) => say(&format!("page_data.json of Page {burst_page}: {note}")),
    }

    let mem_final = daemon.memory()?;
    let graph_bad_auth = graph.counts.missing_proof.load(Ordering::Relaxed);

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
        problems.push(format!("{graph_bad_auth} Graph GETs without access_token/appsecret_proof/appsecret_time"));
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
         signed bodies (both headers); fake Graph {} ms; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds}s after a \
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
    if problems.is_empty() {
        let _ = writeln!(out, "problems seen: none");
    } else {
        let _ = writeln!(out, "problems seen:");
        for p in &problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    print!("{out}");
    Ok(())
}

fn say(msg: &str) {
    println!("webhook bench: {msg}");
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

// ----- a. seeding ---------------------------------------------------------------------

/// Stores a token for each Page through the TokenVaultActor, then closes the store
/// and drops every handle so that sled's file lock is free for the daemon.
fn seed_tokens(db: &Path, key: &EncryptionKey, pages: &[String]) -> anyhow::Result<()> {
    let sealer = Sealer::new(key);
    actix_web::rt::System::new().block_on(async move {
        let store = Store::open(&StoreConfig::new(db)).context("cannot open the store")?;
        let vault = TokenVaultActor::new(store.clone(), sealer).context("cannot start the token vault")?.start();
        let owner = UserId::random();
        let sends = pages.iter().map(|page| {
            let msg = PageId::parse(page).map(|page| StorePageToken {
                token: Secret::new(format!("bench-page-token-{page}")),
                page,
                owner: owner.clone(),
            });
            let vault = vault.clone();
            async move {
                let msg = msg.map_err(|e| anyhow!("bad Page id {page}: {e}"))?;
                vault.send(msg).await.context("token vault mailbox")?.context("storing a Page token")
            }
        });
        for result in futures_util::future::join_all(sends).await {
            result?;
        }
        vault.send(Shutdown).await.context("stopping the token vault")?;
        drop(vault);
        tokio::task::spawn_blocking(move || store.close())
            .await
            .context("store closer panicked")?
            .context("closing the store")?;
        anyhow::Ok(())
    })
}

/// Counts what is left in the inbox, opening the store after the daemon stopped.
fn inbox_len(db: &Path) -> anyhow::Result<usize> {
    let store = Store::open(&StoreConfig::new(db))?;
    let len = store.tree(trees::INBOX)?.len();
    store.close()?;
    Ok(len)
}

// ----- b. the fake Graph API ----------------------------------------------------------

#[derive(Default)]
struct GraphCounts {
    total: AtomicU64,
    per_page: Mutex<HashMap<String, u64>>,
    /// GETs that lack the token or the proof every Page call must carry.
    missing_proof: AtomicU64,
}

struct FakeGraph {
    port: u16,
    counts: Arc<GraphCounts>,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl FakeGraph {
    fn start() -> anyhow::Result<FakeGraph> {
        let counts = Arc::new(GraphCounts::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = counts.clone();
        let thread = std::thread::Builder::new().name("fake-graph".into()).spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::from(shared);
                let server = TcpListener::bind("127.0.0.1:0").and_then(|listener| {
                    let port = listener.local_addr()?.port();
                    let server = HttpServer::new(move || {
                        App::new().app_data(data.clone()).route("/v25.0/{page_id}", web::get().to(graph_page))
                    })
                    .workers(1)
                    .disable_signals()
                    .listen(listener)?
                    .run();
                    Ok((port, server))
                });
                match server {
                    Ok((port, server)) => {
                        let _ = tx.send(Ok((port, server.handle())));
                        if let Err(e) = server.await {
                            eprintln!("fake Graph API failed: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            })
        })?;
        let (port, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .context("fake Graph API did not start")?
            .map_err(|e| anyhow!(e))?;
        Ok(FakeGraph { port, counts, handle, thread })
    }

    fn total(&self) -> u64 {
        self.counts.total.load(Ordering::SeqCst)
    }

    fn count(&self, page: &str) -> u64 {
        self.counts.per_page.lock().expect("fake Graph counters poisoned").get(page).copied().unwrap_or(0)
    }

    /// Waits until no GET arrived for `quiet`; `None` if that did not happen within
    /// `deadline`. Returns how long it took until the last GET.
    fn wait_quiet(&self, quiet: Duration, deadline: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut last = self.total();
        let mut last_change = start;
        while start.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.total();
            if now != last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed() >= quiet {
                return Some(last_change - start);
            }
        }
        None
    }

    fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        let _ = self.thread.join();
    }
}

/// `GET /v25.0/{page_id}`: counts, waits like Graph would, answers the Page's metadata.
async fn graph_page(page: web::Path<String>, req: HttpRequest, counts: web::Data<GraphCounts>) -> HttpResponse {
    let page = page.into_inner();
    let query = req.query_string();
    if !["access_token=", "appsecret_proof=", "appsecret_time="].iter().all(|k| query.contains(k)) {
        counts.missing_proof.fetch_add(1, Ordering::Relaxed);
    }
    *counts.per_page.lock().expect("fake Graph counters poisoned").entry(page.clone()).or_default() += 1;
    counts.total.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(GRAPH_LATENCY).await;
    let name = expected_name(&page);
    HttpResponse::Ok().json(serde_json::json!({ "id": page, "name": name, "category": "Shop" }))
}

/// The name the fake Graph gives a Page.
fn expected_name(page: &str) -> String {
    match page.parse::<u64>() {
        Ok(id) if id >= PAGE_BASE => format!("Bench Page {}", id - PAGE_BASE),
        _ => format!("Bench Page {page}"),
    }
}

// ----- c. the daemon ------------------------------------------------------------------

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn daemon_env(data_dir: &Path, port: u16, graph_port: u16, key: &EncryptionKey) -> Vec<(String, String)> {
    [
        ("FACEBOOK_APP_ID", "123456".to_owned()),
        ("FACEBOOK_APP_SECRET", APP_SECRET.to_owned()),
        ("FACEBOOK_REDIRECT_URI", format!("http://127.0.0.1:{port}/facebook/callback")),
        ("FACEBOOK_WEBHOOK_ADDRESS", format!("http://127.0.0.1:{port}/facebook/webhook")),
        ("FACEBOOK_VERIFY_TOKEN", "bench-verify-token".to_owned()),
        ("FACEBOOK_GRAPH_URL", format!("http://127.0.0.1:{graph_port}")),
        ("SHOPIFY_API_KEY", "bench-shopify-key".to_owned()),
        ("SHOPIFY_API_SECRET", "bench-shopify-secret".to_owned()),
        ("SHOPIFY_REDIRECT_URI", format!("http://127.0.0.1:{port}/shopify/callback")),
        ("STATE_TOKEN_SECRET", "bench-state-token-secret-0123456789abcdef".to_owned()),
        ("PAGESYNC_ENCRYPTION_KEY", key.to_base64()),
        ("PAGESYNC_DATA_DIR", data_dir.display().to_string()),
        ("PAGESYNC_BIND", format!("127.0.0.1:{port}")),
        ("PAGESYNC_LOG", "warn".to_owned()),
        ("PAGESYNC_LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A `pagesync` command with exactly the bench's configuration: every other pagesync
/// variable and systemd hand-over is removed, and it runs in the temp dir so that no
/// `.env` of the developer's is read.
fn pagesync_command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pagesync"));
    cmd.current_dir(dir);
    for var in pagesync::config::VARS {
        cmd.env_remove(var.name);
    }
    for var in ["CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

fn check_config(dir: &Path, env: &[(String, String)]) -> anyhow::Result<()> {
    let out = pagesync_command(dir, env)
        .arg("check-config")
        .output()
        .with_context(|| format!("cannot run {}", env!("CARGO_BIN_EXE_pagesync")))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "pagesync check-config refused the bench's configuration ({}):\n{text}", out.status);
    say(&format!("check-config: {}", text.trim()));
    Ok(())
}

struct Daemon {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Daemon {
    fn spawn(dir: &Path, env: &[(String, String)], port: u16) -> anyhow::Result<Daemon> {
        let log = dir.join("pagesync.log");
        let file = std::fs::File::create(&log).context("cannot create the daemon log")?;
        let child = pagesync_command(dir, env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start pagesync serve")?;
        Ok(Daemon { child, log, addr: SocketAddr::from(([127, 0, 0, 1], port)) })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        LogSummary::read(&self.log, 0).tail(30)
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("pagesync exited during the run ({status}); log:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// Polls `/readyz` until it answers 200.
    fn wait_ready(&mut self, deadline: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < deadline {
            self.ensure_running()?;
            match http(self.addr, "GET", "/readyz", &[], b"") {
                Ok((200, _)) => return Ok(start.elapsed()),
                Ok((status, body)) => last = format!("{status} {}", body.trim()),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("pagesync not ready after {deadline:?} (last /readyz: {last}); log:\n{}", self.log_tail())
    }

    fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in {path}"))?;
            let kib: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("cannot parse {line:?}"))?;
            Ok(kib / 1024.0)
        };
        Ok(Memory { hwm_mib: field("VmHWM:")?, rss_mib: field("VmRSS:")? })
    }

    /// Sends SIGTERM and waits for the exit; SIGKILL after `deadline`.
    fn terminate(&mut self, deadline: Duration) -> anyhow::Result<Stop> {
        let start = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().context("cannot run kill")?;
        ensure!(sent.success(), "kill -TERM {} failed", self.pid());
        while start.elapsed() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Stop { status: Some(status), took: start.elapsed() });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(Stop { status: None, took: start.elapsed() })
    }
}

impl Drop for Daemon {
    /// A harness failure must not leave a daemon behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Memory {
    hwm_mib: f64,
    rss_mib: f64,
}

struct Stop {
    /// `None`: it did not stop in time and was killed.
    status: Option<ExitStatus>,
    took: Duration,
}

impl Stop {
    fn clean(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn short(&self) -> String {
        match self.status {
            Some(s) => match s.code() {
                Some(code) => format!("exit {code}"),
                None => s.to_string(),
            },
            None => "HUNG, killed".to_owned(),
        }
    }

    fn describe(&self) -> String {
        match self.status {
            Some(s) => format!("pagesync {s}"),
            None => "pagesync did not exit within 30 s of SIGTERM and was killed with SIGKILL".to_owned(),
        }
    }
}

/// What the daemon logged (at `warn`, so every line is worth a look) after its first
/// `skip` lines.
struct LogSummary {
    all: Vec<String>,
    lines: usize,
    by_message: Vec<(String, usize)>,
}

impl LogSummary {
    fn read(path: &Path, skip: usize) -> LogSummary {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for line in all.iter().skip(skip) {
            let key = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => format!(
                    "{} {}",
                    v["level"].as_str().unwrap_or("?"),
                    v["message"].as_str().or_else(|| v["fields"]["message"].as_str()).unwrap_or(line)
                ),
                Err(_) => line.clone(),
            };
            *counts.entry(key).or_default() += 1;
        }
        let mut by_message: Vec<(String, usize)> = counts.into_iter().collect();
        by_message.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        LogSummary { lines: all.len().saturating_sub(skip), all, by_message }
    }

    fn tail(&self, n: usize) -> String {
        self.all[self.all.len().saturating_sub(n)..].join("\n")
    }

    fn top(&self, n: usize) -> String {
        self.by_message.iter().take(n).map(|(m, c)| format!("{c} x \"{m}\"")).collect::<Vec<_>>().join("; ")
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    let _ = write!(req, "Content-Length: {}\r\n\r\n", body.len());
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP answer: {:?}", answer.lines().next()))?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// One good delivery must be answered 200 success and a forged one 401, else the load
/// numbers would measure something else.
fn smoke_test(addr: SocketAddr, page: &str) -> anyhow::Result<()> {
    let good = Signed::new(delivery_body(page, 1_767_225_599, 0));
    let headers = good.headers();
    let (status, body) = http(addr, "POST", "/facebook/webhook", &headers, good.body.as_bytes())?;
    ensure!(status == 200 && body.contains("success"), "a signed delivery got {status} {body}");
    let wrong = sign_sha256("wrong secret", good.body.as_bytes());
    let forged = [("Content-Type", "application/json"), ("X-Hub-Signature-256", wrong.as_str())];
    let (status, _) = http(addr, "POST", "/facebook/webhook", &forged, good.body.as_bytes())?;
    ensure!(status == 401, "a delivery with a wrong signature got {status}, not 401");
    Ok(())
}

// ----- d. throughput with wrk ---------------------------------------------------------

/// A delivery body with both signature headers.
struct Signed {
    body: String,
    sha256: String,
    sha1: String,
}

impl Signed {
    fn new(body: String) -> Signed {
        Signed { sha256: sign_sha256(APP_SECRET, body.as_bytes()), sha1: sign_sha1(APP_SECRET, body.as_bytes()), body }
    }

    fn headers(&self) -> [(&str, &str); 3] {
        [
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", self.sha256.as_str()),
            ("X-Hub-Signature", self.sha1.as_str()),
        ]
    }
}

/// A compact one-entry `name` change, about 140 bytes, as Meta sends it.
fn delivery_body(page: &str, time: u64, n: usize) -> String {
    format!(
        r#"{{"object":"page","entry":[{{"id":"{page}","time":{time},"changes":[{{"field":"name","value":"Bench Page {n:03} renamed (bench)"}}]}}]}}"#
    )
}

/// A wrk script that cycles through pre-formatted requests (formatting once keeps
/// wrk's own CPU use low: it shares the machine with the daemon) and reports exact
/// figures from `done`.
fn wrk_script(deliveries: &[Signed]) -> String {
    let mut s =
        String::from("-- generated by benches/webhook.rs: signed Meta deliveries, cycled\nlocal deliveries = {\n");
    for d in deliveries {
        let _ = writeln!(s, "  {{ [==[{}]==], \"{}\", \"{}\" }},", d.body, d.sha256, d.sha1);
    }
    s.push_str(
        r#"}
local prepared = {}
local next_index = 0

function init(args)
  for i, d in ipairs(deliveries) do
    prepared[i] = wrk.format("POST", "/facebook/webhook", {
      ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = d[2],
      ["X-Hub-Signature"] = d[3],
    }, d[1])
  end
end

function request()
  next_index = next_index % #prepared + 1
  return prepared[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk-lua: requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"#,
    );
    s
}

struct WrkResult {
    raw: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// connect, read, write, timeout.
    socket: [u64; 4],
    non_2xx: u64,
    lua: Option<LuaExtra>,
}

struct LuaExtra {
    p999_ms: f64,
    max_ms: f64,
}

impl WrkResult {
    fn errors(&self) -> u64 {
        self.socket.iter().sum::<u64>() + self.non_2xx
    }
}

fn run_wrk(script: &Path, url: &str, seconds: u64) -> anyhow::Result<WrkResult> {
    let out = Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{WRK_CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "5s", "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("cannot run wrk")?;
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "wrk failed ({}): {}{raw}", out.status, String::from_utf8_lossy(&out.stderr));
    parse_wrk(raw)
}

/// Reads wrk's report: `Requests/sec`, the `--latency` distribution, `Socket errors`,
/// `Non-2xx or 3xx responses`, `N requests in`, and the script's `wrk-lua:` line.
fn parse_wrk(raw: String) -> anyhow::Result<WrkResult> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut requests = None;
    let mut socket = [0; 4];
    let mut non_2xx = 0;
    let mut lua = None;
    for line in raw.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = t.strip_prefix("50%") {
            p50 = parse_latency_ms(v.trim());
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = parse_latency_ms(v.trim());
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (i, part) in v.split(',').enumerate().take(4) {
                socket[i] = part.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some((n, _)) = t.split_once(" requests in ") {
            requests = n.trim().parse::<u64>().ok();
        } else if let Some(v) = t.strip_prefix("wrk-lua:") {
            let kv: HashMap<&str, f64> = v
                .split_whitespace()
                .filter_map(|p| p.split_once('='))
                .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                .collect();
            if let (Some(p999), Some(max)) = (kv.get("p999_us"), kv.get("max_us")) {
                lua = Some(LuaExtra { p999_ms: p999 / 1000.0, max_ms: max / 1000.0 });
            }
        }
    }
    match (rps, p50, p99, requests) {
        (Some(rps), Some(p50_ms), Some(p99_ms), Some(requests)) => {
            Ok(WrkResult { raw, rps, p50_ms, p99_ms, requests, socket, non_2xx, lua })
        }
        _ => bail!("cannot read wrk's report (Requests/sec, 50%, 99%, requests):\n{raw}"),
    }
}

/// `812.00us`, `1.23ms`, `2.00s`, `1.50m` -> milliseconds.
fn parse_latency_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(n * factor)
}

// ----- f. the one-Page burst ----------------------------------------------------------

struct BurstResult {
    /// Answers 200 with `{"status":"success"}`.
    ok: usize,
    /// Anything else: status (0 for a transport error) -> count.
    other: HashMap<u16, usize>,
    elapsed: Duration,
    p50_ms: f64,
    p99_ms: f64,
}

/// Posts `n` signed deliveries for `page` (distinct `time`s, as Meta's retries and
/// updates would be), `concurrency` at a time, from a reqwest client.
fn run_burst(addr: SocketAddr, page: &str, n: usize, concurrency: usize) -> anyhow::Result<BurstResult> {
    pagesync::clients::http::install_crypto_provider();
    let bodies: Arc<Vec<Signed>> =
        Arc::new((0..n).map(|k| Signed::new(delivery_body(page, 1_767_230_000 + k as u64, k % 1000))).collect());
    let url = format!("http://{addr}/facebook/webhook");
    actix_web::rt::System::new().block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the burst's HTTP client")?;
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, bodies, next, url) = (client.clone(), bodies.clone(), next.clone(), url.clone());
                actix_web::rt::spawn(async move {
                    let mut seen: Vec<(u16, bool, Duration)> = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(d) = bodies.get(i) else { break };
                        let sent = Instant::now();
                        let answer = client
                            .post(&url)
                            .header("Content-Type", "application/json")
                            .header("X-Hub-Signature-256", &d.sha256)
                            .header("X-Hub-Signature", &d.sha1)
                            .body(d.body.clone())
                            .send()
                            .await;
                        let (status, success) = match answer {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let text = r.text().await.unwrap_or_default();
                                (status, text.contains("success"))
                            }
                            Err(_) => (0, false),
                        };
                        seen.push((status, success, sent.elapsed()));
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for task in tasks {
            all.extend(task.await.context("a burst task panicked")?);
        }
        let elapsed = start.elapsed();
        let mut latencies: Vec<Duration> = all.iter().map(|(_, _, d)| *d).collect();
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let mut other: HashMap<u16, usize> = HashMap::new();
        let mut ok = 0;
        for (status, success, _) in &all {
            if *status == 200 && *success {
                ok += 1;
            } else {
                *other.entry(*status).or_default() += 1;
            }
        }
        Ok(BurstResult { ok, other, elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99) })
    })
}

/// `<data>/facebook/<page>/page_data.json` must exist, parse, and hold the fake
/// Graph's answer (and no token).
fn check_page_file(data_dir: &Path, page: &str) -> Result<String, String> {
    let path = data_dir.join("facebook").join(page).join("page_data.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let name = expected_name(page);
    if value["id"] != page || value["name"] != name.as_str() || value["category"] != "Shop" {
        return Err(format!("{} holds {value}, expected id {page}, name {name:?}, category Shop", path.display()));
    }
    if text.contains("access_token") || text.contains("bench-page-token") {
        return Err(format!("{} holds a token", path.display()));
    }
    Ok(format!("ok ({} bytes, name {name:?})", text.len()))
}
