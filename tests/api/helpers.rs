//! `spawn_app()` and the `TestApp` every API test drives.
//!
//! Each app gets its own data dir, a port chosen by the OS and a fake Meta + Shopify
//! server; it is built by the same `Application::build_on` as production, on a listener
//! bound first so that the redirect URIs and the webhook address can name the app's own
//! port. `TestApp` speaks every flow of docs/contract.md §4 the way a browser, Shopify or Meta would:
//! it signs what they sign and carries the session cookie by hand (the client has no
//! cookie store).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use pagesync::clients::graph::RetryPolicy;
use pagesync::config::{self, Settings, Sources};
use pagesync::startup::{Application, Tuning};
use pagesync::verify::{hmac_sha256, sign_sha1, sign_sha256};
use pagesync_actors::messages::{GetPageState, GetWriterStats, PageState, StorePageToken, SyncStatus, WriterStats};
use pagesync_actors::{Actors, EncryptionKey, PageId, Secret, Store, StoreConfig, UserId};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::fake_graph::{FakeGraph, FbUser, form_encode};

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
        ("FACEBOOK_APP_ID", crate::fake_graph::APP_ID.to_owned()),
        ("FACEBOOK_APP_SECRET", APP_SECRET.to_owned()),
        ("FACEBOOK_REDIRECT_URI", "http://127.0.0.1:5000/facebook/callback".to_owned()),
        ("FACEBOOK_WEBHOOK_ADDRESS", "http://127.0.0.1:5000/facebook/webhook".to_owned()),
        ("FACEBOOK_VERIFY_TOKEN", VERIFY_TOKEN.to_owned()),
        ("FACEBOOK_GRAPH_URL", graph_url.to_owned()),
        ("FACEBOOK_DIALOG_URL", graph_url.to_owned()),
        ("SHOPIFY_API_KEY", SHOPIFY_KEY.to_owned()),
        ("SHOPIFY_API_SECRET", SHOPIFY_SECRET.to_owned()),
        ("SHOPIFY_REDIRECT_URI", "http://127.0.0.1:5000/shopify/callback".to_owned()),
        ("SHOPIFY_ADMIN_URL", format!("{graph_url}/{{shop}}")),
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
    pub graph: FakeGraph,
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
    let graph = FakeGraph::start();
    start_app(dir, key, graph, options).await
}

/// Starts an app on an existing data dir (a restart), retrying while the previous
/// instance still holds the database lock. The redirect URIs and the webhook address
/// name the app's own (new) port; `options.env` overrides anything.
pub async fn start_app(dir: TempDir, key: EncryptionKey, graph: FakeGraph, options: Options) -> TestApp {
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
    graph.configure(
        &env["FACEBOOK_APP_ID"],
        &env["FACEBOOK_APP_SECRET"],
        &env["FACEBOOK_REDIRECT_URI"],
        &env["SHOPIFY_API_KEY"],
        &env["SHOPIFY_API_SECRET"],
    );
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

    /// Waits until the writer has recorded `status` for `page`. The file lands before the
    /// state does, so a test that saw the file must still wait for the state.
    pub async fn wait_for_status(&self, page: &str, status: SyncStatus) -> PageState {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = self.page_state(page).await;
            if let Some(state) = state.as_ref().filter(|s| s.status == status) {
                return state.clone();
            }
            assert!(Instant::now() < deadline, "{page} never reached {status:?}; last: {state:?}");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
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

/// Polls the async `check` every 20 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis())
        .expect("millis fit in u64")
}

/// `millis` (since the epoch) as RFC 3339 with milliseconds, in the zone `offset_minutes`
/// east of UTC (`Z` for 0), like Shopify's `X-Shopify-Triggered-At`.
pub fn rfc3339(millis: u64, offset_minutes: i64) -> String {
    let local = u64::try_from(i64::try_from(millis).expect("millis fit in i64") + offset_minutes * 60_000)
        .expect("a time after 1970");
    let (year, month, day, h, m, s) = pagesync_actors::civil_utc(local / 1000);
    let ms = local % 1000;
    let zone = if offset_minutes == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", offset_minutes.abs() / 60, offset_minutes.abs() % 60)
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}{zone}")
}

/// A shop domain no other test uses.
pub fn unique_shop() -> String {
    format!("shop-{}.myshopify.com", hex::encode(rand::random::<[u8; 5]>()))
}

/// Shopify's query `hmac`: lowercase hex HMAC-SHA256 under `secret` of the other
/// parameters sorted by name, form-encoded (`%20` for spaces), joined as `k=v&k=v`.
pub fn shopify_query_hmac(secret: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "hmac" && k != "signature").collect();
    pairs.sort();
    let message: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
    hex::encode(hmac_sha256(secret.as_bytes(), message.join("&").as_bytes()))
}

/// Shopify's webhook header: base64 HMAC-SHA256 of the raw body under `secret`.
pub fn shopify_webhook_hmac(secret: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), body))
}

/// Meta's `signed_request`: `base64url(sig).base64url(json)`, no padding, `sig` the
/// HMAC-SHA256 of the second part under `secret`.
pub fn signed_request(secret: &str, payload: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = b64.encode(payload.to_string());
    let sig = b64.encode(hmac_sha256(secret.as_bytes(), body.as_bytes()));
    format!("{sig}.{body}")
}

/// The `Location` of a redirect, parsed.
pub fn location(resp: &reqwest::Response) -> reqwest::Url {
    let raw = resp.headers().get("location").expect("a Location header").to_str().expect("ASCII Location");
    reqwest::Url::parse(raw).expect("an absolute Location")
}

/// The query parameters of `url`, by name (the last one wins).
pub fn query_map(url: &reqwest::Url) -> HashMap<String, String> {
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The `Set-Cookie` header that sets `session_id`, if any.
pub fn session_set_cookie(resp: &reqwest::Response) -> Option<String> {
    set_cookie_header(resp, "session_id")
}

/// The value of `session_id` set by `resp`, if any.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    cookie_value(resp, "session_id")
}

/// The cookie `/shopify/login` binds the install to the browser with.
pub const SHOPIFY_STATE_COOKIE: &str = "shopify_state";

/// The `Set-Cookie` header of `resp` that sets cookie `name`, if any.
pub fn set_cookie_header(resp: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.trim_start().starts_with(&prefix))
        .map(str::to_owned)
}

/// The value `resp` sets for cookie `name`, if any.
pub fn cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    let header = set_cookie_header(resp, name)?;
    let pair = header.split(';').next()?.trim();
    pair.strip_prefix(&format!("{name}=")).map(str::to_owned)
}

/// The lowercase attributes of a `Set-Cookie` header (after the name=value pair).
pub fn cookie_attributes(header: &str) -> Vec<String> {
    header.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect()
}

/// What `/shopify/login` gave the browser.
#[derive(Debug, Clone)]
pub struct ShopifyLogin {
    /// The `state` of the authorize URL.
    pub state: String,
    /// The `shopify_state` cookie value.
    pub cookie: String,
}

/// A merchant after a successful Shopify install.
#[derive(Debug, Clone)]
pub struct Install {
    pub shop: String,
    pub user_uuid: String,
    /// The `session_id` cookie value.
    pub cookie: String,
}

/// What a successful Facebook connect answered.
#[derive(Debug, Clone)]
pub struct Connected {
    pub body: Value,
    /// The raw body text (for greps).
    pub text: String,
    /// The rotated `session_id`.
    pub cookie: String,
}

impl TestApp {
    /// The value of a configuration variable the app was started with.
    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).map(String::as_str).unwrap_or_else(|| panic!("{name} is not configured"))
    }

    /// GET `path` with the `session_id` cookie (if any) and extra headers.
    pub async fn get_with(&self, path: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{}", self.address, path));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("session_id={cookie}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("GET request")
    }

    // ----- Shopify install ------------------------------------------------------

    /// `GET /shopify/login?shop=SHOP`.
    pub async fn shopify_login(&self, shop: &str) -> reqwest::Response {
        self.get_with(&format!("/shopify/login?shop={}", form_encode(shop)), None, &[]).await
    }

    /// What `/shopify/login` hands the browser for `shop` (asserts the 302): the
    /// `state` in the authorize URL and the `shopify_state` cookie set with it.
    pub async fn shopify_state(&self, shop: &str) -> ShopifyLogin {
        let resp = self.shopify_login(shop).await;
        assert_eq!(resp.status(), 302, "/shopify/login?shop={shop}");
        let cookie = cookie_value(&resp, SHOPIFY_STATE_COOKIE).expect("a shopify_state cookie with the 302");
        let state = query_map(&location(&resp)).remove("state").expect("a state in the authorize URL");
        ShopifyLogin { state, cookie }
    }

    /// The query Shopify's callback carries, signed with the app's Shopify secret.
    pub fn shopify_callback_query(&self, shop: &str, code: &str, state: &str, timestamp: u64) -> Vec<(String, String)> {
        let store = shop.trim_end_matches(".myshopify.com");
        let host = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("admin.shopify.com/store/{store}"));
        let mut params = vec![
            ("code".to_owned(), code.to_owned()),
            ("host".to_owned(), host),
            ("shop".to_owned(), shop.to_owned()),
            ("state".to_owned(), state.to_owned()),
            ("timestamp".to_owned(), timestamp.to_string()),
        ];
        let hmac = shopify_query_hmac(self.var("SHOPIFY_API_SECRET"), &params);
        params.push(("hmac".to_owned(), hmac));
        params
    }

    /// `GET /shopify/callback` with these query pairs and, like the browser that
    /// started the install, its `shopify_state` cookie (if any).
    pub async fn shopify_callback(&self, query: &[(String, String)], cookie: Option<&str>) -> reqwest::Response {
        self.shopify_callback_with(query, cookie, &[]).await
    }

    pub async fn shopify_callback_with(
        &self,
        query: &[(String, String)],
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.get(format!("{}/shopify/callback", self.address)).query(query);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("{SHOPIFY_STATE_COOKIE}={cookie}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("GET /shopify/callback")
    }

    /// The whole install: `/shopify/login`, then Shopify's signed callback with a fresh
    /// code; asserts the 200 and the cookie.
    pub async fn install_shop(&self, shop: &str) -> Install {
        let login = self.shopify_state(shop).await;
        let code = self.graph.shopify_code(shop);
        let query = self.shopify_callback_query(shop, &code, &login.state, unix_now());
        let resp = self.shopify_callback(&query, Some(&login.cookie)).await;
        let status = resp.status();
        let cookie = session_cookie(&resp);
        let text = resp.text().await.expect("callback body");
        assert_eq!(status, 200, "install of {shop}: {text}");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("install answer is not JSON ({e}): {text}"));
        assert_eq!(body["shop"], shop, "{body}");
        let user_uuid = body["user_uuid"].as_str().unwrap_or_else(|| panic!("no user_uuid in {body}")).to_owned();
        Install { shop: shop.to_owned(), user_uuid, cookie: cookie.expect("a session_id cookie") }
    }

    // ----- Facebook connect -----------------------------------------------------

    /// `GET /facebook/login` with the session cookie, if any.
    pub async fn facebook_login(&self, cookie: Option<&str>) -> reqwest::Response {
        self.get_with("/facebook/login", cookie, &[]).await
    }

    /// The `state` `/facebook/login` puts in the dialog URL (asserts the 302).
    pub async fn facebook_state(&self, cookie: &str) -> String {
        let resp = self.facebook_login(Some(cookie)).await;
        assert_eq!(resp.status(), 302, "/facebook/login with a live session");
        query_map(&location(&resp)).remove("state").expect("a state in the dialog URL")
    }

    /// `GET /facebook/callback` with these query pairs and the cookie, if any.
    pub async fn facebook_callback(&self, query: &[(&str, &str)], cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}/facebook/callback", self.address)).query(query);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("session_id={cookie}"));
        }
        request.send().await.expect("GET /facebook/callback")
    }

    /// The whole connect of `user` for the session `cookie`: login, the dialog's code,
    /// the callback; asserts the 200 and returns the answer and the rotated cookie.
    pub async fn connect_facebook(&self, cookie: &str, user: &FbUser) -> Connected {
        let state = self.facebook_state(cookie).await;
        let code = self.graph.new_code(user);
        let resp = self.facebook_callback(&[("code", &code), ("state", &state)], Some(cookie)).await;
        let status = resp.status();
        let new_cookie = session_cookie(&resp);
        let text = resp.text().await.expect("callback body");
        assert_eq!(status, 200, "connect of Facebook user {}: {text}", user.id);
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("connect answer is not JSON ({e}): {text}"));
        Connected { body, text, cookie: new_cookie.expect("a rotated session_id cookie") }
    }

    /// A merchant with a shop and a connected Facebook user owning `pages`.
    pub async fn merchant(&self, pages: &[(&str, &str)]) -> (Install, FbUser, Connected) {
        let install = self.install_shop(&unique_shop()).await;
        let user = self.graph.register_user(pages);
        let connected = self.connect_facebook(&install.cookie, &user).await;
        (install, user, connected)
    }

    // ----- Removal callbacks ----------------------------------------------------

    /// `POST /shopify/webhooks` signed with the app's Shopify secret.
    pub async fn post_shopify_webhook(&self, topic: &str, shop: &str, body: &str) -> reqwest::Response {
        let hmac = shopify_webhook_hmac(self.var("SHOPIFY_API_SECRET"), body.as_bytes());
        self.post_shopify_webhook_with(topic, shop, body, Some(&hmac)).await
    }

    /// `POST /shopify/webhooks` with this `X-Shopify-Hmac-Sha256` (or none).
    pub async fn post_shopify_webhook_with(
        &self,
        topic: &str,
        shop: &str,
        body: &str,
        hmac: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/shopify/webhooks", self.address))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Shop-Domain", shop)
            .header("X-Shopify-Webhook-Id", hex::encode(rand::random::<[u8; 8]>()))
            .header("X-Shopify-API-Version", "2026-04")
            .body(body.to_owned());
        if let Some(hmac) = hmac {
            request = request.header("X-Shopify-Hmac-Sha256", hmac);
        }
        request.send().await.expect("POST /shopify/webhooks")
    }

    /// `POST /shopify/webhooks` for `topic`, the body signed with the app's Shopify
    /// secret, with exactly these extra headers (no shop domain or webhook id unless
    /// given).
    pub async fn post_shopify_webhook_headers(
        &self,
        topic: &str,
        body: &str,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let hmac = shopify_webhook_hmac(self.var("SHOPIFY_API_SECRET"), body.as_bytes());
        let mut request = self
            .client
            .post(format!("{}/shopify/webhooks", self.address))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Hmac-Sha256", hmac)
            .body(body.to_owned());
        for (k, v) in headers {
            request = request.header(*k, v.as_str());
        }
        request.send().await.expect("POST /shopify/webhooks")
    }

    /// The body Shopify sends for `shop/redact` (and, near enough, `app/uninstalled`).
    pub fn shop_body(shop: &str) -> String {
        json!({"shop_id": 954_889, "shop_domain": shop, "id": 954_889, "domain": shop, "myshopify_domain": shop})
            .to_string()
    }

    /// POSTs `signed_request` (under the app secret) for `payload` as a form to `path`.
    pub async fn post_signed_request(&self, path: &str, payload: &Value) -> reqwest::Response {
        let signed = signed_request(self.var("FACEBOOK_APP_SECRET"), payload);
        self.post_form(path, &[("signed_request", &signed)]).await
    }

    /// POSTs an `application/x-www-form-urlencoded` body to `path`.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
        self.client
            .post(format!("{}{}", self.address, path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .expect("POST form")
    }

    /// Meta's payload for a user's signed request.
    pub fn user_payload(user: &FbUser) -> Value {
        json!({"algorithm": "HMAC-SHA256", "user_id": user.id, "issued_at": unix_now()})
    }

    /// The Page's folder below the data dir.
    pub fn page_dir(&self, page: &str) -> PathBuf {
        self.data_dir().join("facebook").join(page)
    }
}
