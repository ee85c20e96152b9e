//! b. The fake Graph API: answers `GET /v25.0/{page_id}` after a latency and counts
//! the GETs per Page.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context as _, anyhow};

use super::{GRAPH_LATENCY, PAGE_BASE};

#[derive(Default)]
pub(crate) struct GraphCounts {
    pub(crate) total: AtomicU64,
    pub(crate) per_page: Mutex<HashMap<String, u64>>,
    /// GETs that lack the token or the proof every Page call must carry.
    pub(crate) missing_proof: AtomicU64,
}

pub(crate) struct FakeGraph {
    pub(crate) port: u16,
    pub(crate) counts: Arc<GraphCounts>,
    pub(crate) handle: actix_web::dev::ServerHandle,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

impl FakeGraph {
    pub(crate) fn start() -> anyhow::Result<FakeGraph> {
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

    pub(crate) fn total(&self) -> u64 {
        self.counts.total.load(Ordering::SeqCst)
    }

    pub(crate) fn count(&self, page: &str) -> u64 {
        self.counts.per_page.lock().expect("fake Graph counters poisoned").get(page).copied().unwrap_or(0)
    }

    /// Waits until no GET arrived for `quiet`; `None` if that did not happen within
    /// `deadline`. Returns how long it took until the last GET.
    pub(crate) fn wait_quiet(&self, quiet: Duration, deadline: Duration) -> Option<Duration> {
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

    pub(crate) fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        let _ = self.thread.join();
    }
}

/// `GET /v25.0/{page_id}`: counts, waits like Graph would, answers the Page's metadata.
pub(crate) async fn graph_page(
    page: web::Path<String>,
    req: HttpRequest,
    counts: web::Data<GraphCounts>,
) -> HttpResponse {
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
pub(crate) fn expected_name(page: &str) -> String {
    match page.parse::<u64>() {
        Ok(id) if id >= PAGE_BASE => format!("Bench Page {}", id - PAGE_BASE),
        _ => format!("Bench Page {page}"),
    }
}
