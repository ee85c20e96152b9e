//! The Meta Graph API client.
//!
//! One `reqwest::Client` (rustls, connection pool) for every call. Each call made with
//! a user or Page token carries `appsecret_proof` and `appsecret_time`. Failures are
//! classified by `error.code` / `error_subcode` (PLATFORM §3), never by message text;
//! the HTTP status is only a fallback when the body holds no Graph error. Transient
//! failures (5xx, timeouts, codes 1/2, `is_transient`) are retried here with
//! exponential back-off and full jitter; everything else goes back to the caller at
//! once, already classified.
//!
//! URLs with tokens in them never reach a log or an error message: reqwest errors are
//! stripped of their URL before they are turned into text.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use pagesync_actors::poller::UsageGauge;
use pagesync_actors::{
    AppSubscriptionInfo, FacebookUserId, FetchError, LimitScope, PageData, PageId, PageSource, Secret, SubscriptionApi,
    TokenCheck,
};
use reqwest::Method;
use serde::Deserialize;

use crate::config::{BotSettings, FacebookSettings};
use crate::metrics::Metrics;
use crate::verify::{appsecret_proof, hmac_sha256};

/// Retry policy for transient failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Pause before the first retry (doubles each time, full jitter).
    pub base: Duration,
    /// Longest pause between two attempts.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, base: Duration::from_millis(500), cap: Duration::from_secs(8) }
    }
}

/// Longest rate-limit pause pagesync accepts from Meta's
/// `estimated_time_to_regain_access`. Meta's real estimates are minutes to a few hours
/// (business use case limits reset within a day); anything longer is a broken or
/// hostile header, and obeying it would park a Page (or, for an app-level limit, every
/// Page) for good. A day keeps the daily re-sync meaningful, and it keeps every
/// `Instant::now() + pause` the actors compute far from overflowing.
pub const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// Largest Graph answer we read; a Page's metadata is a few KiB.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A Graph API client; cheap to clone.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    http: reqwest::Client,
    /// `FACEBOOK_GRAPH_URL`: `paging.next` links must stay on its origin.
    graph_url: String,
    /// `{FACEBOOK_GRAPH_URL}/{FACEBOOK_GRAPH_VERSION}`.
    base: String,
    app_id: String,
    app_secret: Secret,
    /// Must equal the dialog's `redirect_uri` byte for byte in the code exchange.
    redirect_uri: String,
    /// The app subscription's `callback_url`.
    webhook_address: String,
    verify_token: Secret,
    /// W: `FACEBOOK_SUBSCRIBED_FIELDS` ∪ `PAGESYNC_BOT_FIELDS`, subscribed at both
    /// levels next to whatever is already there.
    wanted_fields: Vec<String>,
    /// `PAGESYNC_FORWARD_URL` is set: another callback URL may be replaced, because
    /// every delivery is relayed to the bot.
    may_take_over: bool,
    page_fields: String,
    retry: RetryPolicy,
    /// Highest usage percentage of the last answer that carried usage headers.
    usage: UsageGauge,
    metrics: Metrics,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient").field("base", &self.inner.base).finish_non_exhaustive()
    }
}

impl GraphClient {
    pub fn new(settings: &FacebookSettings, http: reqwest::Client, retry: RetryPolicy, metrics: Metrics) -> Self {
        GraphClient {
            inner: Arc::new(Inner {
                http,
                graph_url: settings.graph_url.clone(),
                base: format!("{}/{}", settings.graph_url, settings.graph_version),
                app_id: settings.app_id.clone(),
                app_secret: settings.app_secret.clone(),
                redirect_uri: settings.redirect_uri.clone(),
                webhook_address: settings.webhook_address.clone(),
                verify_token: settings.verify_token.clone(),
                wanted_fields: settings.subscribed_fields.clone(),
                may_take_over: false,
                page_fields: settings.page_fields.clone(),
                retry,
                usage: UsageGauge::default(),
                metrics,
            }),
        }
    }

    /// The same client, subscribing the bot's fields too (`PAGESYNC_BOT_FIELDS`) and
    /// taking over another app callback only when `PAGESYNC_FORWARD_URL` is set.
    /// Call before cloning the client: clones made earlier keep the old settings.
    pub fn with_bot(self, bot: &BotSettings) -> GraphClient {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.wanted_fields = pagesync_actors::subscription::union(&inner.wanted_fields, &bot.fields);
        inner.may_take_over = bot.forward_url.is_some();
        GraphClient { inner: Arc::new(inner) }
    }

    /// The usage gauge this client updates from Meta's usage headers.
    pub fn usage(&self) -> UsageGauge {
        self.inner.usage.clone()
    }

    /// `GET /{page-id}?fields=...` with the Page token.
    pub async fn page(&self, page: &PageId, token: &Secret) -> Result<PageData, FetchError> {
        let url = format!("{}/{}", self.inner.base, page);
        let query = vec![("fields".to_owned(), self.inner.page_fields.clone())];
        Ok(self.call("page", Method::GET, &url, query, Some(token), Some(page)).await?.0)
    }

    /// Code from the Login dialog -> short-lived user token (PLATFORM §2.2).
    pub async fn exchange_code(&self, code: &str) -> Result<Secret, FetchError> {
        let url = format!("{}/oauth/access_token", self.inner.base);
        let query = vec![
            ("client_id".to_owned(), self.inner.app_id.clone()),
            ("redirect_uri".to_owned(), self.inner.redirect_uri.clone()),
            ("client_secret".to_owned(), self.inner.app_secret.expose().to_owned()),
            ("code".to_owned(), code.to_owned()),
        ];
        let (body, _) = self.call("oauth_code", Method::GET, &url, query, None, None).await?;
        access_token(&body)
    }

    /// Short-lived -> long-lived user token (PLATFORM §2.3).
    pub async fn long_lived(&self, short: &Secret) -> Result<Secret, FetchError> {
        let url = format!("{}/oauth/access_token", self.inner.base);
        let query = vec![
            ("grant_type".to_owned(), "fb_exchange_token".to_owned()),
            ("client_id".to_owned(), self.inner.app_id.clone()),
            ("client_secret".to_owned(), self.inner.app_secret.expose().to_owned()),
            ("fb_exchange_token".to_owned(), short.expose().to_owned()),
        ];
        let (body, _) = self.call("oauth_long_lived", Method::GET, &url, query, None, None).await?;
        access_token(&body)
    }

    /// `GET /me?fields=id,name` with a user token: who connected.
    pub async fn me(&self, user_token: &Secret) -> Result<FacebookUser, FetchError> {
        let url = format!("{}/me", self.inner.base);
        let query = vec![("fields".to_owned(), "id,name".to_owned())];
        let (body, _) = self.call("me", Method::GET, &url, query, Some(user_token), None).await?;
        let id =
            body.get("id").and_then(|v| v.as_str()).and_then(|s| FacebookUserId::parse(s).ok()).ok_or_else(|| {
                FetchError::Permanent { code: None, detail: "/me answered without a valid id".into() }
            })?;
        let name = body.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        Ok(FacebookUser { id, name })
    }

    /// `GET /debug_token` with the app token (PLATFORM §2.9): is this Page token still
    /// good, for our app and for this Page? `expires_at: 0` means it does not expire.
    pub async fn debug_token(&self, page: &PageId, token: &Secret) -> Result<TokenCheck, FetchError> {
        let i = &self.inner;
        let url = format!("{}/debug_token", i.base);
        let query = vec![
            ("input_token".to_owned(), token.expose().to_owned()),
            ("access_token".to_owned(), format!("{}|{}", i.app_id, i.app_secret.expose())),
        ];
        let (body, _) = self.call("debug_token", Method::GET, &url, query, None, None).await?;
        let data = body
            .get("data")
            .and_then(|d| d.as_object())
            .ok_or_else(|| FetchError::Permanent { code: None, detail: "/debug_token answered without data".into() })?;
        Ok(judge_token(data, &i.app_id, page, crate::clock::unix_now()))
    }

    /// Every Page of `/me/accounts`, following cursor paging (PLATFORM §2.4). A `next`
    /// link that leaves the configured Graph origin is not followed.
    pub async fn accounts(&self, user_token: &Secret) -> Result<Vec<AccountPage>, FetchError> {
        const MAX_PAGES: usize = 100;
        let mut url = format!("{}/me/accounts", self.inner.base);
        let mut query = vec![
            ("fields".to_owned(), "id,name,category,access_token,tasks".to_owned()),
            ("limit".to_owned(), "100".to_owned()),
        ];
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let (body, _) = self.call("me_accounts", Method::GET, &url, query, Some(user_token), None).await?;
            let listed: Accounts = serde_json::from_value(serde_json::Value::Object(body)).map_err(|e| {
                FetchError::Permanent { code: None, detail: format!("unexpected /me/accounts answer: {e}") }
            })?;
            for entry in listed.data {
                match (PageId::parse(&entry.id), entry.access_token) {
                    (Ok(id), Some(token)) => out.push(AccountPage {
                        id,
                        name: entry.name.unwrap_or_default(),
                        category: entry.category.unwrap_or_default(),
                        token: Secret::new(token),
                    }),
                    _ => tracing::warn!("skipping a /me/accounts entry without a valid id or token"),
                }
            }
            let Some(next) = listed.paging.and_then(|p| p.next) else { return Ok(out) };
            let Some((next_url, next_query)) = self.same_origin(&next) else {
                return Err(FetchError::Permanent { code: None, detail: "paging.next leaves the Graph API".into() });
            };
            url = next_url;
            query = next_query;
        }
        Err(FetchError::Permanent { code: None, detail: format!("more than {MAX_PAGES} pages of /me/accounts") })
    }

    /// Splits a `paging.next` URL into its base and query, if it points at the
    /// configured Graph origin. The token and proof in it are replaced by fresh ones.
    fn same_origin(&self, next: &str) -> Option<(String, Vec<(String, String)>)> {
        let parsed = reqwest::Url::parse(next).ok()?;
        let ours = reqwest::Url::parse(&self.inner.graph_url).ok()?;
        if parsed.scheme() != ours.scheme() || parsed.host() != ours.host() || parsed.port() != ours.port() {
            return None;
        }
        let query = parsed
            .query_pairs()
            .filter(|(k, _)| !matches!(k.as_ref(), "access_token" | "appsecret_proof" | "appsecret_time"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut base = parsed;
        base.set_query(None);
        Some((base.to_string(), query))
    }

    /// A Graph call, retried while transient. With `token`, `access_token`,
    /// `appsecret_proof` and `appsecret_time` are added.
    async fn call(
        &self,
        endpoint: &'static str,
        method: Method,
        url: &str,
        query: Vec<(String, String)>,
        token: Option<&Secret>,
        page: Option<&PageId>,
    ) -> Result<(PageData, reqwest::header::HeaderMap), FetchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.inner.http.request(method.clone(), url).query(&query);
            if let Some(token) = token {
                let time = crate::clock::unix_now();
                let proof = appsecret_proof(&self.inner.app_secret, token, time);
                request = request.query(&[
                    ("access_token", token.expose()),
                    ("appsecret_proof", &proof),
                    ("appsecret_time", &time.to_string()),
                ]);
            }
            let started = std::time::Instant::now();
            let result = send(request, page).await;
            self.inner.metrics.graph_request(endpoint, outcome(&result), started.elapsed());
            if let Some(percent) = match &result {
                Ok((_, headers)) => usage_percent(headers),
                Err(_) => None,
            } {
                self.inner.usage.record(percent);
            }
            match result {
                Err(FetchError::Transient { detail }) if attempt < self.inner.retry.attempts => {
                    let pause = backoff(&self.inner.retry, attempt);
                    tracing::debug!(attempt, pause_ms = pause.as_millis() as u64, error = %detail, "Graph call failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }
}

/// Who connected, from `/me`.
#[derive(Debug, Clone)]
pub struct FacebookUser {
    pub id: FacebookUserId,
    pub name: String,
}

/// One Page of `/me/accounts`.
#[derive(Debug, Clone)]
pub struct AccountPage {
    pub id: PageId,
    pub name: String,
    pub category: String,
    pub token: Secret,
}

#[derive(Deserialize)]
struct Accounts {
    #[serde(default)]
    data: Vec<AccountEntry>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct AccountEntry {
    id: String,
    name: Option<String>,
    category: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<String>,
}

fn access_token(body: &PageData) -> Result<Secret, FetchError> {
    body.get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| FetchError::Permanent { code: None, detail: "token answer without access_token".into() })
}

impl PageSource for GraphClient {
    fn fetch_page(&self, page: &PageId, token: &Secret) -> BoxFuture<'static, Result<PageData, FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move { client.page(&page, &token).await })
    }

    fn check_token(&self, page: &PageId, token: &Secret) -> BoxFuture<'static, Result<TokenCheck, FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move { client.debug_token(&page, &token).await })
    }
}

impl SubscriptionApi for GraphClient {
    fn app_fingerprint(&self) -> String {
        // Keyed with the app secret: the verify token is part of it and must not be
        // guessable from what is stored.
        let i = &self.inner;
        let material = format!(
            "{}|{}|{}|{}|{}|{}",
            i.app_id,
            i.webhook_address,
            i.wanted_fields.join(","),
            i.verify_token.expose(),
            i.base,
            i.may_take_over
        );
        hex::encode(hmac_sha256(i.app_secret.expose().as_bytes(), material.as_bytes()))
    }

    fn wanted_fields(&self) -> Vec<String> {
        self.inner.wanted_fields.clone()
    }

    fn callback_url(&self) -> String {
        self.inner.webhook_address.clone()
    }

    fn may_take_over(&self) -> bool {
        self.inner.may_take_over
    }

    fn app_subscription(&self) -> BoxFuture<'static, Result<Option<AppSubscriptionInfo>, FetchError>> {
        let client = self.clone();
        Box::pin(async move {
            let i = &client.inner;
            let url = format!("{}/{}/subscriptions", i.base, i.app_id);
            let query = vec![("access_token".to_owned(), format!("{}|{}", i.app_id, i.app_secret.expose()))];
            let (body, _) = client.call("app_subscriptions_get", Method::GET, &url, query, None, None).await?;
            page_object_subscription(&body)
        })
    }

    fn subscribe_app(&self, fields: Vec<String>) -> BoxFuture<'static, Result<(), FetchError>> {
        let client = self.clone();
        Box::pin(async move {
            let i = &client.inner;
            let url = format!("{}/{}/subscriptions", i.base, i.app_id);
            let query = vec![
                ("object".to_owned(), "page".to_owned()),
                ("callback_url".to_owned(), i.webhook_address.clone()),
                ("fields".to_owned(), fields.join(",")),
                ("verify_token".to_owned(), i.verify_token.expose().to_owned()),
                ("include_values".to_owned(), "true".to_owned()),
                ("access_token".to_owned(), format!("{}|{}", i.app_id, i.app_secret.expose())),
            ];
            let (body, _) = client.call("app_subscriptions", Method::POST, &url, query, None, None).await?;
            success(&body)
        })
    }

    fn page_fields(
        &self,
        page: &PageId,
        token: &Secret,
    ) -> BoxFuture<'static, Result<Option<Vec<String>>, FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move {
            let url = format!("{}/{}/subscribed_apps", client.inner.base, page);
            let (body, _) =
                client.call("subscribed_apps_get", Method::GET, &url, Vec::new(), Some(&token), Some(&page)).await?;
            our_page_fields(&body, &client.inner.app_id)
        })
    }

    fn subscribe_page(
        &self,
        page: &PageId,
        token: &Secret,
        fields: Vec<String>,
    ) -> BoxFuture<'static, Result<(), FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move {
            let url = format!("{}/{}/subscribed_apps", client.inner.base, page);
            let query = vec![("subscribed_fields".to_owned(), fields.join(","))];
            let (body, _) =
                client.call("subscribed_apps_post", Method::POST, &url, query, Some(&token), Some(&page)).await?;
            success(&body)
        })
    }
}

/// An answer that does not say what it should. Never read as "no fields": posting
/// our fields over an unknown set could remove the bot's.
fn malformed(what: &str) -> FetchError {
    FetchError::Permanent { code: None, detail: format!("malformed Graph answer: {what}") }
}

/// A webhook field list as Meta renders it: names as strings or as `{"name": ...}`
/// objects (with a `version`), in either endpoint. Anything else, or a name that is
/// not a plain field name, makes the whole list malformed.
fn field_names(value: Option<&serde_json::Value>, what: &str) -> Result<Vec<String>, FetchError> {
    let items = value.and_then(|v| v.as_array()).ok_or_else(|| malformed(&format!("{what} is not a list")))?;
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let name = match item {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Object(o) => o.get("name").and_then(|n| n.as_str()),
            _ => None,
        };
        // Field names are short snake_case words; anything else is not one, and would
        // be posted back to Meta verbatim.
        let name = name
            .filter(|n| !n.is_empty() && n.len() <= 100)
            .filter(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            .ok_or_else(|| malformed(&format!("{what} holds something that is not a field name")))?;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// `GET /{page-id}/subscribed_apps`: our app's `subscribed_fields`, or `None` when our
/// app is not in `data` (not installed on the Page).
fn our_page_fields(body: &PageData, app_id: &str) -> Result<Option<Vec<String>>, FetchError> {
    let apps = body.get("data").and_then(|d| d.as_array()).ok_or_else(|| malformed("subscribed_apps without data"))?;
    let ours = apps.iter().find(|app| app.get("id").and_then(|v| v.as_str()) == Some(app_id));
    match ours {
        None => Ok(None),
        Some(app) => field_names(app.get("subscribed_fields"), "subscribed_apps' subscribed_fields").map(Some),
    }
}

/// `GET /{app-id}/subscriptions`: the `page` object's entry, if any.
fn page_object_subscription(body: &PageData) -> Result<Option<AppSubscriptionInfo>, FetchError> {
    let objects =
        body.get("data").and_then(|d| d.as_array()).ok_or_else(|| malformed("app subscriptions without data"))?;
    let Some(page) = objects.iter().find(|o| o.get("object").and_then(|v| v.as_str()) == Some("page")) else {
        return Ok(None);
    };
    let callback_url = match page.get("callback_url") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(url)) => Some(url.clone()).filter(|u| !u.is_empty()),
        Some(_) => return Err(malformed("the page subscription's callback_url is not a string")),
    };
    let fields = field_names(page.get("fields"), "the page subscription's fields")?;
    let active = match page.get("active") {
        None => true,
        Some(serde_json::Value::Bool(active)) => *active,
        Some(_) => return Err(malformed("the page subscription's active is not a boolean")),
    };
    Ok(Some(AppSubscriptionInfo { callback_url, fields, active }))
}

/// `{"success": true}` (the docs also show `"true"` as a string: both accepted).
fn success(body: &PageData) -> Result<(), FetchError> {
    match body.get("success") {
        Some(serde_json::Value::Bool(true)) => Ok(()),
        Some(serde_json::Value::String(s)) if s == "true" => Ok(()),
        _ => Err(FetchError::Permanent { code: None, detail: "Graph did not confirm success".into() }),
    }
}

/// The highest percentage in `X-App-Usage` and `X-Business-Use-Case-Usage`
/// (`call_count`, `total_time`, `total_cputime`), when either header is present.
///
/// Read leniently (see [`super::whole_number`]): a field that is not a number counts as
/// 0 and does not hide the others. The result is at most 100: Meta reports more when
/// an app is over its limit, and the poller treats every value from 100 up alike.
pub fn usage_percent(headers: &reqwest::header::HeaderMap) -> Option<u32> {
    fn max(usage: &serde_json::Value) -> u64 {
        ["call_count", "total_time", "total_cputime"]
            .iter()
            .filter_map(|k| usage.get(k).and_then(super::whole_number))
            .max()
            .unwrap_or(0)
    }
    let header = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
    };
    let app = header("x-app-usage").filter(serde_json::Value::is_object).map(|u| max(&u));
    let business = header("x-business-use-case-usage").and_then(|v| match v {
        serde_json::Value::Object(ids) => {
            Some(ids.values().filter_map(serde_json::Value::as_array).flatten().map(max).max().unwrap_or(0))
        }
        _ => None,
    });
    match (app, business) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0)).min(100) as u32),
    }
}

/// Full jitter: a random pause between zero and `base * 2^(attempt-1)`, capped.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(policy.cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(millis / 4..=millis.max(1)))
}

async fn send(
    request: reqwest::RequestBuilder,
    page: Option<&PageId>,
) -> Result<(PageData, reqwest::header::HeaderMap), FetchError> {
    let mut response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len().saturating_add(chunk.len()) > MAX_BODY {
            return Err(FetchError::Permanent { code: None, detail: format!("answer larger than {MAX_BODY} bytes") });
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(map)) => Ok((map, headers)),
            _ => Err(FetchError::Permanent {
                code: None,
                detail: format!("HTTP {status} with a body that is not a JSON object"),
            }),
        };
    }
    let error = serde_json::from_slice::<ErrorEnvelope>(&body).ok().map(|e| e.error);
    Err(classify(status.as_u16(), error, &headers, page))
}

/// Reads a `/debug_token` answer's `data` for a Page token of `page`.
fn judge_token(data: &PageData, app_id: &str, page: &PageId, now: u64) -> TokenCheck {
    let text = |key: &str| data.get(key).and_then(|v| v.as_str());
    if data.get("is_valid").and_then(|v| v.as_bool()) != Some(true) {
        return TokenCheck::Invalid("Meta reports the Page token is no longer valid (debug_token)".into());
    }
    if text("app_id").is_some_and(|id| id != app_id) {
        return TokenCheck::Invalid("the stored token belongs to another app (debug_token)".into());
    }
    // Compared as floats so that any number (negative, fractional, past u64) or a
    // number in a string is judged without a cast that could wrap; 0 means "never".
    let expires = data.get("expires_at").and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    });
    if let Some(expires) = expires
        && expires != 0.0
        && expires <= now as f64
    {
        return TokenCheck::Invalid("the Page token has expired (debug_token)".into());
    }
    if text("profile_id").is_some_and(|id| id != page.as_str()) {
        return TokenCheck::Invalid("the stored token is for another Page (debug_token)".into());
    }
    TokenCheck::Valid
}

/// The `outcome` label of a finished request.
fn outcome<T>(result: &Result<T, FetchError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(FetchError::Auth { .. }) => "auth",
        Err(FetchError::RateLimited { .. }) => "rate_limited",
        Err(FetchError::Transient { .. }) => "transient",
        Err(FetchError::Permanent { .. }) => "permanent",
    }
}

fn transport_error(e: reqwest::Error) -> FetchError {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    FetchError::Transient { detail: format!("{kind}: {e}") }
}

/// Graph's error body.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

/// The fields of a Graph error that classification reads.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub is_transient: Option<bool>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Classifies a failed answer (PLATFORM §3.2–3.6).
pub fn classify(
    status: u16,
    error: Option<GraphError>,
    headers: &reqwest::header::HeaderMap,
    page: Option<&PageId>,
) -> FetchError {
    let Some(error) = error else {
        return if status >= 500 || status == 429 {
            FetchError::Transient { detail: format!("HTTP {status}") }
        } else {
            FetchError::Permanent { code: None, detail: format!("HTTP {status} without a Graph error") }
        };
    };
    let message = error.message.clone().unwrap_or_default();
    let Some(code) = error.code else {
        return if status >= 500 {
            FetchError::Transient { detail: format!("HTTP {status}: {message}") }
        } else {
            FetchError::Permanent { code: None, detail: format!("HTTP {status}: {message}") }
        };
    };
    match code {
        190 | 102 | 10 | 200..=299 => FetchError::Auth { code, subcode: error.error_subcode, message },
        4 | 17 | 341 => {
            FetchError::RateLimited { code, scope: LimitScope::App, retry_after: regain_access(headers, page) }
        }
        32 | 613 | 80001 => {
            FetchError::RateLimited { code, scope: LimitScope::Page, retry_after: regain_access(headers, page) }
        }
        1 | 2 => FetchError::Transient { detail: format!("code {code}: {message}") },
        _ if error.is_transient == Some(true) => FetchError::Transient { detail: format!("code {code}: {message}") },
        _ => FetchError::Permanent { code: Some(code), detail: message },
    }
}

/// `estimated_time_to_regain_access` (minutes) for this Page from
/// `X-Business-Use-Case-Usage`, the largest if several usage types are listed, at most
/// [`MAX_RATE_LIMIT_PAUSE`]. Values that are not numbers are skipped (see
/// [`super::whole_number`]); zero means Meta gave no estimate.
fn regain_access(headers: &reqwest::header::HeaderMap, page: Option<&PageId>) -> Option<Duration> {
    let raw = headers.get("x-business-use-case-usage")?.to_str().ok()?;
    let usage: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    let lists: Vec<&serde_json::Value> = match page {
        Some(p) => vec![usage.get(p.as_str())?],
        None => usage.values().collect(),
    };
    let minutes = lists
        .into_iter()
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access").and_then(super::whole_number))
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)).min(MAX_RATE_LIMIT_PAUSE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn body(value: serde_json::Value) -> PageData {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn page_fields_are_read_as_strings_or_name_objects() {
        let strings = body(serde_json::json!({"data": [
            {"id": "9", "subscribed_fields": ["feed"]},
            {"id": "42", "name": "pagesync", "subscribed_fields": ["messages", "name", "messages"]},
        ]}));
        assert_eq!(our_page_fields(&strings, "42").unwrap(), Some(vec!["messages".into(), "name".into()]));
        let objects = body(serde_json::json!({"data": [{"id": "42", "subscribed_fields": [
            {"name": "messages", "version": "v25.0"}, {"name": "messaging_postbacks"}]}]}));
        assert_eq!(
            our_page_fields(&objects, "42").unwrap(),
            Some(vec!["messages".into(), "messaging_postbacks".into()])
        );
        let mixed = body(serde_json::json!({"data": [{"id": "42", "subscribed_fields": ["feed", {"name": "name"}]}]}));
        assert_eq!(our_page_fields(&mixed, "42").unwrap(), Some(vec!["feed".into(), "name".into()]));
        assert_eq!(our_page_fields(&body(serde_json::json!({"data": []})), "42").unwrap(), None);
    }

    #[test]
    fn malformed_page_fields_are_errors_not_empty_lists() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"data": {"id": "42"}}),
            serde_json::json!({"data": [{"id": "42"}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": "messages"}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": [7]}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": [{"nom": "messages"}]}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": [""]}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": ["messages,feed"]}]}),
        ] {
            assert!(matches!(our_page_fields(&body(bad.clone()), "42"), Err(FetchError::Permanent { .. })), "{bad}");
        }
    }

    #[test]
    fn the_app_page_subscription_is_read_in_both_forms() {
        let objects = body(serde_json::json!({"data": [
            {"object": "user", "callback_url": "https://x/", "fields": ["email"], "active": true},
            {"object": "page", "callback_url": "https://bot/", "fields": [{"name": "messages", "version": "v25.0"}],
             "active": false},
        ]}));
        assert_eq!(
            page_object_subscription(&objects).unwrap(),
            Some(AppSubscriptionInfo {
                callback_url: Some("https://bot/".into()),
                fields: vec!["messages".into()],
                active: false
            })
        );
        let strings = body(serde_json::json!({"data": [{"object": "page", "callback_url": "", "fields": ["name"]}]}));
        assert_eq!(
            page_object_subscription(&strings).unwrap(),
            Some(AppSubscriptionInfo { callback_url: None, fields: vec!["name".into()], active: true })
        );
        assert_eq!(page_object_subscription(&body(serde_json::json!({"data": []}))).unwrap(), None);
        for bad in [
            serde_json::json!({"data": "page"}),
            serde_json::json!({"data": [{"object": "page", "callback_url": "https://bot/"}]}),
            serde_json::json!({"data": [{"object": "page", "callback_url": 5, "fields": []}]}),
            serde_json::json!({"data": [{"object": "page", "fields": [], "active": "yes"}]}),
        ] {
            assert!(page_object_subscription(&body(bad.clone())).is_err(), "{bad}");
        }
    }

    fn err(code: i64, subcode: Option<i64>) -> Option<GraphError> {
        Some(GraphError { code: Some(code), error_subcode: subcode, is_transient: None, message: Some("m".into()) })
    }

    fn token_data(value: serde_json::Value) -> PageData {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn debug_token_answers_are_judged_for_validity_app_expiry_and_page() {
        let page = PageId::parse("555").unwrap();
        let judge = |v| judge_token(&token_data(v), "42", &page, 1_000);
        let good = serde_json::json!({"is_valid": true, "app_id": "42", "expires_at": 0, "profile_id": "555"});
        assert_eq!(judge(good), TokenCheck::Valid);
        assert_eq!(
            judge(serde_json::json!({"is_valid": true, "app_id": "42", "expires_at": 2_000})),
            TokenCheck::Valid
        );
        for bad in [
            serde_json::json!({"is_valid": false, "app_id": "42"}),
            serde_json::json!({"app_id": "42"}),
            serde_json::json!({"is_valid": true, "app_id": "43"}),
            serde_json::json!({"is_valid": true, "app_id": "42", "expires_at": 999}),
            serde_json::json!({"is_valid": true, "app_id": "42", "profile_id": "556"}),
        ] {
            assert!(matches!(judge(bad.clone()), TokenCheck::Invalid(_)), "{bad}");
        }
    }

    #[test]
    fn auth_codes_need_reauth_whatever_the_status() {
        for (code, sub) in
            [(190, None), (190, Some(460)), (190, Some(492)), (102, None), (10, None), (200, None), (299, None)]
        {
            for status in [400, 401, 403, 500] {
                assert!(matches!(classify(status, err(code, sub), &HeaderMap::new(), None), FetchError::Auth { .. }));
            }
        }
    }

    #[test]
    fn rate_limits_have_the_right_scope() {
        for (code, scope) in [
            (4, LimitScope::App),
            (17, LimitScope::App),
            (32, LimitScope::Page),
            (613, LimitScope::Page),
            (80001, LimitScope::Page),
        ] {
            match classify(400, err(code, None), &HeaderMap::new(), None) {
                FetchError::RateLimited { scope: s, retry_after: None, .. } => assert_eq!(s, scope, "code {code}"),
                other => panic!("code {code}: {other:?}"),
            }
        }
    }

    #[test]
    fn regain_access_minutes_come_from_the_pages_usage_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(r#"{"42":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":7}],"43":[{"type":"pages","estimated_time_to_regain_access":99}]}"#),
        );
        let page = PageId::parse("42").unwrap();
        match classify(400, err(80001, None), &h, Some(&page)) {
            FetchError::RateLimited { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(420))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transient_and_permanent_failures() {
        assert!(matches!(classify(500, err(1, None), &HeaderMap::new(), None), FetchError::Transient { .. }));
        assert!(matches!(classify(503, err(2, None), &HeaderMap::new(), None), FetchError::Transient { .. }));
        assert!(matches!(classify(502, None, &HeaderMap::new(), None), FetchError::Transient { .. }));
        let transient =
            Some(GraphError { code: Some(9999), error_subcode: None, is_transient: Some(true), message: None });
        assert!(matches!(classify(400, transient, &HeaderMap::new(), None), FetchError::Transient { .. }));
        assert!(matches!(
            classify(400, err(100, Some(33)), &HeaderMap::new(), None),
            FetchError::Permanent { code: Some(100), .. }
        ));
        assert!(matches!(classify(404, None, &HeaderMap::new(), None), FetchError::Permanent { code: None, .. }));
    }

    #[test]
    fn the_message_text_never_decides() {
        let misleading = Some(GraphError {
            code: Some(100),
            error_subcode: None,
            is_transient: None,
            message: Some("Error validating access token: Session has expired".into()),
        });
        assert!(matches!(classify(400, misleading, &HeaderMap::new(), None), FetchError::Permanent { .. }));
    }

    #[test]
    fn usage_headers_give_the_highest_percentage() {
        let mut h = HeaderMap::new();
        assert_eq!(usage_percent(&h), None);
        h.insert("x-app-usage", HeaderValue::from_static(r#"{"call_count":28,"total_time":25,"total_cputime":25}"#));
        assert_eq!(usage_percent(&h), Some(28));
        h.insert("x-business-use-case-usage", HeaderValue::from_static(r#"{"42":[{"type":"pages","call_count":97}]}"#));
        assert_eq!(usage_percent(&h), Some(97));
    }

    #[test]
    fn regain_access_never_panics_and_never_exceeds_a_day() {
        let page = PageId::parse("42").unwrap();
        for n in crate::clients::hostile_numbers() {
            let mut h = HeaderMap::new();
            let raw = format!(
                r#"{{"42":[{{"type":"pages","call_count":100,"estimated_time_to_regain_access":{n}}}],"7":[{{"estimated_time_to_regain_access":{n}}}]}}"#
            );
            h.insert("x-business-use-case-usage", HeaderValue::from_str(&raw).unwrap());
            for page in [Some(&page), None] {
                if let Some(pause) = regain_access(&h, page) {
                    assert!(pause <= MAX_RATE_LIMIT_PAUSE, "{n}: {pause:?}");
                    assert!(!pause.is_zero(), "{n}");
                }
                match classify(400, err(4, None), &h, page) {
                    FetchError::RateLimited { retry_after, .. } => {
                        assert!(retry_after.is_none_or(|d| d <= MAX_RATE_LIMIT_PAUSE), "{n}")
                    }
                    other => panic!("{n}: {other:?}"),
                }
            }
        }
        // Sane values are kept as they are.
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(r#"{"42":[{"estimated_time_to_regain_access":1440}]}"#),
        );
        assert_eq!(regain_access(&h, Some(&page)), Some(Duration::from_secs(1440 * 60)));
    }

    #[test]
    fn usage_percentages_never_panic_and_stay_within_0_and_100() {
        for n in crate::clients::hostile_numbers() {
            let mut h = HeaderMap::new();
            let app = format!(r#"{{"call_count":{n},"total_time":{n},"total_cputime":{n}}}"#);
            let business = format!(r#"{{"42":[{{"type":"pages","call_count":{n},"total_time":{n}}}]}}"#);
            h.insert("x-app-usage", HeaderValue::from_str(&app).unwrap());
            assert!(usage_percent(&h).is_none_or(|p| p <= 100), "{n}");
            h.insert("x-business-use-case-usage", HeaderValue::from_str(&business).unwrap());
            assert!(usage_percent(&h).is_none_or(|p| p <= 100), "{n}");
        }
        // A number that is not a whole one still counts (rounded up).
        let mut h = HeaderMap::new();
        h.insert("x-app-usage", HeaderValue::from_static(r#"{"call_count":95.5,"total_time":"x"}"#));
        assert_eq!(usage_percent(&h), Some(96));
    }

    #[test]
    fn debug_token_expiry_numbers_never_panic() {
        let page = PageId::parse("555").unwrap();
        for n in crate::clients::hostile_numbers() {
            let text = format!(
                r#"{{"is_valid":true,"app_id":"42","profile_id":"555","expires_at":{n},"data_access_expires_at":{n}}}"#
            );
            let Ok(data) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            for now in [0, 1, 1_767_225_600, u64::MAX] {
                let _ = judge_token(&token_data(data.clone()), "42", &page, now);
            }
        }
        // An expiry in the past, whatever its type, is an expired token.
        for past in ["-5", "999", "999.5", r#""999""#] {
            let data: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"is_valid":true,"app_id":"42","expires_at":{past}}}"#)).unwrap();
            assert!(matches!(judge_token(&token_data(data), "42", &page, 1_000), TokenCheck::Invalid(_)), "{past}");
        }
    }

    #[test]
    fn backoff_never_panics_whatever_the_attempt_or_policy() {
        use rand::{RngExt as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut policies = vec![
            RetryPolicy { attempts: 0, base: Duration::ZERO, cap: Duration::ZERO },
            RetryPolicy { attempts: u32::MAX, base: Duration::MAX, cap: Duration::MAX },
            RetryPolicy { attempts: 4, base: Duration::from_millis(500), cap: Duration::from_secs(8) },
        ];
        for _ in 0..200 {
            policies.push(RetryPolicy {
                attempts: rng.random(),
                base: Duration::from_nanos(rng.random()),
                cap: Duration::from_nanos(rng.random()),
            });
        }
        for policy in &policies {
            for attempt in [0, 1, 2, 17, 64, u32::MAX].into_iter().chain((0..20).map(|_| rng.random())) {
                assert!(backoff(policy, attempt) <= policy.cap.max(Duration::from_millis(1)), "{policy:?} {attempt}");
            }
        }
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        let policy = RetryPolicy { attempts: 10, base: Duration::from_millis(100), cap: Duration::from_millis(800) };
        for attempt in 1..10 {
            assert!(backoff(&policy, attempt) <= Duration::from_millis(800));
        }
    }
}
