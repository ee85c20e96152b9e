//! The scale bench's concurrent loads: a thread per kind of request, timing each
//! answer, and reading figures from `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::daemon::{http, http_within};

/// Latencies of one kind of request made by a loader thread.
#[derive(Default)]
pub(crate) struct Probe {
    pub(crate) ms: Vec<f64>,
    pub(crate) failed: Vec<String>,
    pub(crate) bytes: usize,
}

impl Probe {
    pub(crate) fn pct(&self, p: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} failed{}, last body {} bytes",
            self.ms.len(),
            self.pct(0.5),
            self.pct(0.99),
            self.pct(1.0),
            self.failed.len(),
            self.failed.first().map(|f| format!(" (first: {f})")).unwrap_or_default(),
            self.bytes
        )
    }
}

/// Requests `path` every `period` (or back to back when slower) until `stop`.
pub(crate) fn loader(
    addr: SocketAddr,
    path: String,
    headers: Vec<(&'static str, String)>,
    period: Duration,
    stop: Arc<AtomicBool>,
    check: fn(&str) -> bool,
) -> std::thread::JoinHandle<Probe> {
    std::thread::spawn(move || run(addr, &headers, period, &stop, check, |_| path.clone()))
}

/// Lists every Page the way a bot does: `base` (which has `?limit=`) slice by slice,
/// each next request with `&after=` the previous answer's `next`, starting over after
/// the last slice; one timed request per slice, back to back (`period` apart at most).
pub(crate) fn list_walker(
    addr: SocketAddr,
    base: String,
    headers: Vec<(&'static str, String)>,
    period: Duration,
    stop: Arc<AtomicBool>,
    check: fn(&str) -> bool,
) -> std::thread::JoinHandle<Probe> {
    std::thread::spawn(move || {
        run(addr, &headers, period, &stop, check, |last| {
            let next = last
                .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
                .and_then(|v| v["next"].as_str().map(str::to_owned));
            match next {
                Some(after) => format!("{base}&after={after}"),
                None => base.clone(),
            }
        })
    })
}

/// The loop of a loader thread: `path` gets the last good answer's body (`None` at
/// the start and after a failure).
fn run(
    addr: SocketAddr,
    headers: &[(&'static str, String)],
    period: Duration,
    stop: &AtomicBool,
    check: fn(&str) -> bool,
    mut path: impl FnMut(Option<&str>) -> String,
) -> Probe {
    let mut probe = Probe::default();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut last: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let url = path(last.as_deref());
        last = None;
        match http_within(addr, "GET", &url, &headers, b"", Duration::from_secs(120)) {
            Ok((200, body)) if check(&body) => {
                probe.ms.push(started.elapsed().as_secs_f64() * 1000.0);
                probe.bytes = body.len();
                last = Some(body);
            }
            Ok((status, body)) => probe.failed.push(format!("{status} {}", body.chars().take(80).collect::<String>())),
            Err(e) => probe.failed.push(format!("{e:#}")),
        }
        std::thread::sleep(period.saturating_sub(started.elapsed()));
    }
    probe
}

/// The value of an unlabelled metric, or the sum of a labelled one's series matching
/// `labels`, from a scrape.
pub(crate) fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let matches = series == name || (series.starts_with(&format!("{name}{{")) && series.contains(labels));
        if matches && let Ok(v) = value.parse::<f64>() {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

pub(crate) fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    match http(addr, "GET", "/metrics", &[], b"")? {
        (200, body) => Ok(body),
        (status, body) => Err(anyhow!("/metrics answered {status}: {body}")),
    }
}

pub(crate) fn poll_checks(addr: SocketAddr) -> f64 {
    scrape(addr)
        .ok()
        .and_then(|m| metric(&m, "pagesync_graph_requests_total", "endpoint=\"debug_token\""))
        .unwrap_or(0.0)
}
