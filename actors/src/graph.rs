//! What the actors need from the Graph API, as a trait.
//!
//! The HTTP client lives in the binary crate (`src/clients/graph.rs`); the actors only
//! see [`PageSource`]. That keeps network details (retries, proofs, URLs) out of the
//! actors and lets actor tests use an in-memory source.

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::ids::PageId;
use crate::secret::Secret;

/// The Graph API's answer for one Page: a JSON object.
pub type PageData = serde_json::Map<String, serde_json::Value>;

/// Fetches a Page's metadata with its Page token.
pub trait PageSource: Send + Sync + 'static {
    /// `GET /{version}/{page-id}?fields=...` with the token. Transient failures have
    /// already been retried by the implementation when this resolves to an error.
    fn fetch_page(&self, page: &PageId, token: &Secret) -> BoxFuture<'static, Result<PageData, FetchError>>;

    /// Asks Meta about the Page token (`/debug_token`). Sources that cannot tell
    /// answer [`TokenCheck::Valid`], and the fetch that follows decides.
    fn check_token(&self, page: &PageId, token: &Secret) -> BoxFuture<'static, Result<TokenCheck, FetchError>> {
        let _ = (page, token);
        Box::pin(async { Ok(TokenCheck::Valid) })
    }
}

/// What `/debug_token` says about a stored Page token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// Not usable, and why (never the token itself).
    Invalid(String),
}

/// Which budget a rate limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The whole app (codes 4, 17, 341): pause every Page.
    App,
    /// This Page (codes 32, 613, 80001): pause only it.
    Page,
}

/// A classified Graph failure. Classification is by `error.code` / `error_subcode`
/// (docs/platform.md, "Graph errors"), never by message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The token is dead or lacks permission (190, 102, 10, 200-299): the Page needs its
    /// owner to connect again; retrying cannot help.
    #[error("token refused by Graph (code {code}{}): {message}", subcode.map(|s| format!("/{s}")).unwrap_or_default())]
    Auth { code: i64, subcode: Option<i64>, message: String },
    /// A rate limit; `retry_after` when Meta said how long.
    #[error("rate limited by Graph (code {code}, {scope:?} scope)")]
    RateLimited { code: i64, scope: LimitScope, retry_after: Option<Duration> },
    /// Still failing after the client's retries: 5xx, timeouts, codes 1/2, `is_transient`.
    #[error("Graph unavailable: {detail}")]
    Transient { detail: String },
    /// Anything retrying will not fix: the Page is gone (100/33), a bad field list, an
    /// answer that is not a JSON object.
    #[error("Graph refused the request{}: {detail}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Permanent { code: Option<i64>, detail: String },
}

impl FetchError {
    /// The Graph error code, when there was one.
    pub fn code(&self) -> Option<i64> {
        match self {
            FetchError::Auth { code, .. } | FetchError::RateLimited { code, .. } => Some(*code),
            FetchError::Permanent { code, .. } => *code,
            FetchError::Transient { .. } => None,
        }
    }
}

/// The app's `page` object subscription as `GET /{app-id}/subscriptions` shows it.
/// Meta keeps one callback URL per object per app, shared by everyone using the app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppSubscriptionInfo {
    /// `None` when Meta shows no callback (or an empty one).
    pub callback_url: Option<String>,
    /// The fields subscribed at app level, in Meta's order.
    pub fields: Vec<String>,
    /// `false` when Meta disabled the subscription (a POST reactivates it).
    pub active: bool,
}

/// The Graph calls that webhook subscriptions need (implemented by the Graph client).
///
/// Reads come back parsed and checked: an answer that does not say which fields are
/// there is an error, never an empty list, because posting "our fields" over an
/// unknown set could remove the bot's.
pub trait SubscriptionApi: Send + Sync + 'static {
    /// What the app-level subscription depends on (app id, callback URL, wanted fields,
    /// verify token, whether another callback may be taken over), hashed: a change
    /// means the subscription must be checked again.
    fn app_fingerprint(&self) -> String;

    /// W: the Page webhook fields we want at both levels (`FACEBOOK_SUBSCRIBED_FIELDS`
    /// then `PAGESYNC_BOT_FIELDS`, without duplicates).
    fn wanted_fields(&self) -> Vec<String>;

    /// Our callback URL (`FACEBOOK_WEBHOOK_ADDRESS`).
    fn callback_url(&self) -> String;

    /// Whether pagesync may replace another callback URL with its own: only when
    /// `PAGESYNC_FORWARD_URL` is set, so whoever had it still gets every delivery.
    fn may_take_over(&self) -> bool;

    /// `GET /{app-id}/subscriptions` with the app token: the `page` object's
    /// subscription, or `None` when there is none.
    fn app_subscription(&self) -> BoxFuture<'static, Result<Option<AppSubscriptionInfo>, FetchError>>;

    /// `POST /{app-id}/subscriptions` with the app token, our callback and these
    /// `fields`. Meta calls our verification GET while this is open.
    fn subscribe_app(&self, fields: Vec<String>) -> BoxFuture<'static, Result<(), FetchError>>;

    /// `GET /{page-id}/subscribed_apps`: the fields our app is subscribed to on the
    /// Page, or `None` when the app is not installed on it.
    fn page_fields(&self, page: &PageId, token: &Secret)
    -> BoxFuture<'static, Result<Option<Vec<String>>, FetchError>>;

    /// `POST /{page-id}/subscribed_apps` with `subscribed_fields` = `fields`. Whether
    /// Meta merges or replaces is unconfirmed (docs/platform.md, "Webhook subscriptions"): pass the whole set.
    fn subscribe_page(
        &self,
        page: &PageId,
        token: &Secret,
        fields: Vec<String>,
    ) -> BoxFuture<'static, Result<(), FetchError>>;
}
