//! b. Graph: pagesync's own emulator (`pagesync::emulator`, the one the sandbox and
//! the API tests use) on a thread of its own, knowing every seeded Page and its token,
//! answering Page GETs after [`GRAPH_LATENCY`].

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use pagesync::emulator::{Emulator, EmulatorConfig, Endpoint};
use pagesync_actors::Secret;

use super::{APP_SECRET, GRAPH_LATENCY};
use crate::seed::page_token;

pub(crate) struct GraphThread {
    pub(crate) emulator: Emulator,
    pub(crate) port: u16,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl GraphThread {
    pub(crate) fn start(pages: &[String]) -> anyhow::Result<GraphThread> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the emulator")?;
        let port = listener.local_addr()?.port();
        let config = EmulatorConfig { app_secret: Secret::new(APP_SECRET), ..EmulatorConfig::default() };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("emulator".into()).spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Emulator::start(listener, config) {
                    Ok((emulator, server)) => {
                        let _ = tx.send(Ok((emulator, server.handle())));
                        if let Err(e) = server.await {
                            eprintln!("the emulator failed: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            })
        })?;
        let (emulator, handle) =
            rx.recv_timeout(Duration::from_secs(10)).context("the emulator did not start")?.map_err(|e| anyhow!(e))?;
        for (i, page) in pages.iter().enumerate() {
            emulator.add_page(page, &page_token(page), &format!("Bench Page {i}"));
        }
        emulator.set_latency(GRAPH_LATENCY);
        Ok(GraphThread { emulator, port, handle, thread })
    }

    /// Page GETs so far.
    pub(crate) fn total(&self) -> u64 {
        self.emulator.total_gets()
    }

    /// GETs of `page` so far.
    pub(crate) fn count(&self, page: &str) -> u64 {
        self.emulator.gets(page) as u64
    }

    /// Page GETs the emulator refused (a wrong token or `appsecret_proof`), among the
    /// calls its log still holds.
    pub(crate) fn refused(&self) -> usize {
        let page_get = |c: &pagesync::emulator::Call| matches!(c.endpoint, Some(Endpoint::PageGet(_)));
        self.emulator.calls().iter().filter(|c| page_get(c) && (c.status != 200 || !c.proof_ok)).count()
    }

    /// Waits until no GET arrived for `quiet`; `None` if that did not happen within
    /// `deadline`. Returns how long it took until the last GET.
    pub(crate) fn wait_quiet(&self, quiet: Duration, deadline: Duration) -> Option<Duration> {
        let start = Instant::now();
        let (mut last, mut last_change) = (self.total(), start);
        while start.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.total();
            if now != last {
                (last, last_change) = (now, Instant::now());
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
