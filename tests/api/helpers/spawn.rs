//! Starting and stopping a test app: its configuration, the `TestApp` it hands back
//! and the app state a test reads directly.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pagesync::clients::graph::RetryPolicy;
use pagesync::config::{self, Settings, Sources};
use pagesync::startup::{Application, Tuning};
use pagesync_actors::messages::{GetPageState, GetWriterStats, PageState, StorePageToken, WriterStats};
use pagesync_actors::{Actors, EncryptionKey, PageId, Secret, Store, StoreConfig, UserId};
use tempfile::TempDir;
use tokio::sync::oneshot;

use pagesync::emulator::{Emulator, EmulatorConfig};

/// A made-up app secret; the fixed signatures of the webhook tests' sample deliveries
/// (docs/platform.md, "Webhook deliveries") are computed under it.
pub const APP_SECRET: &str = "test_app_secret_0123456789abcdef";
pub const VERIFY_TOKEN: &str = "verify-token-for-tests";
pub const SHOPIFY_KEY: &str = "shopify-key";
pub const SHOPIFY_SECRET: &str = "shopify-secret-for-tests";

/// Environment for a complete, valid configuration. The dialog and the shops' admin
/// live on the fake server.
pub fn base_env(data_dir: &Path, graph_url: &str, key: &EncryptionKey) -> HashMap<String, String> {
    [
        ("FACEBOOK_APP_ID", pagesync::emulator::APP_ID.to_owned()),
        ("FACEBOOK_APP_SECRET", APP_SECRET.to_owned()),
        ("FACEBOOK_REDIRECT_URI", "http://127.0.0.1:5000/facebook/callback".to_owned()),
        ("FACEBOOK_WEBHOOK_ADDRESS", "http://127.0.0.1:5000/facebook/webhook".to_owned()),
        ("FACEBOOK_VERIFY_TOKEN", VERIFY_TOKEN.to_owned()),
        ("FACEBOOK_GRAPH_URL", graph_url.to_owned()),
        ("FACEBOOK_DIALOG_URL", graph_url.to_owned()),
        ("SHOPIFY_API_KEY", SHOPIFY_KEY.to_owned()),
        ("SHOPIFY_API_SECRET", SHOPIFY_SECRET.to_owned()),
        ("SHOPIFY_REDIRECT_URI", "http://127.0.0.1:5000/shopify/callback".to_owned()),
        ("SHOPIFY_ADMIN_URL", format!("{graph_url}/shopify/{{shop}}")),
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

/// Pauses shortened so that retry paths finish in milliseconds. Knobs this file does
/// not name keep their defaults (the struct grows with the daemon).
#[allow(clippy::needless_update)]
pub fn fast_tuning() -> Tuning {
    Tuning {
        graph_retry: RetryPolicy { attempts: 3, base: Duration::from_millis(10), cap: Duration::from_millis(50) },
        refresh_backoff_base: Duration::from_millis(100),
        refresh_backoff_cap: Duration::from_millis(400),
        workers: Some(2),
        shutdown_timeout: Duration::from_secs(5),
        subscription_retry_base: Duration::from_millis(200),
        outbox_retry_base: Duration::from_millis(50),
        outbox_retry_cap: Duration::from_millis(200),
        ..Tuning::default()
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
    pub graph: Emulator,
    pub actors: Actors,
    pub settings: Settings,
    /// The configuration the app was started with, by variable name.
    pub env: HashMap<String, String>,
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
    let graph = spawn_emulator();
    start_app(dir, key, graph, options).await
}

/// An emulator that checks the app id and secret of [`base_env`]; [`start_app`]
/// configures the rest.
pub fn spawn_emulator() -> Emulator {
    let config = EmulatorConfig { app_secret: Secret::new(APP_SECRET), ..EmulatorConfig::default() };
    Emulator::spawn(config).expect("the emulator starts")
}

/// Starts an app on an existing data dir (a restart), retrying while the previous
/// instance still holds the database lock. The redirect URIs and the webhook address
/// name the app's own (new) port; `options.env` overrides anything.
pub async fn start_app(dir: TempDir, key: EncryptionKey, graph: Emulator, options: Options) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the app's port");
    let port = listener.local_addr().expect("app address").port();
    let address = format!("http://127.0.0.1:{port}");
    let mut env = base_env(&dir.path().join("data"), &graph.url, &key);
    env.insert("FACEBOOK_REDIRECT_URI".into(), format!("{address}/facebook/callback"));
    env.insert("FACEBOOK_WEBHOOK_ADDRESS".into(), format!("{address}/facebook/webhook"));
    env.insert("SHOPIFY_REDIRECT_URI".into(), format!("{address}/shopify/callback"));
    env.insert("PAGESYNC_BIND".into(), format!("127.0.0.1:{port}"));
    for (k, v) in options.env {
        env.insert(k.to_owned(), v);
    }
    let settings =
        config::load(&Sources { env: env.clone(), ..Sources::default() }).expect("test configuration is valid");
    graph.configure(EmulatorConfig::for_settings(&settings));
    let deadline = Instant::now() + Duration::from_secs(10);
    let app = loop {
        let socket = listener.try_clone().expect("clone the app's listener");
        match Application::build_on(settings.clone(), options.tuning.clone(), socket) {
            Ok(app) => break app,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("app did not start: {e:#}"),
        }
    };
    drop(listener);
    let actors = app.actors().clone();
    let (stop, finished) = app.spawn();
    TestApp {
        address,
        dir,
        key,
        graph,
        actors,
        settings,
        env,
        client: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        stop: Some(stop),
        finished: Some(finished),
    }
}

impl TestApp {
    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    pub fn page_file(&self, page: &str) -> PathBuf {
        self.data_dir().join("facebook").join(page).join("page_data.json")
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

    /// The number of records in the store's tree `name`. Only for a stopped app (sled
    /// locks the database): pass the data dir `stop` handed back.
    pub fn tree_len(dir: &TempDir, name: &'static str) -> usize {
        // The stopped app's last database handles (held by actors still being dropped)
        // may keep sled's lock a moment longer: retry the open, as `start_app` does.
        let config = StoreConfig::new(dir.path().join("data").join("db"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let store = loop {
            match Store::open(&config) {
                Ok(store) => break store,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot open the stopped app's store: {e}"),
            }
        };
        let len = store.tree(name).expect("open the tree").len();
        store.close().expect("close the store");
        len
    }

    /// Stops the app gracefully and hands back what a restart needs.
    pub async fn stop(mut self) -> (TempDir, EncryptionKey, Emulator) {
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
