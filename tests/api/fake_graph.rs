//! A fake Meta Graph API and Shopify admin on loopback, started by each test.
//!
//! Meta (every path starts with the Graph version, which must be `v25.0`):
//! - `GET /{v}/{page-id}`: the Page's fields, after checking the Page token and the
//!   `appsecret_proof` (HMAC-SHA256 of `token|appsecret_time` under the app secret, at
//!   most five minutes old).
//! - `GET /{v}/oauth/access_token`: a registered, single-use `code` for a short-lived user
//!   token (with `client_id`, `client_secret` and the configured `redirect_uri`), or
//!   `grant_type=fb_exchange_token` for the long-lived user token.
//! - `GET /{v}/me` and `GET /{v}/me/accounts` (cursor paging, a `next` URL that works as
//!   given) with a user token and a valid proof.
//! - `GET`/`POST /{v}/{page-id}/subscribed_apps` with the Page token and a valid proof.
//!   Like Meta, the fake keeps the fields our app has on each Page, and a POST
//!   replaces that set (so a POST that forgets a field removes it). The GET renders the
//!   fields as strings or as `{"name": ...}` objects ([`FieldForm`]).
//! - `GET /{v}/{app-id}/subscriptions` with the app token: the `page` object's
//!   `callback_url`, `fields` and `active`, if any (preset with
//!   [`FakeGraph::preset_app_subscription`], or left by the last verified POST).
//! - `POST /{v}/{app-id}/subscriptions` with the app token: before answering, the fake
//!   makes Meta's verification request to `callback_url` and answers success only if the
//!   challenge came back verbatim; then the callback is replaced and the fields are
//!   added to the ones already there (docs/platform.md, "Webhook subscriptions": a POST amends).
//!
//! Shopify: `POST /{shop}/admin/oauth/access_token` (form or JSON) exchanges a registered,
//! single-use code for a `shpat_` token (or the expiring answer with a refresh token).
//!
//! Every request is recorded ([`Call`]); faults can be queued or made sticky per
//! [`Endpoint`]; Page GETs keep their own log ([`Seen`]) and per-Page faults, as before.
//! Every token and code the fake hands out is a long random string, so tests can grep
//! for them.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Map, Value, json};

use crate::helpers::APP_SECRET;

/// The app id the default configuration uses.
pub const APP_ID: &str = "1234567890";

/// One queued answer that replaces the normal one.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body.
    Status(u16, Value),
    /// A Graph error body with this code (HTTP 400).
    GraphError(i64),
    /// Answer with this status and body, plus these response headers (a rate limit
    /// with `X-Business-Use-Case-Usage`, say).
    WithHeaders(u16, Value, Vec<(String, String)>),
}

impl Fault {
    /// HTTP 500 with Graph's "service temporarily unavailable" (code 2).
    pub fn unavailable() -> Fault {
        Fault::Status(
            500,
            json!({"error": {"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2, "is_transient": true}}),
        )
    }
}

/// The endpoints faults can be injected into.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /oauth/access_token` with a `code`.
    CodeExchange,
    /// `GET /oauth/access_token` with `grant_type=fb_exchange_token`.
    LongLivedExchange,
    /// `GET /me`.
    Me,
    /// `GET /me/accounts`.
    MeAccounts,
    /// `POST /{app-id}/subscriptions`.
    AppSubscriptions,
    /// `GET /{app-id}/subscriptions`.
    AppSubscriptionsGet,
    /// `GET /{page-id}/subscribed_apps` of this Page.
    SubscribedAppsGet(String),
    /// `POST /{page-id}/subscribed_apps` of this Page.
    SubscribedAppsPost(String),
    /// `POST /admin/oauth/access_token` of this shop.
    ShopifyToken(String),
}

/// A Page GET the fake saw (the log the sync tests read).
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
}

/// Any request the fake saw.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// The body's parameters (form or JSON object; JSON arrays joined with commas).
    pub form: HashMap<String, String>,
    /// The token it carried: `access_token` (query or body) or `Authorization: Bearer`.
    pub token: Option<String>,
    /// Whether `appsecret_proof` + `appsecret_time` were present and verified.
    pub proof_ok: bool,
    /// The HTTP status the fake answered.
    pub status: u16,
}

impl Call {
    /// A parameter from the query, else from the body.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).or_else(|| self.form.get(name)).map(String::as_str)
    }

    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// A Page as `/me/accounts` lists it.
#[derive(Debug, Clone)]
pub struct FbPage {
    pub id: String,
    pub name: String,
    pub category: String,
    pub token: String,
}

/// A Facebook user the fake knows.
#[derive(Debug, Clone)]
pub struct FbUser {
    pub id: String,
    pub name: String,
    /// The long-lived user token `fb_exchange_token` answers.
    pub long_token: String,
    pub pages: Vec<FbPage>,
}

/// One `POST /{app-id}/subscriptions` and what came of Meta's verification request.
#[derive(Debug, Clone)]
pub struct AppSubscriptionAttempt {
    pub params: HashMap<String, String>,
    /// The callback answered 200 with exactly the challenge.
    pub verified: bool,
    /// What the callback answered (status, body), or the transport error.
    pub answer: Result<(u16, String), String>,
}

/// How a GET renders a list of webhook fields: Meta has answered both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldForm {
    /// `["messages", "name"]`.
    #[default]
    Strings,
    /// `[{"name": "messages", "version": "v25.0"}]`.
    Objects,
}

impl FieldForm {
    fn render(self, fields: &[String]) -> Value {
        match self {
            FieldForm::Strings => json!(fields),
            FieldForm::Objects => fields.iter().map(|f| json!({"name": f, "version": "v25.0"})).collect(),
        }
    }
}

/// The app's `page` object subscription as Meta keeps it (one callback per object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeAppSubscription {
    pub callback_url: String,
    pub fields: Vec<String>,
    pub active: bool,
}

/// What the fake checks client credentials and redirect URIs against.
#[derive(Debug, Clone)]
struct Config {
    app_id: String,
    app_secret: String,
    redirect_uri: String,
    shopify_key: String,
    shopify_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            app_id: APP_ID.to_owned(),
            app_secret: APP_SECRET.to_owned(),
            redirect_uri: String::new(),
            shopify_key: String::new(),
            shopify_secret: String::new(),
        }
    }
}

struct PageRecord {
    /// Every Page token that reads the Page (one per user who listed it).
    tokens: Vec<String>,
    fields: Value,
}

#[derive(Default)]
struct State {
    config: Config,
    pages: HashMap<String, PageRecord>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Faults answered to every request for the Page until cleared.
    sticky: HashMap<String, Fault>,
    latency: Duration,
    seen: Vec<Seen>,
    calls: Vec<Call>,
    endpoint_faults: HashMap<Endpoint, VecDeque<Fault>>,
    endpoint_sticky: HashMap<Endpoint, Fault>,
    users: HashMap<String, FbUser>,
    /// Dialog code -> Facebook user id; removed when used.
    fb_codes: HashMap<String, String>,
    /// Short-lived user token -> Facebook user id.
    short_tokens: HashMap<String, String>,
    /// Page id -> fields our app is subscribed to on that Page.
    installed: HashMap<String, Vec<String>>,
    /// `/me/accounts` entries per answer.
    page_size: usize,
    app_attempts: Vec<AppSubscriptionAttempt>,
    /// The app's `page` subscription, as `GET /{app-id}/subscriptions` shows it.
    app_subscription: Option<FakeAppSubscription>,
    /// How `GET /{page-id}/subscribed_apps` renders the fields (strings by default).
    page_field_form: FieldForm,
    /// How `GET /{app-id}/subscriptions` renders the fields.
    app_field_form: FieldForm,
    /// Shopify code -> shop; removed when used.
    shop_codes: HashMap<String, String>,
    shopify_expiring: bool,
    /// Every token and code handed out (for greps).
    issued: Vec<String>,
    /// Page tokens `/debug_token` calls invalid (while Page GETs still accept them).
    revoked: Vec<String>,
    /// `X-App-Usage` sent with every Page GET answer.
    usage_header: Option<String>,
}

#[derive(Clone)]
pub struct FakeGraph {
    state: Arc<Mutex<State>>,
    pub url: String,
}

/// A long random string with `prefix` (hex of 32 random bytes).
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl FakeGraph {
    pub fn start() -> FakeGraph {
        pagesync::clients::http::install_crypto_provider();
        let state =
            Arc::new(Mutex::new(State { page_size: 2, app_field_form: FieldForm::Objects, ..State::default() }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake graph");
        let port = listener.local_addr().expect("fake graph address").port();
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("fake graph's client");
        let shared = web::Data::new(Shared { state: state.clone(), client, url: url.clone() });
        let server = HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(handle)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen fake graph")
            .run();
        // Runs until the test's actix System ends.
        actix_web::rt::spawn(server);
        FakeGraph { state, url }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the app under test is configured with (its redirect URI changes per start).
    pub fn configure(
        &self,
        app_id: &str,
        app_secret: &str,
        redirect_uri: &str,
        shopify_key: &str,
        shopify_secret: &str,
    ) {
        self.lock().config = Config {
            app_id: app_id.to_owned(),
            app_secret: app_secret.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            shopify_key: shopify_key.to_owned(),
            shopify_secret: shopify_secret.to_owned(),
        };
    }

    /// A Page Graph knows, with a token that reads it.
    pub fn add_page(&self, id: &str, token: &str, name: &str) {
        self.add_page_with(id, token, name, "Home Decor");
    }

    fn add_page_with(&self, id: &str, token: &str, name: &str, category: &str) {
        let mut state = self.lock();
        let record =
            state.pages.entry(id.to_owned()).or_insert_with(|| PageRecord { tokens: Vec::new(), fields: Value::Null });
        record.tokens.push(token.to_owned());
        record.fields = json!({ "id": id, "name": name, "category": category, "fan_count": 12 });
    }

    /// Makes `/debug_token` call `token` invalid; Page GETs still accept it, so only
    /// a token check can notice.
    pub fn revoke_token(&self, token: &str) {
        self.lock().revoked.push(token.to_owned());
    }

    /// Sends this `X-App-Usage` with Page answers (`None`: no header).
    pub fn set_usage_header(&self, value: Option<&str>) {
        self.lock().usage_header = value.map(str::to_owned);
    }

    pub fn set_name(&self, id: &str, name: &str) {
        if let Some(record) = self.lock().pages.get_mut(id) {
            record.fields["name"] = json!(name);
        }
    }

    pub fn push_fault(&self, id: &str, fault: Fault) {
        self.lock().faults.entry(id.to_owned()).or_default().push_back(fault);
    }

    pub fn set_sticky_fault(&self, id: &str, fault: Option<Fault>) {
        let mut state = self.lock();
        match fault {
            Some(f) => state.sticky.insert(id.to_owned(), f),
            None => state.sticky.remove(id),
        };
    }

    /// Queues `fault` as the next answer of `endpoint`.
    pub fn push_endpoint_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.lock().endpoint_faults.entry(endpoint).or_default().push_back(fault);
    }

    /// Answers `fault` to every request of `endpoint` until cleared with `None`.
    pub fn set_endpoint_sticky(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut state = self.lock();
        match fault {
            Some(f) => state.endpoint_sticky.insert(endpoint, f),
            None => state.endpoint_sticky.remove(&endpoint),
        };
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// GETs of this Page so far.
    pub fn gets(&self, id: &str) -> usize {
        self.lock().seen.iter().filter(|s| s.path.ends_with(&format!("/{id}"))).count()
    }

    /// Page GETs so far.
    pub fn total_gets(&self) -> usize {
        self.lock().seen.len()
    }

    /// Page GETs so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Requests with this method and path so far.
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.lock().calls.iter().filter(|c| c.is(method, path)).cloned().collect()
    }

    // ----- Facebook users -------------------------------------------------------

    /// A Facebook user with these Pages (`(id, name)`), each with a fresh Page token;
    /// the Pages are readable through `GET /{page-id}` with it.
    pub fn register_user(&self, pages: &[(&str, &str)]) -> FbUser {
        let id = format!("{}", 10_000_000_000_000u64 + rand::random_range(0..1_000_000_000_000u64));
        let user = FbUser {
            name: format!("Merchant {id}"),
            long_token: random_token("EAAGlong"),
            pages: pages
                .iter()
                .map(|(page, name)| FbPage {
                    id: (*page).to_owned(),
                    name: (*name).to_owned(),
                    category: "Home Decor".to_owned(),
                    token: random_token("EAAGpage"),
                })
                .collect(),
            id,
        };
        for page in &user.pages {
            self.add_page_with(&page.id, &page.token, &page.name, &page.category);
        }
        let mut state = self.lock();
        state.issued.push(user.long_token.clone());
        state.issued.extend(user.pages.iter().map(|p| p.token.clone()));
        state.users.insert(user.id.clone(), user.clone());
        user
    }

    /// A fresh code the Login dialog hands `user` (single use).
    pub fn new_code(&self, user: &FbUser) -> String {
        let code = random_token("AQfbcode");
        let mut state = self.lock();
        state.fb_codes.insert(code.clone(), user.id.clone());
        state.issued.push(code.clone());
        code
    }

    /// `/me/accounts` answers hold at most this many Pages.
    pub fn set_page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// Our app is already installed on `page` with `fields`.
    pub fn preinstall(&self, page: &str, fields: &[&str]) {
        self.lock().installed.insert(page.to_owned(), fields.iter().map(|f| (*f).to_owned()).collect());
    }

    /// The fields our app is installed with on `page`, if installed.
    pub fn installed_fields(&self, page: &str) -> Option<Vec<String>> {
        self.lock().installed.get(page).cloned()
    }

    /// How `GET /{page-id}/subscribed_apps` renders the fields.
    pub fn set_page_field_form(&self, form: FieldForm) {
        self.lock().page_field_form = form;
    }

    /// How `GET /{app-id}/subscriptions` renders the fields.
    pub fn set_app_field_form(&self, form: FieldForm) {
        self.lock().app_field_form = form;
    }

    /// The app's `page` object is already subscribed with this callback and fields
    /// (set up by someone else, the bot say).
    pub fn preset_app_subscription(&self, callback_url: &str, fields: &[&str]) {
        self.lock().app_subscription = Some(FakeAppSubscription {
            callback_url: callback_url.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            active: true,
        });
    }

    /// The app's `page` subscription as Meta now keeps it.
    pub fn app_subscription(&self) -> Option<FakeAppSubscription> {
        self.lock().app_subscription.clone()
    }

    /// Every `POST /{app-id}/subscriptions` so far.
    pub fn app_subscription_attempts(&self) -> Vec<AppSubscriptionAttempt> {
        self.lock().app_attempts.clone()
    }

    // ----- Shopify --------------------------------------------------------------

    /// A fresh code Shopify hands back for `shop` (single use).
    pub fn shopify_code(&self, shop: &str) -> String {
        let code = hex::encode(rand::random::<[u8; 16]>());
        let mut state = self.lock();
        state.shop_codes.insert(code.clone(), shop.to_owned());
        state.issued.push(code.clone());
        code
    }

    /// From now on Shopify answers the expiring offline token (with a refresh token).
    pub fn set_shopify_expiring(&self, expiring: bool) {
        self.lock().shopify_expiring = expiring;
    }

    /// Every token and code the fake handed out so far.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.lock().issued.clone()
    }
}

/// What the one handler reaches.
struct Shared {
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    url: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn graph_error(status: u16, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "error": { "message": message, "type": "OAuthException", "code": code, "fbtrace_id": "FAKE" } }))
}

fn fault_response(fault: Fault) -> HttpResponse {
    match fault {
        Fault::Status(status, body) => {
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)).json(body)
        }
        Fault::GraphError(code) => graph_error(400, code, "fault injected by the test"),
        Fault::WithHeaders(status, body, headers) => {
            let mut answer =
                HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
            for (name, value) in headers {
                answer.insert_header((name, value));
            }
            answer.json(body)
        }
    }
}

fn parse_pairs(text: &str) -> HashMap<String, String> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(|q| q.into_inner().into_iter().collect())
        .unwrap_or_default()
}

/// The body's parameters: a JSON object (arrays joined with commas) or a form.
fn body_params(req: &HttpRequest, body: &[u8]) -> HashMap<String, String> {
    if body.is_empty() {
        return HashMap::new();
    }
    let json_body = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json_body {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else { return HashMap::new() };
        return map
            .into_iter()
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
            .collect();
    }
    parse_pairs(&String::from_utf8_lossy(body))
}

/// A list parameter as Graph takes it: `a,b` or a JSON array `["a","b"]`.
pub fn field_list(raw: &str) -> Vec<String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw) {
        return items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
    }
    raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// Whether `params` carry an `appsecret_proof` of `token` under `secret` with an
/// `appsecret_time` at most five minutes from now.
pub fn proof_valid(params: &HashMap<String, String>, token: &str, secret: &str) -> bool {
    let (Some(proof), Some(time)) = (params.get("appsecret_proof"), params.get("appsecret_time")) else {
        return false;
    };
    let Ok(seconds) = time.parse::<u64>() else { return false };
    if seconds.abs_diff(unix_now()) > 300 {
        return false;
    }
    let expected = hex::encode(pagesync::verify::hmac_sha256(secret.as_bytes(), format!("{token}|{time}").as_bytes()));
    pagesync::verify::constant_time_eq(proof, &expected)
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let query = parse_pairs(req.query_string());
    let form = body_params(&req, &body);
    let mut params = form.clone();
    params.extend(query.clone());
    let token = params.get("access_token").cloned().or_else(|| {
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("OAuth ")))
            .map(str::to_owned)
    });
    let app_secret = shared.lock().config.app_secret.clone();
    let proof_ok = token.as_deref().is_some_and(|t| proof_valid(&params, t, &app_secret));
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    let response = match (method.as_str(), segments.as_slice()) {
        ("POST", [shop, "admin", "oauth", "access_token"]) => shopify_token(&shared, shop, &params),
        (_, [version, ..]) if *version != "v25.0" => graph_error(400, 2635, "unsupported version"),
        ("GET", [_, "oauth", "access_token"]) => oauth(&shared, &params),
        ("GET", [_, "debug_token"]) => debug_token(&shared, &params, token.as_deref()),
        ("GET", [_, "me"]) => me(&shared, token.as_deref(), proof_ok),
        ("GET", [_, "me", "accounts"]) => accounts(&shared, &req, &query, token.as_deref(), proof_ok),
        ("GET", [_, page, "subscribed_apps"]) => subscribed_apps_get(&shared, page, token.as_deref(), proof_ok),
        ("POST", [_, page, "subscribed_apps"]) => {
            subscribed_apps_post(&shared, page, &params, token.as_deref(), proof_ok)
        }
        ("GET", [_, app, "subscriptions"]) => app_subscriptions_get(&shared, app, token.as_deref()),
        ("POST", [_, app, "subscriptions"]) => app_subscriptions_post(&shared, app, &params, token.as_deref()).await,
        ("GET", [_, page]) => return page_get(&req, &shared, page, &query).await,
        _ => graph_error(404, 803, "Unknown path components"),
    };
    shared.lock().calls.push(Call { method, path, query, form, token, proof_ok, status: response.status().as_u16() });
    response
}

fn take_fault(state: &mut State, endpoint: &Endpoint) -> Option<Fault> {
    state
        .endpoint_faults
        .get_mut(endpoint)
        .and_then(VecDeque::pop_front)
        .or_else(|| state.endpoint_sticky.get(endpoint).cloned())
}

fn oauth(shared: &Shared, params: &HashMap<String, String>) -> HttpResponse {
    let mut state = shared.lock();
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") == "fb_exchange_token" {
        if let Some(fault) = take_fault(&mut state, &Endpoint::LongLivedExchange) {
            return fault_response(fault);
        }
        if get("client_id") != state.config.app_id || get("client_secret") != state.config.app_secret {
            return graph_error(400, 1, "Error validating client secret.");
        }
        let Some(user) = state.short_tokens.get(get("fb_exchange_token")).cloned() else {
            return graph_error(400, 190, "Invalid OAuth access token.");
        };
        let long = state.users[&user].long_token.clone();
        return HttpResponse::Ok().json(json!({"access_token": long, "token_type": "bearer", "expires_in": 5_183_944}));
    }
    if let Some(fault) = take_fault(&mut state, &Endpoint::CodeExchange) {
        return fault_response(fault);
    }
    if get("client_id") != state.config.app_id || get("client_secret") != state.config.app_secret {
        return graph_error(400, 1, "Error validating client secret.");
    }
    let code = get("code").to_owned();
    let Some(user) = state.fb_codes.remove(&code) else {
        return HttpResponse::BadRequest().json(json!({"error": {
            "message": "This authorization code has been used.",
            "type": "OAuthException", "code": 100, "error_subcode": 36009, "fbtrace_id": "FAKE"}}));
    };
    if get("redirect_uri") != state.config.redirect_uri {
        return HttpResponse::BadRequest().json(json!({"error": {
            "message": "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
            "type": "OAuthException", "code": 100, "error_subcode": 36008, "fbtrace_id": "FAKE"}}));
    }
    let short = random_token("EAAGshort");
    state.short_tokens.insert(short.clone(), user);
    state.issued.push(short.clone());
    HttpResponse::Ok().json(json!({"access_token": short, "token_type": "bearer", "expires_in": 3600}))
}

/// The user a (short- or long-lived) user token belongs to.
fn user_of(state: &State, token: Option<&str>) -> Option<FbUser> {
    let token = token?;
    if let Some(id) = state.short_tokens.get(token) {
        return state.users.get(id).cloned();
    }
    state.users.values().find(|u| u.long_token == token).cloned()
}

fn me(shared: &Shared, token: Option<&str>, proof_ok: bool) -> HttpResponse {
    let mut state = shared.lock();
    if let Some(fault) = take_fault(&mut state, &Endpoint::Me) {
        return fault_response(fault);
    }
    let Some(user) = user_of(&state, token) else {
        return graph_error(400, 190, "Invalid OAuth access token.");
    };
    if !proof_ok {
        return graph_error(400, 100, "API calls from the server require an appsecret_proof argument");
    }
    HttpResponse::Ok().json(json!({"id": user.id, "name": user.name}))
}

fn accounts(
    shared: &Shared,
    req: &HttpRequest,
    query: &HashMap<String, String>,
    token: Option<&str>,
    proof_ok: bool,
) -> HttpResponse {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut state = shared.lock();
    if let Some(fault) = take_fault(&mut state, &Endpoint::MeAccounts) {
        return fault_response(fault);
    }
    let Some(user) = user_of(&state, token) else {
        return graph_error(400, 190, "Invalid OAuth access token.");
    };
    if !proof_ok {
        return graph_error(400, 100, "API calls from the server require an appsecret_proof argument");
    }
    let start = match query.get("after") {
        None => 0,
        Some(cursor) => match b64.decode(cursor).ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(text) => match text.strip_prefix("index:").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => return graph_error(400, 100, "Invalid cursor"),
            },
            None => return graph_error(400, 100, "Invalid cursor"),
        },
    };
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100);
    let size = limit.min(state.page_size);
    let end = (start + size).min(user.pages.len());
    let data: Vec<Value> = user.pages[start.min(end)..end]
        .iter()
        .map(|p| {
            json!({
                "access_token": p.token,
                "category": p.category,
                "category_list": [{"id": "2201", "name": p.category}],
                "name": p.name,
                "id": p.id,
                "tasks": ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"],
            })
        })
        .collect();
    let mut paging = Map::new();
    paging.insert(
        "cursors".into(),
        json!({"before": b64.encode(format!("index:{start}")), "after": b64.encode(format!("index:{end}"))}),
    );
    if end < user.pages.len() {
        // Like Graph: the request's own parameters plus the cursor, ready to follow.
        let mut pairs: Vec<(String, String)> = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "after" && k != "before")
            .collect();
        pairs.push(("after".into(), b64.encode(format!("index:{end}"))));
        let encoded: Vec<String> =
            pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
        paging.insert("next".into(), json!(format!("{}{}?{}", shared.url, req.path(), encoded.join("&"))));
    }
    HttpResponse::Ok().json(json!({"data": data, "paging": paging}))
}

/// `application/x-www-form-urlencoded` encoding of one value, with `%20` for spaces.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"*-._".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks a Page-token call; `Some` is the refusal to answer.
/// `GET /debug_token` with the app token: what Meta knows about `input_token`.
fn debug_token(shared: &Shared, params: &HashMap<String, String>, token: Option<&str>) -> HttpResponse {
    let state = shared.lock();
    let app_token = format!("{}|{}", state.config.app_id, state.config.app_secret);
    if token != Some(app_token.as_str()) {
        return graph_error(400, 190, "Invalid OAuth access token");
    }
    let Some(input) = params.get("input_token") else {
        return graph_error(400, 100, "The parameter input_token is required");
    };
    let page = state.pages.iter().find(|(_, record)| record.tokens.iter().any(|t| t == input)).map(|(id, _)| id);
    let valid = page.is_some() && !state.revoked.contains(input);
    let mut data = json!({"app_id": state.config.app_id, "type": "PAGE", "is_valid": valid, "expires_at": 0});
    if let Some(page) = page {
        data["profile_id"] = json!(page);
    }
    HttpResponse::Ok().json(json!({ "data": data }))
}

fn page_token_refusal(state: &State, page: &str, token: Option<&str>, proof_ok: bool) -> Option<HttpResponse> {
    let Some(record) = state.pages.get(page) else {
        return Some(graph_error(400, 100, "Object does not exist"));
    };
    if !token.is_some_and(|t| record.tokens.iter().any(|known| known == t)) {
        return Some(graph_error(400, 190, "Invalid OAuth access token"));
    }
    if !proof_ok {
        return Some(graph_error(400, 100, "Invalid appsecret_proof provided in the API argument"));
    }
    None
}

fn subscribed_apps_get(shared: &Shared, page: &str, token: Option<&str>, proof_ok: bool) -> HttpResponse {
    let mut state = shared.lock();
    if let Some(fault) = take_fault(&mut state, &Endpoint::SubscribedAppsGet(page.to_owned())) {
        return fault_response(fault);
    }
    if let Some(answer) = page_token_refusal(&state, page, token, proof_ok) {
        return answer;
    }
    let data = match state.installed.get(page) {
        Some(fields) => json!([{
            "category": "Business", "link": "https://pagesync.example/", "name": "pagesync",
            "id": state.config.app_id, "subscribed_fields": state.page_field_form.render(fields),
        }]),
        None => json!([]),
    };
    HttpResponse::Ok().json(json!({ "data": data }))
}

fn subscribed_apps_post(
    shared: &Shared,
    page: &str,
    params: &HashMap<String, String>,
    token: Option<&str>,
    proof_ok: bool,
) -> HttpResponse {
    let mut state = shared.lock();
    if let Some(fault) = take_fault(&mut state, &Endpoint::SubscribedAppsPost(page.to_owned())) {
        return fault_response(fault);
    }
    if let Some(answer) = page_token_refusal(&state, page, token, proof_ok) {
        return answer;
    }
    let Some(fields) = params.get("subscribed_fields").map(|f| field_list(f)).filter(|f| !f.is_empty()) else {
        return graph_error(400, 100, "(#100) The parameter subscribed_fields is required");
    };
    state.installed.insert(page.to_owned(), fields);
    HttpResponse::Ok().json(json!({"success": true}))
}

fn app_subscriptions_get(shared: &Shared, app: &str, token: Option<&str>) -> HttpResponse {
    let mut state = shared.lock();
    if let Some(fault) = take_fault(&mut state, &Endpoint::AppSubscriptionsGet) {
        return fault_response(fault);
    }
    let app_token = format!("{}|{}", state.config.app_id, state.config.app_secret);
    if app != state.config.app_id || token != Some(app_token.as_str()) {
        return graph_error(400, 190, "Invalid OAuth access token.");
    }
    let data: Vec<Value> = state
        .app_subscription
        .iter()
        .map(|s| {
            json!({
                "object": "page",
                "callback_url": s.callback_url,
                "fields": state.app_field_form.render(&s.fields),
                "active": s.active,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "data": data }))
}

async fn app_subscriptions_post(
    shared: &Shared,
    app: &str,
    params: &HashMap<String, String>,
    token: Option<&str>,
) -> HttpResponse {
    {
        let mut state = shared.lock();
        if let Some(fault) = take_fault(&mut state, &Endpoint::AppSubscriptions) {
            return fault_response(fault);
        }
        let app_token = format!("{}|{}", state.config.app_id, state.config.app_secret);
        if app != state.config.app_id || token != Some(app_token.as_str()) {
            return graph_error(400, 190, "Invalid OAuth access token.");
        }
    }
    let (Some(callback), Some(verify_token)) = (params.get("callback_url"), params.get("verify_token")) else {
        return graph_error(400, 100, "(#100) callback_url and verify_token are required");
    };
    // Meta's verification request, made while the POST is still open.
    let challenge = rand::random_range(1_000_000_000u64..10_000_000_000u64).to_string();
    let answer = shared
        .client
        .get(callback.as_str())
        .query(&[("hub.mode", "subscribe"), ("hub.verify_token", verify_token.as_str()), ("hub.challenge", &challenge)])
        .send()
        .await;
    let answer = match answer {
        Ok(resp) => {
            let status = resp.status().as_u16();
            Ok((status, resp.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e.to_string()),
    };
    let verified = matches!(&answer, Ok((200, body)) if *body == challenge);
    let mut state = shared.lock();
    state.app_attempts.push(AppSubscriptionAttempt { params: params.clone(), verified, answer });
    if verified {
        // One callback per object: the new one replaces the old; fields are added.
        let mut fields = state.app_subscription.take().map(|s| s.fields).unwrap_or_default();
        for field in field_list(params.get("fields").map(String::as_str).unwrap_or("")) {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        state.app_subscription = Some(FakeAppSubscription { callback_url: callback.clone(), fields, active: true });
        HttpResponse::Ok().json(json!({"success": true}))
    } else {
        graph_error(400, 2200, "(#2200) callback verification failed: the challenge did not match")
    }
}

async fn page_get(req: &HttpRequest, shared: &Shared, id: &str, query: &HashMap<String, String>) -> HttpResponse {
    let token = query.get("access_token").cloned();
    let (latency, answer, proof_ok) = {
        let mut st = shared.lock();
        st.seen.push(Seen { path: req.path().to_owned(), query: query.clone() });
        let app_secret = st.config.app_secret.clone();
        let proof_ok = token.as_deref().is_some_and(|t| proof_valid(query, t, &app_secret));
        let fault = st.faults.get_mut(id).and_then(|q| q.pop_front()).or_else(|| st.sticky.get(id).cloned());
        let answer = if let Some(fault) = fault {
            fault_response(fault)
        } else {
            match st.pages.get(id) {
                None => graph_error(400, 100, "Object does not exist"),
                Some(record) => {
                    if !token.as_ref().is_some_and(|t| record.tokens.contains(t)) {
                        graph_error(400, 190, "Invalid OAuth access token")
                    } else if !proof_ok {
                        graph_error(400, 100, "Invalid appsecret_proof provided in the API argument")
                    } else {
                        let mut ok = HttpResponse::Ok();
                        if let Some(usage) = &st.usage_header {
                            ok.insert_header(("X-App-Usage", usage.clone()));
                        }
                        ok.json(&record.fields)
                    }
                }
            }
        };
        (st.latency, answer, proof_ok)
    };
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    shared.lock().calls.push(Call {
        method: "GET".into(),
        path: req.path().to_owned(),
        query: query.clone(),
        form: HashMap::new(),
        token,
        proof_ok,
        status: answer.status().as_u16(),
    });
    answer
}

fn shopify_token(shared: &Shared, shop: &str, params: &HashMap<String, String>) -> HttpResponse {
    let mut state = shared.lock();
    if let Some(fault) = take_fault(&mut state, &Endpoint::ShopifyToken(shop.to_owned())) {
        return fault_response(fault);
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != state.config.shopify_key || get("client_secret") != state.config.shopify_secret {
        return HttpResponse::BadRequest()
            .json(json!({"error": "invalid_client", "error_description": "Client authentication failed"}));
    }
    let code = get("code").to_owned();
    if state.shop_codes.get(&code).map(String::as_str) != Some(shop) {
        return HttpResponse::BadRequest().json(json!({
            "error": "invalid_request",
            "error_description": "The authorization code was not found or was already used"}));
    }
    state.shop_codes.remove(&code);
    let token = random_token("shpat_");
    state.issued.push(token.clone());
    if state.shopify_expiring {
        let refresh = random_token("shprt_");
        state.issued.push(refresh.clone());
        HttpResponse::Ok().json(json!({
            "access_token": token, "scope": "read_products", "expires_in": 3600,
            "refresh_token": refresh, "refresh_token_expires_in": 7_776_000}))
    } else {
        HttpResponse::Ok().json(json!({"access_token": token, "scope": "read_products"}))
    }
}
