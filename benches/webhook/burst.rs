//! f. The one-Page burst and the check of its `page_data.json`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::wrk::{Signed, delivery_body};

pub(crate) struct BurstResult {
    /// Answers 200 with `{"status":"success"}`.
    pub(crate) ok: usize,
    /// Anything else: status (0 for a transport error) -> count.
    pub(crate) other: HashMap<u16, usize>,
    pub(crate) elapsed: Duration,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

/// Posts `n` signed deliveries for `page` (distinct `time`s, as Meta's retries and
/// updates would be), `concurrency` at a time, from a reqwest client.
pub(crate) fn run_burst(addr: SocketAddr, page: &str, n: usize, concurrency: usize) -> anyhow::Result<BurstResult> {
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

/// `<data>/facebook/<page>/page_data.json` must exist, parse, and hold what the
/// emulator serves for the Page (`expected`), and no token.
pub(crate) fn check_page_file(
    data_dir: &Path,
    page: &str,
    expected: Option<serde_json::Value>,
) -> Result<String, String> {
    let path = data_dir.join("facebook").join(page).join("page_data.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let expected = expected.ok_or_else(|| format!("the emulator does not know Page {page}"))?;
    let name = &expected["name"];
    if ["id", "name", "category"].iter().any(|k| value[k] != expected[k]) {
        return Err(format!("{} holds {value}, expected the emulator's {expected}", path.display()));
    }
    if text.contains("access_token") || text.contains("bench-page-token") {
        return Err(format!("{} holds a token", path.display()));
    }
    Ok(format!("ok ({} bytes, name {name:?})", text.len()))
}
