//! `spawn_app()` and the `TestApp` every API test drives.
//!
//! Each app gets its own data dir, a port chosen by the OS and a fake Graph server;
//! it is built by the same `Application::build` as production.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pagesync::clients::graph::RetryPolicy;
use pagesync::config::{self, Settings, Sources};
use pagesync::startup::{Application, Tuning};
use pagesync::verify::{sign_sha1, sign_sha256};
use pagesync_actors::messages::{GetPageState, GetWriterStats, PageState, StorePageToken, WriterStats};
use pagesync_actors::{Actors, EncryptionKey, PageId, Secret, UserId};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::fake_graph::FakeGraph;

/// The made-up app secret of PLATFORM.md §7, so its published signatures verify.
pub const APP_SECRET: &str = "test_app_secret_0123456789abcdef";
pub const VERIFY_TOKEN: &str = "verify-token-for-tests";

/// Environment for a complete, valid configuration.
pub fn base_env(data_dir: &Path, graph_url: &str, key: &EncryptionKey) -> HashMap<String, String> {
    [
        ("FACEBOOK_APP_ID", "1234567890".to_owned()),
        ("FACEBOOK_APP_SECRET", APP_SECRET.to_owned()),
        ("FACEBOOK_REDIRECT_URI", "http://127.0.0.1:5000/facebook/callback".to_owned()),
        ("FACEBOOK_WEBHOOK_ADDRESS", "http://127.0.0.1:5000/facebook/webhook".to_owned()),
        ("FACEBOOK_VERIFY_TOKEN", VERIFY_TOKEN.to_owned()),
        ("FACEBOOK_GRAPH_URL", graph_url.to_owned()),
        ("SHOPIFY_API_KEY", "shopify-key".to_owned()),
        ("SHOPIFY_API_SECRET", "shopify-secret-for-tests".to_owned()),
        ("SHOPIFY_REDIRECT_URI", "http://127.0.0.1:5000/shopify/callback".to_owned()),
        ("STATE_TOKEN_SECRET", "state-secret-for-tests-0123456789abcdef".to_owned()),
        ("PAGESYNC_ENCRYPTION_KEY", key.to_base64()),
        ("PAGESYNC_BIND", "127.0.0.1:0".to_owned()),
        ("PAGESYNC_DATA_DIR", data_dir.display().to_string()),
        ("PAGESYNC_LOG_FORMAT", "text".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Pauses shortened so that retry paths finish in milliseconds.
pub fn fast_tuning() -> Tuning {
    Tuning {
        graph_retry: RetryPolicy { attempts: 3, base: Duration::from_millis(10), cap: Duration::from_millis(50) },
        refresh_backoff_base: Duration::from_millis(100),
        refresh_backoff_cap: Duration::from_millis(400),
        workers: Some(2),
        shutdown_timeout: Duration::from_secs(5),
    }
}

/// Knobs of one test app.
pub struct Options {
    pub env: Vec<(&'static str, String)>,
    pub tuning: Tuning,
}

impl Default for Options {
    fn default() -> Self {
        Options { env: Vec::new(), tuning: fast_tuning() }
    }
}

pub struct TestApp {
    pub address: String,
    pub dir: TempDir,
    pub key: EncryptionKey,
    pub graph: FakeGraph,
    pub actors: Actors,
    pub settings: Settings,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    finished: Option<oneshot::Receiver<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = EncryptionKey::generate().expect("key");
    let graph = FakeGraph::start();
    start_app(dir, key, graph, options).await
}

/// Starts an app on an existing data dir (a restart), retrying while the previous
/// instance still holds the database lock.
pub async fn start_app(dir: TempDir, key: EncryptionKey, graph: FakeGraph, options: Options) -> TestApp {
    let mut env = base_env(&dir.path().join("data"), &graph.url, &key);
    for (k, v) in options.env {
        env.insert(k.to_owned(), v);
    }
    let settings = config::load(&Sources { env, ..Sources::default() }).expect("test configuration is valid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let app = loop {
        match Application::build(settings.clone(), options.tuning.clone()) {
            Ok(app) => break app,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("app did not start: {e:#}"),
        }
    };
    let address = format!("http://127.0.0.1:{}", app.port());
    let actors = app.actors().clone();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (done, finished) = oneshot::channel();
    actix_web::rt::spawn(async move {
        let result = app
            .run_until_stopped(async move {
                let _ = stop_rx.await;
            })
            .await;
        let _ = done.send(result);
    });
    TestApp {
        address,
        dir,
        key,
        graph,
        actors,
        settings,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        stop: Some(stop),
        finished: Some(finished),
    }
}

/// A delivery body naming `pages`, one entry each, compact like Meta's.
pub fn delivery(pages: &[&str]) -> String {
    let entries: Vec<String> = pages
        .iter()
        .map(|p| format!(r#"{{"id":"{p}","time":1767225600,"changes":[{{"field":"name","value":"x"}}]}}"#))
        .collect();
    format!(r#"{{"object":"page","entry":[{}]}}"#, entries.join(","))
}

impl TestApp {
    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    pub fn page_file(&self, page: &str) -> PathBuf {
        self.data_dir().join("facebook").join(page).join("page_data.json")
    }

    /// POSTs `body` signed with both headers, as Meta does.
    pub async fn post_webhook(&self, body: &str) -> reqwest::Response {
        self.post_webhook_with(
            body,
            &[
                ("X-Hub-Signature-256", sign_sha256(APP_SECRET, body.as_bytes())),
                ("X-Hub-Signature", sign_sha1(APP_SECRET, body.as_bytes())),
            ],
        )
        .await
    }

    pub async fn post_webhook_with(&self, body: &str, headers: &[(&str, String)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/facebook/webhook", self.address))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        request.send().await.expect("webhook request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{}", self.address, path)).send().await.expect("GET request")
    }

    /// Connects a Page: Graph knows it under `token`, the vault holds the token.
    pub async fn connect_page(&self, page: &str, token: &str, name: &str) -> UserId {
        self.graph.add_page(page, token, name);
        let owner = UserId::random();
        self.actors
            .vault
            .send(StorePageToken {
                page: PageId::parse(page).expect("page id"),
                owner: owner.clone(),
                token: Secret::new(token),
            })
            .await
            .expect("vault mailbox")
            .expect("token stored");
        owner
    }

    pub async fn page_state(&self, page: &str) -> Option<PageState> {
        self.actors
            .page_writer
            .send(GetPageState { page: PageId::parse(page).expect("page id") })
            .await
            .expect("writer mailbox")
            .expect("state readable")
    }

    pub async fn stats(&self) -> WriterStats {
        self.actors.page_writer.send(GetWriterStats).await.expect("writer mailbox")
    }

    /// Waits until `page_data.json` of `page` has `name`, then returns its JSON.
    pub async fn wait_for_name(&self, page: &str, name: &str) -> Value {
        let path = self.page_file(page);
        let mut last = None;
        let found = poll_until(Duration::from_secs(10), || {
            let value = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let ok = value.as_ref().is_some_and(|v| v["name"] == name);
            last = value;
            ok
        })
        .await;
        assert!(found, "page_data.json of {page} never showed {name:?}; last seen: {last:?}");
        last.unwrap_or_default()
    }

    /// Waits until the writer has nothing in flight and the inbox is empty.
    pub async fn wait_idle(&self) -> WriterStats {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.stats().await;
            if stats.inbox_depth == 0 && stats.running == 0 && stats.waiting_pages == 0 {
                return stats;
            }
            assert!(Instant::now() < deadline, "writer never went idle: {stats:?}");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the app gracefully and hands back what a restart needs.
    pub async fn stop(mut self) -> (TempDir, EncryptionKey, FakeGraph) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(finished) = self.finished.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), finished).await;
            match result {
                Ok(Ok(Ok(()))) => {}
                other => panic!("app did not stop cleanly: {other:?}"),
            }
        }
        let TestApp { dir, key, graph, .. } = self;
        (dir, key, graph)
    }
}

/// Polls `check` every 10 ms until it holds or `limit` passes.
pub async fn poll_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}
