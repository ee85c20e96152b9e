//! The emulator behind `pagesync sandbox`: the Meta and Shopify endpoints pagesync
//! talks to, on one loopback HTTP server, with demo data.
//!
//! It is a stand-in for the real platforms in a demo or a manual test, not a test
//! double: it has no fault injection and no call log, but it checks what Meta and
//! Shopify check (client ids and secrets, byte-identical redirect URIs, single-use
//! codes, Page tokens, `appsecret_proof`, the app token, Meta's verification request),
//! so that a daemon that works against it does the right things in the right order.
//! Everything it hands out (codes, tokens) is a long random string; nothing it holds
//! outlives the process.
//!
//! Surfaces (every path is relative to the emulator's base URL):
//! - Shopify, under `/shopify/{shop}` (the daemon's `SHOPIFY_ADMIN_URL`):
//!   `GET /admin/oauth/authorize` (the install page, `#approve` / `#decline`),
//!   `POST` to the same path (the decision), `POST /admin/oauth/access_token`.
//! - Facebook Login: `GET /{version}/dialog/oauth` (`#allow` / `#cancel`) and `POST` to
//!   the same path (the decision).
//! - Graph, under `/{version}`: `oauth/access_token`, `debug_token`, `me`,
//!   `me/accounts`, `{page-id}`, `{page-id}/subscribed_apps`, `{app-id}/subscriptions`.
//! - The Page editor at `/emulator`: changing a Page there sends Meta's signed webhook
//!   delivery to the subscribed callback, as Meta would; "Customer sends a message"
//!   sends a Messenger delivery the same way, when the app subscribed to `messages`.
//!
//! The emulator sets no cookies: it shares 127.0.0.1 with the daemon, and cookies do
//! not tell ports apart. See docs/sandbox.md.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use base64::Engine as _;
use pagesync_actors::{Secret, ShopDomain};
use serde_json::{Map, Value, json};

use crate::clock::unix_now;
use crate::html::escape;
use crate::verify::{appsecret_proof, constant_time_eq, hmac_sha256, shopify_message, sign_sha1, sign_sha256};

/// The demo shop the sandbox's start URL installs on (any `*.myshopify.com` works).
pub const DEMO_SHOP: &str = "demo-shop.myshopify.com";

/// The demo Pages: id, name, category. Every one belongs to the demo Facebook user.
pub const DEMO_PAGES: [(&str, &str, &str); 3] = [
    ("100000000000001", "Maple & Oak Candle Co.", "Home Decor"),
    ("100000000000002", "Harbor Coffee Roasters", "Coffee Shop"),
    ("100000000000003", "Juniper Bike Works", "Bicycle Shop"),
];

/// The demo customer who writes to the Pages (a page-scoped id, PSID, as Messenger
/// deliveries carry in `sender.id`). Fixed, so that a bot's conversation view groups
/// every demo message under one customer.
pub const DEMO_CUSTOMER_PSID: &str = "7100000000000042";

/// The demo Facebook user who owns the demo Pages (an app-scoped id).
pub const DEMO_USER_ID: &str = "1000000000000042";
const DEMO_USER_NAME: &str = "Sandbox Merchant";

/// `/me/accounts` answers hold at most this many Pages, so that the daemon's paging
/// is exercised with only three Pages.
const ACCOUNTS_PAGE_SIZE: usize = 2;

/// Dialog and Shopify codes live this long (Meta documents ten minutes).
const CODE_LIFETIME_SECS: u64 = 600;

/// How far `appsecret_time` may be from our clock.
const PROOF_WINDOW_SECS: u64 = 300;

/// Longest name or category the editor takes.
const MAX_TEXT_CHARS: usize = 100;

/// Longest customer message the editor takes: Messenger's limit for a text message.
const MAX_MESSAGE_CHARS: usize = 2000;

/// How many editor outcomes are remembered for notices and the history table.
const ACTIVITY_KEPT: usize = 50;

/// What the emulator checks the daemon's requests against: the same values the
/// daemon is configured with.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The emulator's own base URL (`http://127.0.0.1:PORT`), for `paging.next` and
    /// picture links.
    pub url: String,
    /// The one Graph version answered (`FACEBOOK_GRAPH_VERSION`).
    pub graph_version: String,
    pub app_id: String,
    pub app_secret: Secret,
    /// The only redirect URI the Login dialog accepts (`FACEBOOK_REDIRECT_URI`), like
    /// the app's "Valid OAuth Redirect URIs".
    pub facebook_redirect_uri: String,
    /// Where deliveries go while the app has no subscription of its own yet, like a
    /// callback URL set in the App Dashboard (`FACEBOOK_WEBHOOK_ADDRESS`).
    pub webhook_address: String,
    pub shopify_api_key: String,
    pub shopify_api_secret: Secret,
    /// The only redirect URI Shopify's install page accepts (`SHOPIFY_REDIRECT_URI`).
    pub shopify_redirect_uri: String,
    /// Where a merchant starts (linked from the editor).
    pub start_url: String,
    /// The daemon's dashboard (linked from the editor).
    pub dashboard_url: String,
    /// The sandbox's demo bot page (linked from the editor); empty: no link.
    pub bot_url: String,
}

/// The app-level webhook subscription, as the last verified
/// `POST /{app-id}/subscriptions` left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSubscription {
    pub callback_url: String,
    pub fields: Vec<String>,
    pub include_values: bool,
}

/// One `POST /{app-id}/subscriptions` that reached the verification step.
#[derive(Debug, Clone)]
pub struct SubscriptionAttempt {
    pub callback_url: String,
    pub fields: Vec<String>,
    /// The callback answered 200 with exactly the challenge.
    pub verified: bool,
    /// What the verification request got back (status, body), or why it failed.
    pub answer: Result<(u16, String), String>,
}

/// What one save or one customer message in the editor led to.
#[derive(Debug, Clone)]
pub struct Activity {
    /// Increasing number; `/emulator?notice=N` shows this one.
    pub number: u64,
    pub page: String,
    /// The fields that changed (`messages` for a customer message).
    pub changed: Vec<String>,
    /// The webhook delivery, when one was sent.
    pub delivery: Option<DeliveryOutcome>,
    /// One line for the merchant: what happened.
    pub summary: String,
}

/// A webhook delivery the emulator made.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub callback_url: String,
    /// The exact bytes sent (and signed).
    pub body: String,
    /// The daemon's status and body, or the transport error.
    pub answer: Result<(u16, String), String>,
}

/// Who a token belongs to.
#[derive(Debug, Clone)]
enum TokenOwner {
    /// The demo user; `long` after `fb_exchange_token`.
    User {
        long: bool,
        issued_at: u64,
    },
    Page(String),
}

/// A Login dialog code: single use, bound to the redirect URI it was issued for.
struct DialogCode {
    redirect_uri: String,
    expires_at: u64,
}

/// A Shopify authorization code: single use, bound to its shop.
struct ShopCode {
    shop: String,
    expires_at: u64,
}

/// Everything the emulator knows. Held under a std mutex that is never kept across an
/// `.await` (every handler copies out what it needs before it calls anyone).
struct World {
    /// Page id -> its Graph fields, in demo order.
    pages: Vec<(String, Map<String, Value>)>,
    tokens: HashMap<String, TokenOwner>,
    dialog_codes: HashMap<String, DialogCode>,
    shop_codes: HashMap<String, ShopCode>,
    /// Page id -> the fields our app is installed with (`subscribed_apps`).
    installed: HashMap<String, Vec<String>>,
    app_subscription: Option<AppSubscription>,
    attempts: Vec<SubscriptionAttempt>,
    activity: VecDeque<Activity>,
    next_activity: u64,
    /// Every token and code handed out, so tests can make sure none reaches the disk.
    issued: Vec<String>,
}

struct Shared {
    config: EmulatorConfig,
    world: Mutex<World>,
    /// For Meta's verification request and webhook deliveries: no proxy (everything is
    /// on loopback), no redirects, bounded time.
    client: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters for a demo; keep serving.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle on a running emulator, for inspection (tests, the sandbox banner).
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("url", &self.shared.config.url).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Builds the emulator's server on `listener` (bound by the caller). The server
    /// is returned unstarted: spawn it on the actix System and keep its handle.
    pub fn start(config: EmulatorConfig, listener: TcpListener) -> anyhow::Result<(Emulator, actix_web::dev::Server)> {
        crate::clients::http::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .user_agent("facebookexternalua")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the emulator's HTTP client")?;
        let world = World {
            pages: demo_pages(&config.url),
            tokens: HashMap::new(),
            dialog_codes: HashMap::new(),
            shop_codes: HashMap::new(),
            installed: HashMap::new(),
            app_subscription: None,
            attempts: Vec::new(),
            activity: VecDeque::new(),
            next_activity: 1,
            issued: Vec::new(),
        };
        let shared = Arc::new(Shared { config, world: Mutex::new(world), client });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/", web::get().to(root))
                .route("/emulator", web::get().to(editor))
                .route("/emulator/pages/{id}", web::post().to(save_page))
                .route("/emulator/pages/{id}/messages", web::post().to(send_message))
                .route("/emulator/pictures/{file}", web::get().to(picture))
                .route("/shopify/{shop}/admin/oauth/authorize", web::get().to(shopify_authorize))
                .route("/shopify/{shop}/admin/oauth/authorize", web::post().to(shopify_decide))
                .route("/shopify/{shop}/admin/oauth/access_token", web::post().to(shopify_token))
                .route("/{version}/dialog/oauth", web::get().to(dialog))
                .route("/{version}/dialog/oauth", web::post().to(dialog_decide))
                .default_service(web::to(graph))
        })
        .workers(2)
        // The sandbox stops both servers itself, the daemon first.
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)
        .context("cannot listen for the emulator")?
        .run();
        Ok((Emulator { shared }, server))
    }

    /// The emulator's base URL.
    pub fn url(&self) -> &str {
        &self.shared.config.url
    }

    /// The app-level subscription, once a `POST /{app-id}/subscriptions` verified.
    pub fn app_subscription(&self) -> Option<AppSubscription> {
        self.shared.lock().app_subscription.clone()
    }

    /// Every `POST /{app-id}/subscriptions` that got as far as Meta's verification
    /// request, in order.
    pub fn subscription_attempts(&self) -> Vec<SubscriptionAttempt> {
        self.shared.lock().attempts.clone()
    }

    /// The fields our app is installed with on `page` (`subscribed_apps`), if any.
    pub fn installed_fields(&self, page: &str) -> Option<Vec<String>> {
        self.shared.lock().installed.get(page).cloned()
    }

    /// The editor's recent outcomes, oldest first.
    pub fn activity(&self) -> Vec<Activity> {
        self.shared.lock().activity.iter().cloned().collect()
    }

    /// A Page's current Graph fields.
    pub fn page(&self, id: &str) -> Option<Value> {
        self.shared.lock().pages.iter().find(|(p, _)| p == id).map(|(_, f)| Value::Object(f.clone()))
    }

    /// Every token and code handed out so far.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.lock().issued.clone()
    }
}

// ----- demo data ---------------------------------------------------------------------

fn demo_pages(base: &str) -> Vec<(String, Map<String, Value>)> {
    let extra = [
        (
            "mapleandoakcandles",
            "Hand-poured soy candles from Vermont.",
            "Small-batch candles, wax melts and gift sets, poured in our Burlington workshop.",
            "https://maple-and-oak.example",
            "+1 802-555-0141",
            "hello@maple-and-oak.example",
            json!({"street": "12 Church St", "city": "Burlington", "state": "VT", "zip": "05401",
                   "country": "United States", "latitude": 44.4779, "longitude": -73.2121}),
            1284,
            "2252",
        ),
        (
            "harborcoffeeroasters",
            "Single-origin coffee, roasted by the water.",
            "A roastery and espresso bar on the Portland waterfront. Beans shipped weekly.",
            "https://harbor-coffee.example",
            "+1 207-555-0188",
            "orders@harbor-coffee.example",
            json!({"street": "48 Commercial St", "city": "Portland", "state": "ME", "zip": "04101",
                   "country": "United States", "latitude": 43.6567, "longitude": -70.2515}),
            5623,
            "128673187201735",
        ),
        (
            "juniperbikeworks",
            "Repairs, rentals and custom builds.",
            "Full-service bike shop: tune-ups, wheel builds and weekend rentals.",
            "https://juniper-bikes.example",
            "+1 303-555-0112",
            "shop@juniper-bikes.example",
            json!({"street": "2150 Pearl St", "city": "Boulder", "state": "CO", "zip": "80302",
                   "country": "United States", "latitude": 40.0196, "longitude": -105.2745}),
            932,
            "197871390225897",
        ),
    ];
    DEMO_PAGES
        .iter()
        .zip(extra)
        .map(|((id, name, category), (username, about, description, website, phone, email, location, fans, cat_id))| {
            let fields = json!({
                "id": id,
                "name": name,
                "category": category,
                "category_list": [{"id": cat_id, "name": category}],
                "about": about,
                "description": description,
                "website": website,
                "link": format!("https://www.facebook.com/{username}"),
                "username": username,
                "phone": phone,
                "emails": [email],
                "location": location,
                "fan_count": fans,
                "verification_status": "not_verified",
                "picture": {"data": {"height": 50, "width": 50, "is_silhouette": false,
                                     "url": format!("{base}/emulator/pictures/{id}.svg")}},
            });
            let map = match fields {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            ((*id).to_owned(), map)
        })
        .collect()
}

// ----- small helpers -----------------------------------------------------------------

/// A long random string: `prefix` and the hex of 32 random bytes.
fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// An HTML page in the emulator's style; `body` is already escaped.
fn html(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5;\
         color:#1c1e21}}.banner{{background:#fff4d6;border:1px solid #e7c66b;padding:.4rem .8rem;\
         border-radius:6px;font-size:.9rem}}.card{{border:1px solid #dadde1;border-radius:8px;\
         padding:1rem;margin:1rem 0}}button{{font-size:1rem;padding:.45rem 1rem;margin-right:.5rem;\
         border-radius:6px;border:1px solid #8a8d91;background:#fff;cursor:pointer}}\
         button.primary{{background:#1877f2;color:#fff;border-color:#1877f2}}\
         label{{display:block;margin-top:.5rem;font-weight:600}}input{{font-size:1rem;padding:.3rem;\
         width:100%;max-width:28rem}}#notice{{background:#e7f3ff;border:1px solid #1877f2;padding:.5rem .8rem;\
         border-radius:6px}}.error{{background:#ffebe9;border:1px solid #cf222e;padding:.5rem .8rem;\
         border-radius:6px}}table{{border-collapse:collapse}}td,th{{padding:.3rem .6rem;\
         border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}code{{word-break:break-all}}\
         </style></head><body><p class=\"banner\">pagesync sandbox: this page is served by the built-in \
         emulator, not by Meta or Shopify.</p>{}</body></html>",
        escape(title),
        body
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page)
}

/// An HTML error page (the platforms show these instead of redirecting when the
/// request itself is wrong).
fn html_error(status: StatusCode, message: &str) -> HttpResponse {
    html(
        status,
        "Error",
        &format!("<h1>Something went wrong</h1><p class=\"error\" id=\"error\">{}</p>", escape(message)),
    )
}

/// A hidden form field.
fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value))
}

/// `303 See Other` to `location`.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// Query or form pairs by name (the last one wins).
fn pairs(text: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(text).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A request's body parameters: a JSON object (arrays joined with commas) or a form.
fn body_params(req: &HttpRequest, body: &[u8]) -> HashMap<String, String> {
    if body.is_empty() {
        return HashMap::new();
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return pairs(body);
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else { return HashMap::new() };
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect()
}

/// `url` with `params` appended to its query (form-encoded, `+` for spaces).
fn with_query(url: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = reqwest::Url::parse(url).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    Some(url.to_string())
}

/// A list parameter as Graph takes it: `a,b` or a JSON array `["a","b"]`.
fn field_list(raw: &str) -> Vec<String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw) {
        return items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
    }
    raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

fn is_field_name(f: &str) -> bool {
    !f.is_empty() && f.len() <= 64 && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The top-level names of a Graph `fields` parameter: `a,b{c,d},e.limit(1)` gives
/// `a`, `b`, `e`.
fn top_level_fields(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut in_name = true;
    for c in raw.chars() {
        match c {
            '{' | '(' => {
                depth += 1;
                in_name = false;
            }
            '}' | ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_owned());
                }
                current.clear();
                in_name = true;
            }
            '.' if depth == 0 => in_name = false,
            c if depth == 0 && in_name => current.push(c),
            _ => {}
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// JSON text as Meta puts it on the wire: non-ASCII as lowercase `\uXXXX` escapes
/// (UTF-16, surrogate pairs above the BMP) and `/` as `\/`. Both only ever occur
/// inside strings in serde_json's output, so the rewrite keeps the JSON equal.
fn meta_wire(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

// ----- Graph errors ------------------------------------------------------------------

/// Graph's error body with HTTP 400.
fn graph_error(code: i64, message: &str) -> HttpResponse {
    graph_error_sub(code, None, message)
}

fn graph_error_sub(code: i64, subcode: Option<i64>, message: &str) -> HttpResponse {
    // Graph calls most failures OAuthException; "object does not exist" is a
    // GraphMethodException.
    let kind = if subcode == Some(33) { "GraphMethodException" } else { "OAuthException" };
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": format!("Sbx{}", hex::encode(rand::random::<[u8; 8]>())),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    HttpResponse::BadRequest().json(json!({ "error": error }))
}

fn invalid_token() -> HttpResponse {
    graph_error(190, "Invalid OAuth access token - Cannot parse access token")
}

/// Why `appsecret_proof` is not acceptable for `token`, if it is not. The timed form
/// (`appsecret_time`, HMAC of `token|time`) must be at most five minutes off; without
/// `appsecret_time` the proof is HMAC of the token alone.
fn proof_problem(params: &HashMap<String, String>, token: &str, secret: &Secret) -> Option<&'static str> {
    let Some(proof) = params.get("appsecret_proof") else {
        return Some("API calls from the server require an appsecret_proof argument");
    };
    let expected = match params.get("appsecret_time") {
        Some(time) => {
            let Ok(seconds) = time.parse::<u64>() else {
                return Some("Invalid appsecret_time provided in the API argument");
            };
            if seconds.abs_diff(unix_now()) > PROOF_WINDOW_SECS {
                return Some("appsecret_time is too far from the current time");
            }
            appsecret_proof(secret, &Secret::new(token), seconds)
        }
        None => hex::encode(hmac_sha256(secret.expose().as_bytes(), token.as_bytes())),
    };
    if constant_time_eq(proof, &expected) { None } else { Some("Invalid appsecret_proof provided in the API argument") }
}

// ----- editor ------------------------------------------------------------------------

async fn root() -> HttpResponse {
    see_other("/emulator")
}

/// `GET /emulator`: the demo Pages, a form per Page, the subscription and the recent
/// deliveries.
async fn editor(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let query = pairs(req.query_string().as_bytes());
    let notice = query.get("notice").and_then(|n| n.parse::<u64>().ok());
    let world = shared.lock();
    let config = &shared.config;
    let mut body = String::from("<h1>Meta &amp; Shopify emulator</h1>");
    body.push_str(&format!(
        "<p>Start as a merchant at <a id=\"start\" href=\"{}\">the Shopify install</a>; the daemon's \
         <a id=\"dashboard\" href=\"{}\">dashboard</a> shows the connected Pages. Editing a Page below \
         changes it \"on Facebook\" and sends Meta's signed webhook to pagesync.</p>",
        escape(&config.start_url),
        escape(&config.dashboard_url)
    ));
    if !config.bot_url.is_empty() {
        body.push_str(&format!(
            "<p>\"Customer sends a message\" writes to a Page on Messenger; pagesync relays Meta's delivery to \
             the sandbox's <a id=\"bot\" href=\"{}\">demo bot</a>, which also shows the events pagesync sends.</p>",
            escape(&config.bot_url)
        ));
    }
    if let Some(entry) = notice.and_then(|n| world.activity.iter().find(|a| a.number == n)) {
        body.push_str(&format!("<p id=\"notice\" role=\"status\">{}</p>", escape(&entry.summary)));
    }
    body.push_str(&format!("<h2>Facebook Pages of {} (user {})</h2>", escape(DEMO_USER_NAME), escape(DEMO_USER_ID)));
    for (id, fields) in &world.pages {
        let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (name, category) = (text("name"), text("category"));
        let installed = match world.installed.get(id) {
            Some(f) => format!("installed, fields: {}", escape(&f.join(", "))),
            None => "not installed".to_owned(),
        };
        body.push_str(&format!(
            "<section class=\"card\" id=\"page-{id}\"><h3>{name_html}</h3><p>Page {id} · {cat_html} · \
             pagesync on this Page: <span class=\"installed\">{installed}</span></p>\
             <form id=\"edit-{id}\" method=\"post\" action=\"/emulator/pages/{id}\">\
             <label for=\"name-{id}\">Name</label>\
             <input id=\"name-{id}\" name=\"name\" value=\"{name_html}\" maxlength=\"{MAX_TEXT_CHARS}\" required>\
             <label for=\"category-{id}\">Category</label>\
             <input id=\"category-{id}\" name=\"category\" value=\"{cat_html}\" maxlength=\"{MAX_TEXT_CHARS}\" \
             required><p><button class=\"primary\" type=\"submit\" id=\"save-{id}\">Save and notify \
             webhooks</button></p></form>\
             <form id=\"message-form-{id}\" method=\"post\" action=\"/emulator/pages/{id}/messages\">\
             <label for=\"message-text-{id}\">A customer writes to this Page on Messenger</label>\
             <input id=\"message-text-{id}\" name=\"text\" value=\"Hi! Do you ship to Canada?\" \
             maxlength=\"{MAX_MESSAGE_CHARS}\" required><p><button type=\"submit\" id=\"send-message-{id}\">\
             Customer sends a message</button></p></form></section>",
            name_html = escape(&name),
            cat_html = escape(&category),
        ));
    }
    body.push_str("<h2>App webhook subscription</h2>");
    match &world.app_subscription {
        Some(sub) => body.push_str(&format!(
            "<p id=\"subscription\">object <code>page</code>, fields <code>{}</code>, include_values \
             <code>{}</code>, callback <code>{}</code> (verified)</p>",
            escape(&sub.fields.join(",")),
            sub.include_values,
            escape(&sub.callback_url)
        )),
        None => body.push_str(&format!(
            "<p id=\"subscription\">None yet: pagesync subscribes when a merchant connects. Until then \
             deliveries go to <code>{}</code>.</p>",
            escape(&config.webhook_address)
        )),
    }
    if !world.activity.is_empty() {
        body.push_str(
            "<h2>Recent changes and messages</h2><table id=\"activity\"><tr><th>#</th><th>Page</th><th>What happened</th></tr>",
        );
        for entry in world.activity.iter().rev() {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                entry.number,
                escape(&entry.page),
                escape(&entry.summary)
            ));
        }
        body.push_str("</table>");
    }
    drop(world);
    html(StatusCode::OK, "Emulator: Facebook Pages", &body)
}

/// Checks a name, category or message typed into the editor: present, not blank, at
/// most `max` characters, no control characters.
fn check_text(label: &str, value: Option<&String>, max: usize) -> Result<String, String> {
    let value = value.ok_or_else(|| format!("{label} is missing"))?;
    if value.trim().is_empty() {
        return Err(format!("{label} must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{label} must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{label} must not contain control characters"));
    }
    Ok(value.trim().to_owned())
}

/// `POST /emulator/pages/{id}`: changes a Page and, when our app is installed on it
/// for a changed field, delivers Meta's webhook; then back to the editor.
async fn save_page(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let id = path.into_inner();
    let form = pairs(&body);
    let checked = (
        check_text("Name", form.get("name"), MAX_TEXT_CHARS),
        check_text("Category", form.get("category"), MAX_TEXT_CHARS),
    );
    let (name, category) = match checked {
        (Ok(n), Ok(c)) => (n, c),
        (Err(e), _) | (_, Err(e)) => return html_error(StatusCode::BAD_REQUEST, &e),
    };

    // Update the Page and decide, under the lock, whether and where to deliver.
    let plan = {
        let mut world = shared.lock();
        let Some((_, fields)) = world.pages.iter_mut().find(|(p, _)| *p == id) else {
            return html_error(StatusCode::NOT_FOUND, "There is no such Page in the emulator.");
        };
        let mut changed = Vec::new();
        if fields.get("name").and_then(Value::as_str) != Some(name.as_str()) {
            fields.insert("name".into(), json!(name));
            changed.push(("name".to_owned(), name.clone()));
        }
        if fields.get("category").and_then(Value::as_str) != Some(category.as_str()) {
            let cat_id = fields
                .get("category_list")
                .and_then(|l| l.get(0))
                .and_then(|c| c.get("id"))
                .cloned()
                .unwrap_or(json!("2500"));
            fields.insert("category".into(), json!(category));
            fields.insert("category_list".into(), json!([{"id": cat_id, "name": category}]));
            changed.push(("category".to_owned(), category.clone()));
        }
        plan_delivery(&world, &shared.config, &id, changed)
    };

    let number = carry_out(&shared, &id, plan, "Saved.").await;
    see_other(&format!("/emulator?notice={number}#page-{id}"))
}

/// `POST /emulator/pages/{id}/messages`: a customer writes to the Page on Messenger.
/// Meta delivers that only when our app is installed on the Page with `messages` and
/// the app subscription (if any) has it too; the editor's notice says either way.
async fn send_message(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let id = path.into_inner();
    let form = pairs(&body);
    let text = match check_text("Message", form.get("text"), MAX_MESSAGE_CHARS) {
        Ok(text) => text,
        Err(e) => return html_error(StatusCode::BAD_REQUEST, &e),
    };
    let plan = {
        let world = shared.lock();
        if !world.pages.iter().any(|(p, _)| *p == id) {
            return html_error(StatusCode::NOT_FOUND, "There is no such Page in the emulator.");
        }
        plan_message(&world, &shared.config, &id, &text)
    };
    let number = carry_out(&shared, &id, plan, "The customer's message reached the Page.").await;
    see_other(&format!("/emulator?notice={number}#page-{id}"))
}

/// Makes the planned delivery (if any) and records the outcome in the activity list;
/// returns its number for the notice. `done` opens the summary: what happened on
/// "Facebook" whether or not a webhook went out.
async fn carry_out(shared: &Shared, id: &str, plan: Plan, done: &str) -> u64 {
    let (changed, delivery, summary) = match plan {
        Plan::Nothing(changed, why) => (changed, None, why),
        Plan::Deliver { changed, callback_url, body } => {
            let answer = deliver(shared, &callback_url, &body).await;
            let summary = match &answer {
                Ok((status, text)) => {
                    let excerpt: String = text.chars().take(200).collect();
                    format!("{done} Delivered to pagesync: {status} {excerpt}")
                }
                Err(e) => format!("{done} But the delivery to {callback_url} failed: {e}"),
            };
            (changed, Some(DeliveryOutcome { callback_url, body, answer }), summary)
        }
    };
    tracing::info!(page = %id, changed = ?changed, summary = %summary, "emulator: Page activity");
    let mut world = shared.lock();
    let number = world.next_activity;
    world.next_activity += 1;
    world.activity.push_back(Activity { number, page: id.to_owned(), changed, delivery, summary });
    while world.activity.len() > ACTIVITY_KEPT {
        world.activity.pop_front();
    }
    number
}

enum Plan {
    /// No delivery: the changed fields and why not.
    Nothing(Vec<String>, String),
    Deliver {
        changed: Vec<String>,
        callback_url: String,
        body: String,
    },
}

/// Meta delivers a field only when the app subscribed to it (app level) and is
/// installed on the Page with it (Page level). Without an app subscription yet, the
/// configured webhook address stands in for a callback set in the App Dashboard.
fn plan_delivery(world: &World, config: &EmulatorConfig, page: &str, changed: Vec<(String, String)>) -> Plan {
    let names: Vec<String> = changed.iter().map(|(f, _)| f.clone()).collect();
    if changed.is_empty() {
        return Plan::Nothing(names, "Nothing changed; no webhook sent.".into());
    }
    let Some(page_fields) = world.installed.get(page) else {
        return Plan::Nothing(
            names,
            "Saved. No webhook sent: pagesync is not installed on this Page yet (connect it first).".into(),
        );
    };
    let (callback_url, app_fields, include_values) = match &world.app_subscription {
        Some(sub) => (sub.callback_url.clone(), Some(sub.fields.clone()), sub.include_values),
        None => (config.webhook_address.clone(), None, true),
    };
    let wanted: Vec<&(String, String)> = changed
        .iter()
        .filter(|(f, _)| page_fields.contains(f) && app_fields.as_ref().is_none_or(|a| a.contains(f)))
        .collect();
    if wanted.is_empty() {
        return Plan::Nothing(
            names.clone(),
            format!("Saved. No webhook sent: pagesync is not subscribed to {}.", names.join(" or ")),
        );
    }
    // Built by hand to keep Meta's key order (object, entry; id, time, changes).
    let detail = if include_values {
        let changes: Vec<String> = wanted
            .iter()
            .map(|(f, v)| format!("{{\"field\":{},\"value\":{}}}", json_string(f), json_string(v)))
            .collect();
        format!("\"changes\":[{}]", changes.join(","))
    } else {
        let fields: Vec<String> = wanted.iter().map(|(f, _)| json_string(f)).collect();
        format!("\"changed_fields\":[{}]", fields.join(","))
    };
    let body = meta_wire(&format!(
        "{{\"object\":\"page\",\"entry\":[{{\"id\":{},\"time\":{},{detail}}}]}}",
        json_string(page),
        unix_now()
    ));
    Plan::Deliver { changed: names, callback_url, body }
}

/// A Messenger delivery for a customer's `text` to `page`, when Meta would send one:
/// `messages` subscribed on the Page (`subscribed_apps`) and, once the app has a
/// subscription, there too. The same callback rule as [`plan_delivery`].
fn plan_message(world: &World, config: &EmulatorConfig, page: &str, text: &str) -> Plan {
    let changed = vec!["messages".to_owned()];
    let not_sent =
        |why: &str| Plan::Nothing(changed.clone(), format!("The customer's message reached the Page. {why}"));
    if !world.installed.get(page).is_some_and(|fields| fields.iter().any(|f| f == "messages")) {
        return not_sent(
            "No webhook sent: pagesync is not installed on this Page with the messages field (connect it first, \
             with PAGESYNC_BOT_FIELDS naming messages).",
        );
    }
    let callback_url = match &world.app_subscription {
        Some(sub) if sub.fields.iter().any(|f| f == "messages") => sub.callback_url.clone(),
        Some(_) => return not_sent("No webhook sent: the app's webhook subscription does not include messages."),
        None => config.webhook_address.clone(),
    };
    // Meta stamps Messenger events in milliseconds; built by hand to keep Meta's key
    // order (object, entry; id, time, messaging; sender, recipient, timestamp, message).
    let millis = unix_millis();
    let mid = format!("m_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>()));
    let page_json = json_string(page);
    let body = meta_wire(&format!(
        "{{\"object\":\"page\",\"entry\":[{{\"id\":{page_json},\"time\":{millis},\"messaging\":[{{\"sender\":{{\"id\":{}}},\
         \"recipient\":{{\"id\":{page_json}}},\"timestamp\":{millis},\"message\":{{\"mid\":{},\"text\":{}}}}}]}}]}}",
        json_string(DEMO_CUSTOMER_PSID),
        json_string(&mid),
        json_string(text),
    ));
    Plan::Deliver { changed, callback_url, body }
}

/// Unix milliseconds now.
fn unix_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// POSTs a delivery signed as Meta signs it: both headers, HMAC under the app secret
/// over exactly the bytes sent.
async fn deliver(shared: &Shared, url: &str, body: &str) -> Result<(u16, String), String> {
    let secret = shared.config.app_secret.expose();
    let sent = shared
        .client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", sign_sha256(secret, body.as_bytes()))
        .header("X-Hub-Signature", sign_sha1(secret, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            Ok((status, text))
        }
        Err(e) => Err(e.without_url().to_string()),
    }
}

/// `GET /emulator/pictures/{id}.svg`: the Page's profile picture (its initial).
async fn picture(path: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let file = path.into_inner();
    let Some(id) = file.strip_suffix(".svg") else { return HttpResponse::NotFound().finish() };
    let initial = {
        let world = shared.lock();
        let Some((_, fields)) = world.pages.iter().find(|(p, _)| p == id) else {
            return HttpResponse::NotFound().finish();
        };
        fields.get("name").and_then(Value::as_str).and_then(|n| n.chars().next()).unwrap_or('?')
    };
    let hue = id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 360;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"50\" height=\"50\" viewBox=\"0 0 50 50\">\
         <circle cx=\"25\" cy=\"25\" r=\"25\" fill=\"hsl({hue},55%,45%)\"/><text x=\"25\" y=\"33\" \
         font-family=\"sans-serif\" font-size=\"24\" fill=\"#fff\" text-anchor=\"middle\">{}</text></svg>",
        escape(&initial.to_string())
    );
    HttpResponse::Ok().content_type("image/svg+xml").body(svg)
}

// ----- Shopify -----------------------------------------------------------------------

/// What the authorize page and its decision both check (Shopify refuses to show the
/// page at all when these are wrong).
fn check_shopify_request(config: &EmulatorConfig, shop: &str, params: &HashMap<String, String>) -> Result<(), String> {
    if ShopDomain::parse(shop).is_err() {
        return Err(format!("{shop} is not a myshopify.com shop domain."));
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if !constant_time_eq(get("client_id"), &config.shopify_api_key) {
        return Err("Oauth error invalid_request: Could not find a Shopify API application with this client_id.".into());
    }
    if get("redirect_uri") != config.shopify_redirect_uri {
        return Err("Oauth error invalid_request: The redirect_uri is not whitelisted.".into());
    }
    let scope = get("scope");
    if scope.is_empty()
        || !scope.split(',').all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err("Oauth error invalid_scope: The scope is missing or malformed.".into());
    }
    Ok(())
}

/// `GET /shopify/{shop}/admin/oauth/authorize`: the install page.
async fn shopify_authorize(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let shop = path.into_inner();
    let params = pairs(req.query_string().as_bytes());
    if let Err(message) = check_shopify_request(&shared.config, &shop, &params) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let scopes: Vec<String> = get("scope").split(',').map(|s| format!("<li><code>{}</code></li>", escape(s))).collect();
    let shop_html = escape(&shop);
    let body = format!(
        "<h1>Install pagesync on {shop_html}?</h1><div class=\"card\"><p>pagesync (sandbox app) is asking \
         for access to {shop_html}:</p><ul>{}</ul><form id=\"authorize\" method=\"post\" \
         action=\"/shopify/{shop_html}/admin/oauth/authorize\">{}{}{}{}<button class=\"primary\" type=\"submit\" \
         id=\"approve\" name=\"decision\" value=\"approve\">Install app</button><button type=\"submit\" \
         id=\"decline\" name=\"decision\" value=\"decline\">Cancel</button></form></div>",
        scopes.join(""),
        hidden("client_id", get("client_id")),
        hidden("scope", get("scope")),
        hidden("redirect_uri", get("redirect_uri")),
        hidden("state", get("state")),
    );
    html(StatusCode::OK, &format!("Install pagesync on {shop}?"), &body)
}

/// `POST /shopify/{shop}/admin/oauth/authorize`: approve redirects to the app with a
/// signed query; decline stays here.
async fn shopify_decide(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let shop = path.into_inner();
    let form = pairs(&body);
    if let Err(message) = check_shopify_request(&shared.config, &shop, &form) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    match form.get("decision").map(String::as_str) {
        Some("approve") => {}
        Some("decline") => {
            return html(
                StatusCode::OK,
                "Installation cancelled",
                &format!(
                    "<h1>pagesync was not installed</h1><p id=\"declined\">You cancelled the installation on {}.</p>",
                    escape(&shop)
                ),
            );
        }
        _ => return html_error(StatusCode::BAD_REQUEST, "Choose Install app or Cancel."),
    }
    let code = hex::encode(rand::random::<[u8; 16]>());
    {
        let mut world = shared.lock();
        world
            .shop_codes
            .insert(code.clone(), ShopCode { shop: shop.clone(), expires_at: unix_now() + CODE_LIFETIME_SECS });
        world.issued.push(code.clone());
    }
    let store = shop.trim_end_matches(".myshopify.com");
    let host = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("admin.shopify.com/store/{store}"));
    let mut params = vec![
        ("code".to_owned(), code),
        ("host".to_owned(), host),
        ("shop".to_owned(), shop.clone()),
        ("timestamp".to_owned(), unix_now().to_string()),
    ];
    if let Some(state) = form.get("state").filter(|s| !s.is_empty()) {
        params.push(("state".to_owned(), state.clone()));
    }
    params.sort();
    let message = shopify_message(&params);
    let hmac = hex::encode(hmac_sha256(shared.config.shopify_api_secret.expose().as_bytes(), message.as_bytes()));
    let mut query: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    query.push(("hmac", &hmac));
    match with_query(&shared.config.shopify_redirect_uri, &query) {
        Some(location) => see_other(&location),
        None => html_error(StatusCode::BAD_REQUEST, "The app's redirect_uri is not a URL."),
    }
}

fn shopify_oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": error, "error_description": description }))
}

/// `POST /shopify/{shop}/admin/oauth/access_token`: a single-use code (with the app's
/// credentials) for an offline access token.
async fn shopify_token(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let shop = path.into_inner();
    let mut params = body_params(&req, &body);
    params.extend(pairs(req.query_string().as_bytes()));
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let config = &shared.config;
    if !constant_time_eq(get("client_id"), &config.shopify_api_key)
        || !constant_time_eq(get("client_secret"), config.shopify_api_secret.expose())
    {
        return shopify_oauth_error("invalid_client", "Client authentication failed");
    }
    let mut world = shared.lock();
    let valid = match world.shop_codes.remove(get("code")) {
        Some(code) if code.shop == shop && code.expires_at >= unix_now() => true,
        Some(code) => {
            // A code presented for another shop stays usable for its own.
            if code.shop != shop {
                world.shop_codes.insert(get("code").to_owned(), code);
            }
            false
        }
        None => false,
    };
    if !valid {
        return shopify_oauth_error("invalid_request", "The authorization code was not found or was already used");
    }
    let token = random_token("shpat_");
    world.issued.push(token.clone());
    drop(world);
    tracing::info!(shop = %shop, "emulator: Shopify token issued");
    HttpResponse::Ok().json(json!({ "access_token": token, "scope": "read_products" }))
}

// ----- Facebook Login dialog ---------------------------------------------------------

fn check_dialog_request(
    config: &EmulatorConfig,
    version: &str,
    params: &HashMap<String, String>,
) -> Result<(), String> {
    if version != config.graph_version {
        return Err(format!("This emulator answers Graph {} only, not {version}.", config.graph_version));
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != config.app_id {
        return Err("Invalid App ID: The provided app ID does not look like a valid app ID.".into());
    }
    if get("redirect_uri") != config.facebook_redirect_uri {
        return Err("URL blocked: This redirect failed because the redirect URI is not whitelisted in the app's \
                    Client OAuth Settings. Make sure Client and Web OAuth Login are on and add all your app \
                    domains as Valid OAuth Redirect URIs."
            .into());
    }
    match params.get("response_type").map(String::as_str) {
        None | Some("code") => Ok(()),
        Some(other) => Err(format!("The emulator supports response_type=code only, not {other}.")),
    }
}

/// `GET /{version}/dialog/oauth`: the Login dialog.
async fn dialog(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let version = path.into_inner();
    let params = pairs(req.query_string().as_bytes());
    if let Err(message) = check_dialog_request(&shared.config, &version, &params) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let pages: Vec<String> = {
        let world = shared.lock();
        world
            .pages
            .iter()
            .map(|(id, f)| {
                let text = |k: &str| escape(f.get(k).and_then(Value::as_str).unwrap_or_default());
                format!("<li data-page-id=\"{id}\"><strong>{}</strong> · {}</li>", text("name"), text("category"))
            })
            .collect()
    };
    let scopes: Vec<String> = get("scope")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let body = format!(
        "<h1>pagesync wants to manage your Pages</h1><div class=\"card\"><p>Logged in as <strong>{}</strong>. \
         pagesync will be able to use these Pages:</p><ul id=\"dialog-pages\">{}</ul><p>Permissions \
         requested:</p><ul>{}</ul><form id=\"dialog\" method=\"post\" action=\"/{}/dialog/oauth\">{}{}{}{}{}\
         <button class=\"primary\" type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Continue</button>\
         <button type=\"submit\" id=\"cancel\" name=\"decision\" value=\"cancel\">Cancel</button></form></div>",
        escape(DEMO_USER_NAME),
        pages.join(""),
        scopes.join(""),
        escape(&version),
        hidden("client_id", get("client_id")),
        hidden("redirect_uri", get("redirect_uri")),
        hidden("scope", get("scope")),
        hidden("response_type", get("response_type")),
        hidden("state", get("state")),
    );
    html(StatusCode::OK, "Log in with Facebook", &body)
}

/// `POST /{version}/dialog/oauth`: Continue redirects with a code, Cancel with
/// Meta's `access_denied` error.
async fn dialog_decide(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let version = path.into_inner();
    let form = pairs(&body);
    if let Err(message) = check_dialog_request(&shared.config, &version, &form) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    let redirect_uri = shared.config.facebook_redirect_uri.clone();
    let state = form.get("state").cloned().unwrap_or_default();
    let location = match form.get("decision").map(String::as_str) {
        Some("allow") => {
            let code = random_token("AQ");
            {
                let mut world = shared.lock();
                world.dialog_codes.insert(
                    code.clone(),
                    DialogCode { redirect_uri: redirect_uri.clone(), expires_at: unix_now() + CODE_LIFETIME_SECS },
                );
                world.issued.push(code.clone());
            }
            with_query(&redirect_uri, &[("code", &code), ("state", &state)])
        }
        Some("cancel") => with_query(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_code", "200"),
                ("error_description", "Permissions error"),
                ("error_reason", "user_denied"),
                ("state", &state),
            ],
        ),
        _ => return html_error(StatusCode::BAD_REQUEST, "Choose Continue or Cancel."),
    };
    match location {
        Some(location) => see_other(&location),
        None => html_error(StatusCode::BAD_REQUEST, "The app's redirect_uri is not a URL."),
    }
}

// ----- Graph API ---------------------------------------------------------------------

/// Every Graph request: `/{version}/...`, parameters from the query and the body.
async fn graph(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let query = pairs(req.query_string().as_bytes());
    let mut params = body_params(&req, &body);
    params.extend(query);
    let token = params.get("access_token").cloned().or_else(|| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("OAuth ")))
            .map(str::to_owned)
    });
    let path = req.path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((version, rest)) = segments.split_first() else {
        return graph_error(2500, "Unknown path components: /");
    };
    if *version != shared.config.graph_version {
        return graph_error(
            2635,
            &format!("(#2635) The emulator answers Graph API {} only, not {version}.", shared.config.graph_version),
        );
    }
    let token = token.as_deref();
    let method = req.method().as_str();
    match (method, rest) {
        ("GET", ["oauth", "access_token"]) => oauth_access_token(&shared, &params),
        ("GET", ["debug_token"]) => debug_token(&shared, &params, token),
        ("GET", ["me"]) => me(&shared, &params, token),
        ("GET", ["me", "accounts"]) => accounts(&shared, &req, &params, token),
        (_, [page, "subscribed_apps"]) => subscribed_apps(&shared, method, page, &params, token),
        ("POST", [app, "subscriptions"]) => app_subscriptions_post(&shared, app, &params, token).await,
        (_, [app, "subscriptions"]) => app_subscriptions(&shared, method, app, token),
        ("GET", [page]) => page_get(&shared, page, &params, token),
        _ => graph_error(2500, &format!("Unknown path components: /{}", rest.join("/"))),
    }
}

/// `GET /oauth/access_token`: a dialog code for a short-lived user token, or
/// (`grant_type=fb_exchange_token`) a short-lived for a long-lived one.
fn oauth_access_token(shared: &Shared, params: &HashMap<String, String>) -> HttpResponse {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let config = &shared.config;
    if get("client_id") != config.app_id {
        return graph_error(101, "Error validating application. Invalid application ID.");
    }
    if !constant_time_eq(get("client_secret"), config.app_secret.expose()) {
        return graph_error(1, "Error validating client secret.");
    }
    let mut world = shared.lock();
    if get("grant_type") == "fb_exchange_token" {
        match world.tokens.get(get("fb_exchange_token")) {
            Some(TokenOwner::User { .. }) => {}
            _ => return invalid_token(),
        }
        let long = random_token("EAAGlong");
        world.tokens.insert(long.clone(), TokenOwner::User { long: true, issued_at: unix_now() });
        world.issued.push(long.clone());
        return HttpResponse::Ok().json(json!({"access_token": long, "token_type": "bearer", "expires_in": 5_183_944}));
    }
    let code = get("code");
    if code.is_empty() {
        return graph_error(100, "Missing authorization code");
    }
    let Some(issued) = world.dialog_codes.remove(code) else {
        return graph_error_sub(100, Some(36009), "This authorization code has been used.");
    };
    if issued.expires_at < unix_now() {
        return graph_error_sub(100, Some(36007), "This authorization code has expired.");
    }
    if get("redirect_uri") != issued.redirect_uri {
        return graph_error_sub(
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you \
             used in the OAuth dialog request",
        );
    }
    let short = random_token("EAAGshort");
    world.tokens.insert(short.clone(), TokenOwner::User { long: false, issued_at: unix_now() });
    world.issued.push(short.clone());
    HttpResponse::Ok().json(json!({"access_token": short, "token_type": "bearer", "expires_in": 5_400}))
}

fn app_token_ok(config: &EmulatorConfig, token: Option<&str>) -> bool {
    let expected = format!("{}|{}", config.app_id, config.app_secret.expose());
    token.is_some_and(|t| constant_time_eq(t, &expected))
}

/// `GET /debug_token?input_token=` with the app token.
fn debug_token(shared: &Shared, params: &HashMap<String, String>, token: Option<&str>) -> HttpResponse {
    if !app_token_ok(&shared.config, token) {
        return invalid_token();
    }
    let Some(input) = params.get("input_token") else {
        return graph_error(100, "(#100) The parameter input_token is required");
    };
    let world = shared.lock();
    let scopes = json!(["pages_messaging", "pages_show_list", "pages_manage_metadata"]);
    let data = match world.tokens.get(input) {
        Some(TokenOwner::Page(page)) => json!({
            "app_id": shared.config.app_id, "type": "PAGE", "application": "pagesync (sandbox)",
            "data_access_expires_at": unix_now() + 90 * 86_400, "expires_at": 0, "is_valid": true,
            "profile_id": page, "scopes": scopes, "user_id": DEMO_USER_ID,
        }),
        Some(TokenOwner::User { long, issued_at }) => json!({
            "app_id": shared.config.app_id, "type": "USER", "application": "pagesync (sandbox)",
            "data_access_expires_at": issued_at + 90 * 86_400,
            "expires_at": issued_at + if *long { 5_183_944 } else { 5_400 }, "is_valid": true,
            "scopes": scopes, "user_id": DEMO_USER_ID,
        }),
        None => json!({
            "error": {"code": 190, "message": "Invalid OAuth access token."}, "is_valid": false, "scopes": [],
        }),
    };
    HttpResponse::Ok().json(json!({ "data": data }))
}

/// A Graph error answer, boxed: it travels in `Err` through the checks below.
type Refusal = Box<HttpResponse>;

/// Checks a call made with a user or Page token: known token, valid proof.
fn token_owner(shared: &Shared, params: &HashMap<String, String>, token: Option<&str>) -> Result<TokenOwner, Refusal> {
    let Some(token) = token else {
        return Err(Box::new(graph_error(104, "An access token is required to request this resource.")));
    };
    let owner = shared.lock().tokens.get(token).cloned().ok_or_else(|| Box::new(invalid_token()))?;
    if let Some(problem) = proof_problem(params, token, &shared.config.app_secret) {
        return Err(Box::new(graph_error(100, problem)));
    }
    Ok(owner)
}

/// Picks the requested top-level fields (`id` always), or `default` without `fields`.
fn select_fields(all: &Map<String, Value>, params: &HashMap<String, String>, default: &[&str]) -> Map<String, Value> {
    let wanted: Vec<String> = match params.get("fields") {
        Some(f) => top_level_fields(f),
        None => default.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut out = Map::new();
    if let Some(id) = all.get("id") {
        out.insert("id".into(), id.clone());
    }
    for field in wanted {
        if let Some(value) = all.get(&field) {
            out.insert(field, value.clone());
        }
    }
    out
}

/// `GET /me`: the demo user (with a user token) or the Page itself (with a Page token).
fn me(shared: &Shared, params: &HashMap<String, String>, token: Option<&str>) -> HttpResponse {
    let owner = match token_owner(shared, params, token) {
        Ok(o) => o,
        Err(answer) => return *answer,
    };
    match owner {
        TokenOwner::User { .. } => {
            let mut user = Map::new();
            user.insert("id".into(), json!(DEMO_USER_ID));
            user.insert("name".into(), json!(DEMO_USER_NAME));
            HttpResponse::Ok().json(select_fields(&user, params, &["id", "name"]))
        }
        TokenOwner::Page(page) => {
            let world = shared.lock();
            match world.pages.iter().find(|(p, _)| *p == page) {
                Some((_, fields)) => HttpResponse::Ok().json(select_fields(fields, params, &["id", "name"])),
                None => invalid_token(),
            }
        }
    }
}

/// `GET /me/accounts`: the demo user's Pages with fresh Page tokens, two per answer,
/// with Graph's cursor paging and a ready-to-follow `next` link.
fn accounts(shared: &Shared, req: &HttpRequest, params: &HashMap<String, String>, token: Option<&str>) -> HttpResponse {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    match token_owner(shared, params, token) {
        Ok(TokenOwner::User { .. }) => {}
        Ok(TokenOwner::Page(_)) => {
            return graph_error(100, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)");
        }
        Err(answer) => return *answer,
    }
    let start = match params.get("after") {
        None => 0,
        Some(cursor) => {
            let decoded = b64.decode(cursor).ok().and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|t| t.strip_prefix("index:")).and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => return graph_error(100, "(#100) Invalid cursor"),
            }
        }
    };
    let limit = params.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100);
    let size = limit.min(ACCOUNTS_PAGE_SIZE);
    let mut world = shared.lock();
    let total = world.pages.len();
    let end = (start + size).min(total);
    let listed: Vec<(String, Map<String, Value>)> = world.pages[start.min(end)..end].to_vec();
    let mut data = Vec::new();
    for (id, fields) in listed {
        let page_token = random_token("EAAGpage");
        world.tokens.insert(page_token.clone(), TokenOwner::Page(id.clone()));
        world.issued.push(page_token.clone());
        let mut entry = Map::new();
        entry.insert("access_token".into(), json!(page_token));
        for key in ["category", "category_list", "name", "id"] {
            if let Some(v) = fields.get(key) {
                entry.insert(key.into(), v.clone());
            }
        }
        entry.insert("tasks".into(), json!(["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]));
        let default = ["access_token", "category", "category_list", "name", "id", "tasks"];
        data.push(Value::Object(select_fields(&entry, params, &default)));
    }
    drop(world);
    let mut paging = Map::new();
    paging.insert(
        "cursors".into(),
        json!({"before": b64.encode(format!("index:{start}")), "after": b64.encode(format!("index:{end}"))}),
    );
    if end < total {
        // Like Graph: the request's own parameters (token and proof included) plus the
        // cursor, ready to follow.
        let mut next: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .filter(|(k, _)| k != "after" && k != "before")
            .collect();
        next.push(("after".into(), b64.encode(format!("index:{end}"))));
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(next).finish();
        paging.insert("next".into(), json!(format!("{}{}?{query}", shared.config.url, req.path())));
    }
    HttpResponse::Ok().json(json!({ "data": data, "paging": paging }))
}

/// A Page-token call on `page`: the token must be a Page token of that Page.
fn page_token_check(
    shared: &Shared,
    page: &str,
    params: &HashMap<String, String>,
    token: Option<&str>,
) -> Result<(), Refusal> {
    if !shared.lock().pages.iter().any(|(p, _)| p == page) {
        return Err(Box::new(unknown_object(page)));
    }
    match token_owner(shared, params, token)? {
        TokenOwner::Page(p) if p == page => Ok(()),
        TokenOwner::Page(_) => {
            Err(Box::new(graph_error(190, "Invalid OAuth access token: the token is for another Page")))
        }
        TokenOwner::User { .. } => {
            Err(Box::new(graph_error(210, "(#210) A page access token is required to request this resource.")))
        }
    }
}

fn unknown_object(id: &str) -> HttpResponse {
    if id.bytes().all(|b| b.is_ascii_digit()) {
        graph_error_sub(
            100,
            Some(33),
            &format!(
                "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing \
                 permissions, or does not support this operation."
            ),
        )
    } else {
        graph_error(803, &format!("(#803) Some of the aliases you requested do not exist: {id}"))
    }
}

/// `GET /{page-id}?fields=...` with the Page token: the requested fields the Page has.
fn page_get(shared: &Shared, page: &str, params: &HashMap<String, String>, token: Option<&str>) -> HttpResponse {
    if let Err(answer) = page_token_check(shared, page, params, token) {
        return *answer;
    }
    let world = shared.lock();
    match world.pages.iter().find(|(p, _)| p == page) {
        Some((_, fields)) => HttpResponse::Ok().json(select_fields(fields, params, &["name", "id"])),
        None => unknown_object(page),
    }
}

/// `GET`, `POST` and `DELETE /{page-id}/subscribed_apps` with the Page token.
fn subscribed_apps(
    shared: &Shared,
    method: &str,
    page: &str,
    params: &HashMap<String, String>,
    token: Option<&str>,
) -> HttpResponse {
    if let Err(answer) = page_token_check(shared, page, params, token) {
        return *answer;
    }
    let mut world = shared.lock();
    match method {
        "GET" => {
            let data = match world.installed.get(page) {
                Some(fields) => json!([{
                    "category": "Business", "link": "https://pagesync.example/", "name": "pagesync (sandbox)",
                    "id": shared.config.app_id, "subscribed_fields": fields,
                }]),
                None => json!([]),
            };
            HttpResponse::Ok().json(json!({ "data": data }))
        }
        "POST" => {
            let fields = params.get("subscribed_fields").map(|f| field_list(f)).unwrap_or_default();
            if fields.is_empty() {
                return graph_error(100, "(#100) The parameter subscribed_fields is required");
            }
            if let Some(bad) = fields.iter().find(|f| !is_field_name(f)) {
                return graph_error(100, &format!("(#100) Param subscribed_fields contains an invalid field: {bad}"));
            }
            world.installed.insert(page.to_owned(), fields.clone());
            drop(world);
            tracing::info!(page, fields = %fields.join(","), "emulator: app installed on a Page");
            HttpResponse::Ok().json(json!({ "success": true }))
        }
        "DELETE" => {
            world.installed.remove(page);
            HttpResponse::Ok().json(json!({ "success": true }))
        }
        _ => graph_error(2500, "Unsupported method"),
    }
}

/// `GET` and `DELETE /{app-id}/subscriptions` with the app token.
fn app_subscriptions(shared: &Shared, method: &str, app: &str, token: Option<&str>) -> HttpResponse {
    if app != shared.config.app_id || !app_token_ok(&shared.config, token) {
        return invalid_token();
    }
    let mut world = shared.lock();
    match method {
        "GET" => {
            let data: Vec<Value> = world
                .app_subscription
                .iter()
                .map(|s| {
                    let fields: Vec<Value> =
                        s.fields.iter().map(|f| json!({"name": f, "version": shared.config.graph_version})).collect();
                    json!({"object": "page", "callback_url": s.callback_url, "active": true, "fields": fields})
                })
                .collect();
            HttpResponse::Ok().json(json!({ "data": data }))
        }
        "DELETE" => {
            world.app_subscription = None;
            HttpResponse::Ok().json(json!({ "success": true }))
        }
        _ => graph_error(2500, "Unsupported method"),
    }
}

/// `POST /{app-id}/subscriptions` with the app token. Before answering, makes Meta's
/// verification request to `callback_url` and succeeds only if the challenge comes
/// back verbatim with 200 (the daemon must answer it while its own POST is open).
async fn app_subscriptions_post(
    shared: &Shared,
    app: &str,
    params: &HashMap<String, String>,
    token: Option<&str>,
) -> HttpResponse {
    if app != shared.config.app_id || !app_token_ok(&shared.config, token) {
        return invalid_token();
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("object") != "page" {
        return graph_error(100, "(#100) The emulator supports object=page only");
    }
    let callback_url = get("callback_url").to_owned();
    let callback_ok = reqwest::Url::parse(&callback_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if !callback_ok {
        return graph_error(100, "(#100) callback_url must be a valid http(s) URL");
    }
    let verify_token = get("verify_token").to_owned();
    if verify_token.is_empty() {
        return graph_error(100, "(#100) verify_token is required");
    }
    let fields = field_list(get("fields"));
    if fields.is_empty() || !fields.iter().all(|f| is_field_name(f)) {
        return graph_error(100, "(#100) fields must list one or more Page fields");
    }
    let include_values = matches!(get("include_values"), "true" | "1");

    // Meta's verification request, made while the daemon's POST is still open.
    let challenge = rand::random_range(1_000_000_000u64..10_000_000_000u64).to_string();
    let answer = match shared
        .client
        .get(&callback_url)
        .query(&[("hub.mode", "subscribe"), ("hub.verify_token", verify_token.as_str()), ("hub.challenge", &challenge)])
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            Ok((status, response.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e.without_url().to_string()),
    };
    let verified = matches!(&answer, Ok((200, body)) if *body == challenge);
    tracing::info!(verified, callback_url = %callback_url, "emulator: app subscription verification");
    let mut world = shared.lock();
    world.attempts.push(SubscriptionAttempt {
        callback_url: callback_url.clone(),
        fields: fields.clone(),
        verified,
        answer,
    });
    if verified {
        world.app_subscription = Some(AppSubscription { callback_url, fields, include_values });
        HttpResponse::Ok().json(json!({ "success": true }))
    } else {
        graph_error(
            2200,
            "(#2200) callback verification failed: the URL couldn't be validated. Response does not match \
             challenge, expected value and received value differ.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_fields_skip_nested_selections_and_modifiers() {
        assert_eq!(
            top_level_fields("id,name,picture{url,height},feed.limit(2),location"),
            vec!["id", "name", "picture", "feed", "location"]
        );
        assert_eq!(top_level_fields(""), Vec::<String>::new());
        assert_eq!(top_level_fields(" id , name "), vec!["id", "name"]);
    }

    #[test]
    fn meta_wire_escapes_non_ascii_and_slashes_but_keeps_the_json() {
        let plain = json_string("Café Lumière / Bakery 🚲");
        let wire = meta_wire(&plain);
        assert_eq!(wire, r#""Caf\u00e9 Lumi\u00e8re \/ Bakery \ud83d\udeb2""#);
        assert_eq!(serde_json::from_str::<String>(&wire).unwrap(), "Café Lumière / Bakery 🚲");
        let tricky = json_string(r"a\/b");
        assert_eq!(serde_json::from_str::<String>(&meta_wire(&tricky)).unwrap(), r"a\/b");
    }

    fn test_config() -> EmulatorConfig {
        EmulatorConfig {
            url: "http://127.0.0.1:1".into(),
            graph_version: "v25.0".into(),
            app_id: "1".into(),
            app_secret: Secret::new("s"),
            facebook_redirect_uri: String::new(),
            webhook_address: "http://127.0.0.1:2/facebook/webhook".into(),
            shopify_api_key: String::new(),
            shopify_api_secret: Secret::new("t"),
            shopify_redirect_uri: String::new(),
            start_url: String::new(),
            dashboard_url: String::new(),
            bot_url: String::new(),
        }
    }

    fn test_world(config: &EmulatorConfig) -> World {
        World {
            pages: demo_pages(&config.url),
            tokens: HashMap::new(),
            dialog_codes: HashMap::new(),
            shop_codes: HashMap::new(),
            installed: HashMap::new(),
            app_subscription: None,
            attempts: Vec::new(),
            activity: VecDeque::new(),
            next_activity: 1,
            issued: Vec::new(),
        }
    }

    #[test]
    fn the_delivery_is_meta_shaped_and_filtered_by_both_subscription_levels() {
        let config = test_config();
        let mut world = test_world(&config);
        let change = vec![("name".to_owned(), "Café".to_owned()), ("category".to_owned(), "Bakery".to_owned())];
        assert!(matches!(plan_delivery(&world, &config, "100000000000001", change.clone()), Plan::Nothing(..)));

        world.installed.insert("100000000000001".into(), vec!["name".into(), "category".into()]);
        world.app_subscription = Some(AppSubscription {
            callback_url: "http://127.0.0.1:3/facebook/webhook".into(),
            fields: vec!["name".into()],
            include_values: true,
        });
        let Plan::Deliver { callback_url, body, .. } = plan_delivery(&world, &config, "100000000000001", change) else {
            panic!("expected a delivery");
        };
        assert_eq!(callback_url, "http://127.0.0.1:3/facebook/webhook");
        assert!(body.starts_with(r#"{"object":"page","entry":[{"id":"100000000000001","time":"#), "{body}");
        assert!(body.ends_with(r#","changes":[{"field":"name","value":"Caf\u00e9"}]}]}"#), "{body}");
    }

    #[test]
    fn a_customer_message_is_delivered_only_when_messages_is_subscribed_at_both_levels() {
        let config = test_config();
        let mut world = test_world(&config);
        let page = "100000000000001";
        let text = "Café </script> \"hi\"";
        let nothing = |world: &World| match plan_message(world, &config, page, text) {
            Plan::Nothing(changed, why) => {
                assert_eq!(changed, vec!["messages"]);
                why
            }
            Plan::Deliver { body, .. } => panic!("delivered {body}"),
        };
        assert!(nothing(&world).contains("not installed"));
        world.installed.insert(page.into(), vec!["name".into(), "category".into()]);
        assert!(nothing(&world).contains("not installed"));
        world.installed.insert(page.into(), vec!["name".into(), "messages".into()]);
        world.app_subscription = Some(AppSubscription {
            callback_url: "http://127.0.0.1:3/facebook/webhook".into(),
            fields: vec!["name".into()],
            include_values: true,
        });
        assert!(nothing(&world).contains("subscription does not include messages"));

        world.app_subscription = Some(AppSubscription {
            callback_url: "http://127.0.0.1:3/facebook/webhook".into(),
            fields: vec!["name".into(), "messages".into()],
            include_values: true,
        });
        let Plan::Deliver { callback_url, body, .. } = plan_message(&world, &config, page, text) else {
            panic!("expected a delivery");
        };
        assert_eq!(callback_url, "http://127.0.0.1:3/facebook/webhook");
        let prefix = format!(r#"{{"object":"page","entry":[{{"id":"{page}","time":"#);
        assert!(body.starts_with(&prefix), "{body}");
        assert!(body.contains(&format!(r#","messaging":[{{"sender":{{"id":"{DEMO_CUSTOMER_PSID}"}},"#)), "{body}");
        assert!(body.ends_with(r#","text":"Caf\u00e9 <\/script> \"hi\""}}]}]}"#), "{body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        let event = &json["entry"][0]["messaging"][0];
        assert_eq!(event["recipient"]["id"], page);
        assert_eq!(event["message"]["text"], text);
        assert!(event["message"]["mid"].as_str().unwrap().starts_with("m_"));
        assert_eq!(event["timestamp"], json["entry"][0]["time"]);
        assert!(event["timestamp"].as_u64().unwrap() > 1_000_000_000_000, "milliseconds");
    }
}
