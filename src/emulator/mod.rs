//! One emulator of the Meta and Shopify endpoints pagesync talks to, on one loopback
//! HTTP server. `pagesync sandbox` runs it with demo data; the API tests and the
//! benchmarks run it with the users, Pages and faults they set up.
//!
//! It checks what Meta and Shopify check (client ids and secrets, byte-identical
//! redirect URIs, single-use codes, Page tokens, `appsecret_proof`, the app token,
//! Meta's verification request), so that a daemon that works against it does the
//! right things in the right order. Every code and token it hands out is a long random
//! string; nothing it holds outlives the process. Surfaces, one file each:
//! - [`data`]: the world it serves (users, Pages, tokens) and the sandbox's demo data;
//! - [`graph`]: the Graph API under `/{version}`: `oauth/access_token`, `debug_token`,
//!   `me`, `me/accounts`, `{page-id}`, `{page-id}/subscribed_apps`,
//!   `{app-id}/subscriptions`;
//! - [`dialog`]: the Facebook Login dialog, `/{version}/dialog/oauth`;
//! - [`shopify`]: a shop's admin under `/shopify/{shop}` (install page, token);
//! - [`sender`]: what Meta sends: signed webhook deliveries, the verification request;
//! - [`editor`]: the sandbox's Page editor at `/emulator`, which drives the sender;
//! - [`faults`]: faults by endpoint (errors, headers, delays, hangs) and the call log.
//!
//! The emulator sets no cookies: it shares 127.0.0.1 with the daemon, and cookies do
//! not tell ports apart. See docs/sandbox.md and docs/testing.md.

pub mod data;
mod dialog;
mod editor;
pub mod faults;
pub mod graph;
mod sender;
mod shopify;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use pagesync_actors::Secret;
use serde_json::{Map, Value};

pub use data::{DEMO_CUSTOMER_PSID, DEMO_PAGES, DEMO_SHOP, DEMO_USER_ID, FbPage, FbUser, random_token};
pub use faults::{Call, Endpoint, Fault};
pub use graph::{FieldForm, field_list};
pub use sender::{Activity, DeliveryOutcome};

/// The app id [`EmulatorConfig::default`] checks against.
pub const APP_ID: &str = "1234567890";

/// What the emulator checks the daemon's requests against: the values the daemon is
/// configured with. [`Emulator::configure`] replaces it while running.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The one Graph version answered (`FACEBOOK_GRAPH_VERSION`).
    pub graph_version: String,
    pub app_id: String,
    pub app_secret: Secret,
    /// The only redirect URI the Login dialog and the code exchange accept
    /// (`FACEBOOK_REDIRECT_URI`), like the app's "Valid OAuth Redirect URIs".
    pub facebook_redirect_uri: String,
    /// Where deliveries go while the app has no subscription of its own yet, like a
    /// callback URL set in the App Dashboard (`FACEBOOK_WEBHOOK_ADDRESS`).
    pub webhook_address: String,
    pub shopify_api_key: String,
    pub shopify_api_secret: Secret,
    /// The only redirect URI Shopify's install page accepts (`SHOPIFY_REDIRECT_URI`).
    pub shopify_redirect_uri: String,
    /// Links the editor shows (where a merchant starts, the dashboard, the demo bot);
    /// empty: no link.
    pub start_url: String,
    pub dashboard_url: String,
    pub bot_url: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            graph_version: "v25.0".into(),
            app_id: APP_ID.into(),
            app_secret: Secret::new(""),
            facebook_redirect_uri: String::new(),
            webhook_address: String::new(),
            shopify_api_key: String::new(),
            shopify_api_secret: Secret::new(""),
            shopify_redirect_uri: String::new(),
            start_url: String::new(),
            dashboard_url: String::new(),
            bot_url: String::new(),
        }
    }
}

impl EmulatorConfig {
    /// Checks requests against what a daemon with `settings` sends.
    pub fn for_settings(settings: &crate::config::Settings) -> EmulatorConfig {
        let (facebook, shopify) = (&settings.facebook, &settings.shopify);
        EmulatorConfig {
            graph_version: facebook.graph_version.clone(),
            app_id: facebook.app_id.clone(),
            app_secret: facebook.app_secret.clone(),
            facebook_redirect_uri: facebook.redirect_uri.clone(),
            webhook_address: facebook.webhook_address.clone(),
            shopify_api_key: shopify.api_key.clone(),
            shopify_api_secret: shopify.api_secret.clone(),
            shopify_redirect_uri: shopify.redirect_uri.clone(),
            ..EmulatorConfig::default()
        }
    }
}

/// The app's `page` object subscription as Meta keeps it (one callback per object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSubscription {
    pub callback_url: String,
    pub fields: Vec<String>,
    pub include_values: bool,
    pub active: bool,
}

/// One `POST /{app-id}/subscriptions` that reached Meta's verification request.
#[derive(Debug, Clone)]
pub struct AppSubscriptionAttempt {
    pub callback_url: String,
    /// The POST's parameters (query and body).
    pub params: HashMap<String, String>,
    /// The callback answered 200 with exactly the challenge.
    pub verified: bool,
    /// What the callback answered (status, body), or the transport error.
    pub answer: Result<(u16, String), String>,
}

/// Everything the emulator knows. Held under a std mutex that is never kept across an
/// `.await` (handlers copy out what they need before they call anyone).
#[derive(Default)]
struct World {
    config: EmulatorConfig,
    /// Page id -> its Graph fields.
    pages: BTreeMap<String, Map<String, Value>>,
    /// Every user, Page and short-lived token -> whose it is.
    tokens: HashMap<String, data::TokenOwner>,
    users: HashMap<String, FbUser>,
    /// Who is logged in to the Login dialog (the demo user in the sandbox).
    dialog_user: Option<String>,
    /// Single-use codes of the Login dialog and of Shopify.
    dialog_codes: HashMap<String, data::Code>,
    shop_codes: HashMap<String, data::Code>,
    /// Page id -> the fields our app is installed with (`subscribed_apps`).
    installed: HashMap<String, Vec<String>>,
    app_subscription: Option<AppSubscription>,
    attempts: Vec<AppSubscriptionAttempt>,
    /// Page tokens `debug_token` calls invalid (Page calls still accept them).
    revoked: HashSet<String>,
    /// `X-App-Usage` sent with Page answers.
    usage_header: Option<String>,
    /// `/me/accounts` entries per answer.
    page_size: usize,
    page_field_form: FieldForm,
    app_field_form: FieldForm,
    shopify_expiring: bool,
    faults: faults::Faults,
    log: faults::CallLog,
    activity: VecDeque<Activity>,
    next_activity: u64,
    /// Every token and code handed out, so tests can make sure none reaches the disk.
    issued: Vec<String>,
}

impl World {
    fn new(config: EmulatorConfig) -> World {
        let app_field_form = FieldForm::Objects;
        World { config, page_size: 2, app_field_form, next_activity: 1, ..World::default() }
    }
}

struct Shared {
    /// `http://127.0.0.1:PORT`, for `paging.next` and picture links.
    url: String,
    world: Mutex<World>,
    /// For Meta's verification request and webhook deliveries: no proxy (everything
    /// is on loopback), no redirects, bounded time.
    client: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters to an emulator; keep serving.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle on a running emulator: set-up and inspection for tests, benches and the
/// sandbox.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    /// The emulator's base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Builds the emulator's server on `listener` (bound by the caller, on loopback).
    /// The server is returned unstarted: run it on an actix System and keep its handle.
    pub fn start(listener: TcpListener, config: EmulatorConfig) -> anyhow::Result<(Emulator, actix_web::dev::Server)> {
        crate::clients::http::install_crypto_provider();
        let port = listener.local_addr().context("the emulator's listener has no address")?.port();
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .no_proxy()
            .user_agent("facebookexternalua")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the emulator's HTTP client")?;
        let shared = Arc::new(Shared { url: url.clone(), world: Mutex::new(World::new(config)), client });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(editor::routes)
                .configure(shopify::routes)
                .configure(dialog::routes)
                .default_service(web::to(graph::serve))
        })
        .workers(1)
        // Whoever runs it stops it (the sandbox stops the daemon first).
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)
        .context("cannot listen for the emulator")?
        .run();
        Ok((Emulator { shared, url }, server))
    }

    /// Binds a free loopback port and runs the emulator on the current actix System
    /// until the System ends (the tests' way).
    pub fn spawn(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the emulator")?;
        let (emulator, server) = Emulator::start(listener, config)?;
        actix_web::rt::spawn(server);
        Ok(emulator)
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.shared.lock()
    }

    /// Checks requests against `config` from now on.
    pub fn configure(&self, config: EmulatorConfig) {
        self.lock().config = config;
    }

    // ----- the world --------------------------------------------------------------

    /// A Page Graph knows (fields `id`, `name`, `category`, `fan_count`), and a Page
    /// token that reads it.
    pub fn add_page(&self, id: &str, token: &str, name: &str) {
        self.lock().add_page(data::plain_page(id, name), token);
    }

    /// Renames a Page on "Facebook" (no webhook is sent).
    pub fn set_name(&self, id: &str, name: &str) {
        if let Some(fields) = self.lock().pages.get_mut(id) {
            fields.insert("name".into(), Value::from(name));
        }
    }

    /// A Page's current Graph fields.
    pub fn page(&self, id: &str) -> Option<Value> {
        self.lock().pages.get(id).map(|f| Value::Object(f.clone()))
    }

    /// A Facebook user with these Pages (`(id, name)`), each with a fresh Page token.
    pub fn register_user(&self, pages: &[(&str, &str)]) -> FbUser {
        let id = (10_000_000_000_000u64 + rand::random_range(0..1_000_000_000_000u64)).to_string();
        let pages = pages.iter().map(|(page, name)| data::plain_page(page, name)).collect();
        self.lock().add_user(&id, &format!("Merchant {id}"), pages)
    }

    /// The sandbox's demo user, Pages and shop; the demo user is logged in to the
    /// Login dialog.
    pub fn load_demo(&self) -> FbUser {
        let mut world = self.lock();
        let user = world.add_user(DEMO_USER_ID, data::DEMO_USER_NAME, data::demo_pages(&self.url));
        world.dialog_user = Some(user.id.clone());
        user
    }

    /// A fresh code the Login dialog hands `user` (single use, bound to the configured
    /// redirect URI).
    pub fn new_code(&self, user: &FbUser) -> String {
        let mut world = self.lock();
        let redirect = world.config.facebook_redirect_uri.clone();
        world.dialog_code(&user.id, &redirect)
    }

    /// A fresh code Shopify hands back for `shop` (single use).
    pub fn shopify_code(&self, shop: &str) -> String {
        self.lock().shop_code(shop)
    }

    /// Makes `debug_token` call `token` invalid; Page calls still accept it, so only a
    /// token check can notice.
    pub fn revoke_token(&self, token: &str) {
        self.lock().revoked.insert(token.to_owned());
    }

    /// Sends this `X-App-Usage` with Page answers (`None`: no header).
    pub fn set_usage_header(&self, value: Option<&str>) {
        self.lock().usage_header = value.map(str::to_owned);
    }

    /// `/me/accounts` answers hold at most this many Pages (2 unless set).
    pub fn set_page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// Shopify answers the expiring offline token (with a refresh token) from now on.
    pub fn set_shopify_expiring(&self, expiring: bool) {
        self.lock().shopify_expiring = expiring;
    }

    // ----- webhook subscriptions ----------------------------------------------------

    /// Our app is already installed on `page` with `fields`.
    pub fn preinstall(&self, page: &str, fields: &[&str]) {
        self.lock().installed.insert(page.to_owned(), fields.iter().map(|f| (*f).to_owned()).collect());
    }

    /// The fields our app is installed with on `page` (`subscribed_apps`), if any.
    pub fn installed_fields(&self, page: &str) -> Option<Vec<String>> {
        self.lock().installed.get(page).cloned()
    }

    /// How `GET /{page-id}/subscribed_apps` renders fields (strings unless set).
    pub fn set_page_field_form(&self, form: FieldForm) {
        self.lock().page_field_form = form;
    }

    /// How `GET /{app-id}/subscriptions` renders fields (objects unless set).
    pub fn set_app_field_form(&self, form: FieldForm) {
        self.lock().app_field_form = form;
    }

    /// The app's `page` object is already subscribed with this callback and fields
    /// (set up by someone else, the bot say).
    pub fn preset_app_subscription(&self, callback_url: &str, fields: &[&str]) {
        self.lock().app_subscription = Some(AppSubscription {
            callback_url: callback_url.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            include_values: true,
            active: true,
        });
    }

    /// The app's `page` subscription as Meta now keeps it.
    pub fn app_subscription(&self) -> Option<AppSubscription> {
        self.lock().app_subscription.clone()
    }

    /// Every `POST /{app-id}/subscriptions` that reached the verification request.
    pub fn app_subscription_attempts(&self) -> Vec<AppSubscriptionAttempt> {
        self.lock().attempts.clone()
    }

    // ----- what happened ------------------------------------------------------------

    /// The editor's recent outcomes, oldest first.
    pub fn activity(&self) -> Vec<Activity> {
        self.lock().activity.iter().cloned().collect()
    }

    /// Every token and code handed out so far.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.lock().issued.clone()
    }
}
