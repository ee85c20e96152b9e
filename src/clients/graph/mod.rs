//! The Meta Graph API client.
//!
//! One `reqwest::Client` (rustls, connection pool) for every call. Each call made with
//! a user or Page token carries `appsecret_proof` and `appsecret_time`. Failures are
//! classified by `error.code` / `error_subcode` (docs/platform.md, "Graph errors"), never by message text;
//! the HTTP status is only a fallback when the body holds no Graph error. Transient
//! failures (5xx, timeouts, codes 1/2, `is_transient`) are retried here with
//! exponential back-off and full jitter; everything else goes back to the caller at
//! once, already classified.
//!
//! URLs with tokens in them never reach a log or an error message: reqwest errors are
//! stripped of their URL before they are turned into text.
//!
//! The client is one struct; its methods are split by what they are for:
//! [`transport`] (sending, proofs, retry), [`classify`] (what a failure means),
//! [`oauth`] (Facebook Login), [`pages`] (the [`PageSource`](pagesync_actors::PageSource)
//! impl) and [`subscriptions`] (the [`SubscriptionApi`](pagesync_actors::SubscriptionApi)
//! impl).

mod classify;
mod oauth;
mod pages;
mod subscriptions;
mod transport;

use std::sync::Arc;

use pagesync_actors::Secret;
use pagesync_actors::poller::UsageGauge;

pub use self::classify::{GraphError, MAX_RATE_LIMIT_PAUSE, classify, usage_percent};
pub use self::oauth::{AccountPage, FacebookUser};
pub use self::transport::RetryPolicy;
use crate::config::{BotSettings, FacebookSettings};
use crate::metrics::Metrics;

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
}
