//! The relay benchmark (`benches/relay.sh`, i.e. `PAGESYNC_BENCH_MODE=relay cargo bench
//! --bench webhook`): what forwarding every Meta delivery to the bot costs, measured in
//! one run on one machine.
//!
//! 1. Ack throughput at c=64 of Messenger deliveries (no Graph call either way), first
//!    by a daemon without `PAGESYNC_FORWARD_URL`, then by one that forwards every
//!    delivery to a local sink: the ratio is the relay's cost on the hot path.
//! 2. End-to-end forward latency at 1,000 deliveries/s: each delivery carries its send
//!    time; the sink records when it arrives.
//! 3. Backlog: with the sink answering 503, deliveries are acknowledged until 100,000
//!    forwards are pending; then the sink recovers and the time until the outbox is
//!    empty is measured. The daemon's peak RSS (VmHWM) covers all of it.
//!
//! Missed targets are reported, not failed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context as _, anyhow};
use pagesync_actors::EncryptionKey;

use super::{Daemon, PAGE_BASE, Signed, check_config, daemon_env, free_port, http, indent, run_wrk, say, wrk_script};

/// Pages the deliveries cycle over (each its own lane).
const PAGES: u64 = 100;
/// Paced run: deliveries per second and for how long.
const PACED_RATE: u64 = 1_000;
const PACED_SECONDS: u64 = 10;
/// Forwards left pending while the sink is down.
const BACKLOG: u64 = 100_000;

const TARGET_RATIO: f64 = 0.80;
const TARGET_FORWARD_P99_MS: f64 = 50.0;
const TARGET_DRAIN_S: f64 = 30.0;
const TARGET_RSS_MIB: f64 = 64.0;

/// A Messenger message for `page`, its `mid` carrying `marker`.
fn message(page: u64, marker: &str) -> String {
    format!(
        r#"{{"object":"page","entry":[{{"id":"{page}","time":1767225600123,"messaging":[{{"sender":{{"id":"2400000000000001"}},"recipient":{{"id":"{page}"}},"timestamp":1767225600000,"message":{{"mid":"m_{marker}","text":"Is the blue one in stock?"}}}}]}}]}}"#
    )
}

fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The bot stand-in: counts requests, answers 503 while `down`, and for bodies whose
/// `mid` is `m_t<micros>` records the delay between that send time and arrival.
struct Sink {
    port: u16,
    down: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    delays_us: Arc<Mutex<Vec<u64>>>,
}

impl Sink {
    fn start() -> anyhow::Result<Sink> {
        let down = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let delays_us = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the sink")?;
        let port = listener.local_addr()?.port();
        let state = (down.clone(), received.clone(), delays_us.clone());
        std::thread::Builder::new().name("bot-sink".into()).spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::new(state);
                let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(sink)))
                    .workers(1)
                    .disable_signals()
                    .listen(listener);
                match server {
                    Ok(server) => {
                        let _ = server.run().await;
                    }
                    Err(e) => eprintln!("sink failed: {e}"),
                }
            })
        })?;
        Ok(Sink { port, down, received, delays_us })
    }
}

type SinkState = (Arc<AtomicBool>, Arc<AtomicU64>, Arc<Mutex<Vec<u64>>>);

async fn sink(body: web::Bytes, state: web::Data<SinkState>) -> HttpResponse {
    let (down, received, delays) = state.get_ref();
    if down.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    received.fetch_add(1, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&body);
    if let Some(sent) = text.split("\"mid\":\"m_t").nth(1).and_then(|r| r.split('"').next()?.parse::<u64>().ok()) {
        delays.lock().map(|mut d| d.push(unix_micros().saturating_sub(sent))).ok();
    }
    HttpResponse::Ok().finish()
}

/// A daemon on a fresh data dir, with or without forwarding to `sink_port`.
fn start(dir: &Path, name: &str, forward_to: Option<u16>) -> anyhow::Result<Daemon> {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let key = EncryptionKey::generate().map_err(|e| anyhow!("cannot generate a key: {e}"))?;
    let port = free_port()?;
    // Graph is never called for Messenger traffic; the port only has to be valid.
    let mut env = daemon_env(&dir.join("data"), port, free_port()?, &key);
    if let Some(sink) = forward_to {
        env.push(("PAGESYNC_FORWARD_URL".into(), format!("http://127.0.0.1:{sink}/bot")));
    }
    check_config(&dir, &env)?;
    let mut daemon = Daemon::spawn(&dir, &env, port)?;
    daemon.wait_ready(Duration::from_secs(30))?;
    Ok(daemon)
}

/// `pagesync_outbox_pending{kind="forward"}` from `/metrics`.
fn pending(addr: SocketAddr) -> anyhow::Result<u64> {
    let (_, text) = http(addr, "GET", "/metrics", &[], b"")?;
    text.lines()
        .find_map(|l| l.strip_prefix("pagesync_outbox_pending{kind=\"forward\"} ")?.trim().parse().ok())
        .context("no pagesync_outbox_pending in /metrics")
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

pub fn bench(dir: &Path, seconds: u64, wrk_version: &str) -> anyhow::Result<()> {
    say(&format!("relay bench in {}; {wrk_version}", dir.display()));
    // Name changes are stored in the inbox with or without forwarding (the Pages have
    // no token, so no Graph call follows): the difference between the two runs is the
    // forward record and the sending. Messenger messages are stored only to be
    // forwarded, so they have no like-for-like baseline; their figure is reported too.
    let changes: Vec<Signed> = (0..PAGES)
        .map(|i| Signed::new(super::delivery_body(&(PAGE_BASE + i).to_string(), 1_767_225_600, i as usize)))
        .collect();
    let messages: Vec<Signed> = (0..PAGES).map(|i| Signed::new(message(PAGE_BASE + i, &format!("w{i}")))).collect();
    let changes_script = dir.join("changes.lua");
    std::fs::write(&changes_script, wrk_script(&changes))?;
    let messages_script = dir.join("messages.lua");
    std::fs::write(&messages_script, wrk_script(&messages))?;
    let sink = Sink::start()?;

    // 1. Throughput without, then with forwarding.
    let mut plain = start(dir, "plain", None)?;
    let without = measure(&mut plain, &changes_script, seconds, "no forwarding, name changes")?;
    plain.terminate(Duration::from_secs(15))?;
    let mut daemon = start(dir, "forwarding", Some(sink.port))?;
    let with = measure(&mut daemon, &changes_script, seconds, "forwarding, name changes")?;
    drain(&daemon, &sink)?;
    let messenger = measure(&mut daemon, &messages_script, seconds, "forwarding, Messenger messages")?;
    drain(&daemon, &sink)?;
    paced_and_backlog(dir, daemon, &sink, &[without, with, messenger])
}

/// A warm-up, then a measured wrk run; `(deliveries/s, p99 ms, errors)`.
fn measure(daemon: &mut Daemon, script: &Path, seconds: u64, name: &str) -> anyhow::Result<(f64, f64, u64)> {
    let url = format!("http://{}/facebook/webhook", daemon.addr);
    run_wrk(script, &url, 2)?;
    let load = run_wrk(script, &url, seconds)?;
    daemon.ensure_running()?;
    say(&format!("{name}: wrk -t1 -c64 -d{seconds}s"));
    println!("{}", indent(&load.raw));
    Ok((load.rps, load.p99_ms, load.errors()))
}

/// Waits until the forwards of a load reached the bot, before the next phase.
fn drain(daemon: &Daemon, sink: &Sink) -> anyhow::Result<()> {
    let start = Instant::now();
    while pending(daemon.addr)? > 0 && start.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(100));
    }
    say(&format!(
        "forwards of the load drained {:.1} s after it; the bot got {} so far",
        start.elapsed().as_secs_f64(),
        sink.received.load(Ordering::Relaxed)
    ));
    Ok(())
}

fn paced_and_backlog(dir: &Path, mut daemon: Daemon, sink: &Sink, rps: &[(f64, f64, u64)]) -> anyhow::Result<()> {
    // 2. Paced: PACED_RATE/s from 4 threads, each delivery stamped with its send time.
    let per_thread = PACED_RATE / 4;
    let addr = daemon.addr;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut failures = 0u64;
                for n in 0..per_thread * PACED_SECONDS {
                    let due = start + Duration::from_micros(n * 1_000_000 / per_thread);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let body = message(PAGE_BASE + (n * 4 + t) % PAGES, &format!("t{}", unix_micros()));
                    let signed = Signed::new(body);
                    match http(addr, "POST", "/facebook/webhook", &signed.headers(), signed.body.as_bytes()) {
                        Ok((200, _)) => {}
                        _ => failures += 1,
                    }
                }
                failures
            })
        })
        .collect();
    let failures: u64 = threads.into_iter().map(|t| t.join().unwrap_or(u64::MAX)).sum();
    let want = PACED_RATE * PACED_SECONDS;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (sink.delays_us.lock().map(|d| d.len() as u64).unwrap_or(0)) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut delays = sink.delays_us.lock().map(|d| d.clone()).unwrap_or_default();
    delays.sort_unstable();
    let (p50, p99, max) = (percentile(&delays, 50.0), percentile(&delays, 99.0), percentile(&delays, 100.0));
    say(&format!(
        "paced: {want} deliveries at {PACED_RATE}/s, {failures} not answered 200; {} forwards arrived; delivery→bot p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        delays.len()
    ));

    // 3. Backlog: the bot answers 503 while BACKLOG deliveries are acknowledged.
    sink.down.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let backlog_script = dir.join("messages.lua");
    let url = format!("http://{addr}/facebook/webhook");
    while pending(addr)? < BACKLOG && started.elapsed() < Duration::from_secs(300) {
        run_wrk(&backlog_script, &url, 2)?;
    }
    let queued = pending(addr)?;
    let rss_backlog = daemon.memory()?;
    say(&format!(
        "backlog: {queued} forwards pending after {:.1} s with the bot down; RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        rss_backlog.rss_mib
    ));
    sink.down.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let mut peak_rss = rss_backlog.rss_mib;
    while pending(addr)? > 0 && back.elapsed() < Duration::from_secs(300) {
        peak_rss = peak_rss.max(daemon.memory()?.rss_mib);
        std::thread::sleep(Duration::from_millis(100));
    }
    let drain = back.elapsed().as_secs_f64();
    let memory = daemon.memory()?;
    daemon.ensure_running()?;
    let stop = daemon.terminate(Duration::from_secs(15))?;
    say(&format!("backlog drained {drain:.1} s after the bot came back; stopped in {:.2} s", stop.took.as_secs_f64()));

    let (plain, forwarding, messenger) = (rps[0], rps[1], rps[2]);
    let ratio = forwarding.0 / plain.0;
    println!("\nrelay results (same run, same machine)");
    for (what, (rps, p99, errors)) in [
        ("name changes, no forwarding", plain),
        ("name changes, forwarding", forwarding),
        ("Messenger messages, forwarding", messenger),
    ] {
        println!("  ack throughput, {what}: {rps:.0} deliveries/s (p99 {p99:.2} ms, {errors} errors)");
    }
    println!("  ratio {:.2} (target >= {TARGET_RATIO:.2}: {})", ratio, verdict(ratio >= TARGET_RATIO));
    println!(
        "  forward p99 at {PACED_RATE}/s: {p99:.2} ms (target < {TARGET_FORWARD_P99_MS} ms: {})",
        verdict(p99 < TARGET_FORWARD_P99_MS)
    );
    println!(
        "  {queued} pending forwards drained in {drain:.1} s (target < {TARGET_DRAIN_S} s: {})",
        verdict(drain < TARGET_DRAIN_S)
    );
    println!(
        "  RSS: {:.1} MiB with the backlog, {peak_rss:.1} MiB peak while draining, VmHWM {:.1} MiB (target < {TARGET_RSS_MIB} MiB: {})",
        rss_backlog.rss_mib,
        memory.hwm_mib,
        verdict(memory.hwm_mib < TARGET_RSS_MIB)
    );
    Ok(())
}
