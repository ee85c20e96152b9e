//! SubscriptionActor: owns the webhook subscription state, at both levels Meta needs
//! (a field only fires when subscribed at app level and at Page level).
//!
//! Tree `subscriptions`: `app` -> the app-level subscription (fingerprint of the
//! configuration it was made for, whether it succeeded, last error); `page/<id>` ->
//! that Page's subscription (fields, subscribed or not, last error, attempts).
//!
//! Network calls run as futures spawned on this actor's context, never awaited by a
//! handler that answers HTTP: the app-level POST in particular makes Meta call our
//! verification GET while it is open, and that GET is answered by the HTTP workers
//! alone. The app-level subscription is made once per configuration (fingerprint), not
//! per login. Page-level subscriptions are idempotent: a GET first, a POST only when
//! our fields are missing. Failures are retried in the background with back-off.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::graph::SubscriptionApi;
use crate::ids::PageId;
use crate::messages::{GetPageToken, Ping, Shutdown};
use crate::store::{Store, StoreError, trees};
use crate::token_vault::TokenVaultActor;

/// Back-off of background retries.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts per Page before giving up until the next connect.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { base: Duration::from_secs(30), cap: Duration::from_secs(3600), max_attempts: 10 }
    }
}

/// Stored state of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SubscriptionState {
    pub subscribed: bool,
    /// App level: the configuration fingerprint; Page level: the fields.
    pub detail: String,
    pub last_error: Option<String>,
    pub attempts: u32,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

/// Make sure the app-level subscription exists for the current configuration.
/// Fire-and-forget: never wait on it from an HTTP handler.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EnsureAppSubscription;

/// Make sure our app is subscribed on the Page with our fields. Replies after the
/// first attempt; a failure is retried in the background.
#[derive(Debug, Message)]
#[rtype(result = "SubscriptionState")]
pub struct EnsurePageSubscription {
    pub page: PageId,
}

/// Forget Pages' subscription state (their tokens are gone).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetSubscriptions {
    pub pages: Vec<PageId>,
}

/// The state of the app-level subscription (`None` for the app) or of a Page's.
#[derive(Debug, Message)]
#[rtype(result = "Option<SubscriptionState>")]
pub struct GetSubscription {
    pub page: Option<PageId>,
}

/// See the module docs.
pub struct SubscriptionActor {
    tree: sled::Tree,
    api: Arc<dyn SubscriptionApi>,
    vault: Addr<TokenVaultActor>,
    retry: RetryConfig,
    /// An app-level POST is running.
    app_in_flight: bool,
    /// Pages with a background retry scheduled.
    retrying: HashSet<PageId>,
}

impl SubscriptionActor {
    pub fn new(
        store: &Store,
        api: Arc<dyn SubscriptionApi>,
        vault: Addr<TokenVaultActor>,
        retry: RetryConfig,
    ) -> Result<Self, StoreError> {
        Ok(SubscriptionActor {
            tree: store.tree(trees::SUBSCRIPTIONS)?,
            api,
            vault,
            retry,
            app_in_flight: false,
            retrying: HashSet::new(),
        })
    }

    fn key(page: Option<&PageId>) -> String {
        page.map_or_else(|| "app".to_owned(), |p| format!("page/{p}"))
    }

    fn load(&self, page: Option<&PageId>) -> Option<SubscriptionState> {
        let raw = self.tree.get(Self::key(page)).ok()??;
        serde_json::from_slice(&raw).ok()
    }

    fn save(&self, page: Option<&PageId>, state: &SubscriptionState) {
        let saved = serde_json::to_vec(state)
            .map_err(|e| e.to_string())
            .and_then(|v| self.tree.insert(Self::key(page), v).map(|_| ()).map_err(|e| e.to_string()));
        if let Err(e) = saved {
            tracing::error!(error = %e, "cannot save subscription state");
        }
    }

    fn delay(&self, attempts: u32) -> Duration {
        let base = self.retry.base.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempts.min(20)).min(self.retry.cap.as_millis() as u64).max(1);
        Duration::from_millis(exp / 2 + rand::random_range(0..=exp / 2))
    }

    fn ensure_app(&mut self, ctx: &mut Context<Self>) {
        let fingerprint = self.api.app_fingerprint();
        let current = self.load(None);
        if current.as_ref().is_some_and(|s| s.subscribed && s.detail == fingerprint) || self.app_in_flight {
            return;
        }
        self.app_in_flight = true;
        let call = self.api.subscribe_app();
        ctx.spawn(call.into_actor(self).map(move |result, act, ctx| {
            act.app_in_flight = false;
            let mut state = act.load(None).unwrap_or_default();
            state.detail = fingerprint;
            state.updated_at = now();
            match result {
                Ok(()) => {
                    state.subscribed = true;
                    state.last_error = None;
                    state.attempts = 0;
                    tracing::info!("app-level webhook subscription made");
                }
                Err(e) => {
                    state.subscribed = false;
                    state.last_error = Some(e.to_string());
                    state.attempts = state.attempts.saturating_add(1);
                    let delay = act.delay(state.attempts - 1);
                    tracing::warn!(error = %e, delay_s = delay.as_secs(), "app-level subscription failed; will retry");
                    ctx.run_later(delay, |act, ctx| act.ensure_app(ctx));
                }
            }
            act.save(None, &state);
        }));
    }

    /// One attempt at a Page's subscription; resolves to its new state.
    fn attempt_page(&mut self, page: PageId, ctx: &mut Context<Self>) -> ResponseActFuture<Self, SubscriptionState> {
        let vault = self.vault.clone();
        let api = self.api.clone();
        let wanted = api.wanted_fields();
        let p = page.clone();
        let work = async move {
            let creds = match vault.send(GetPageToken { page: p.clone() }).await {
                Ok(Ok(Some(creds))) => creds,
                Ok(Ok(None)) => return Err("no token stored for the Page".to_owned()),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(e) => return Err(format!("token vault unavailable: {e}")),
            };
            let have = api.page_fields(&p, &creds.token).await.map_err(|e| e.to_string())?;
            if have.is_some_and(|have| wanted.iter().all(|f| have.contains(f))) {
                return Ok(false);
            }
            api.subscribe_page(&p, &creds.token).await.map_err(|e| e.to_string())?;
            Ok(true)
        };
        let _ = ctx;
        Box::pin(work.into_actor(self).map(move |result, act, ctx| {
            let mut state = act.load(Some(&page)).unwrap_or_default();
            state.detail = act.api.wanted_fields().join(",");
            state.updated_at = now();
            match result {
                Ok(posted) => {
                    state.subscribed = true;
                    state.last_error = None;
                    state.attempts = 0;
                    act.retrying.remove(&page);
                    tracing::info!(page_id = %page, posted, "Page subscription in place");
                }
                Err(e) => {
                    state.subscribed = false;
                    state.last_error = Some(e.clone());
                    state.attempts = state.attempts.saturating_add(1);
                    if state.attempts < act.retry.max_attempts && act.retrying.insert(page.clone()) {
                        let delay = act.delay(state.attempts - 1);
                        tracing::warn!(page_id = %page, error = %e, delay_s = delay.as_secs(), "Page subscription failed; will retry");
                        let page = page.clone();
                        ctx.run_later(delay, move |act, ctx| {
                            // Forgotten meanwhile (the Page was removed): stop here.
                            if !act.retrying.remove(&page) {
                                return;
                            }
                            let retry = act.attempt_page(page, ctx);
                            ctx.spawn(retry.map(|_, _, _| ()));
                        });
                    } else {
                        tracing::warn!(page_id = %page, error = %e, "Page subscription failed");
                    }
                }
            }
            act.save(Some(&page), &state);
            state
        }))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Actor for SubscriptionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        // A subscription made before under another configuration is made again; a
        // daemon that never subscribed waits for the first connect.
        if let Some(state) = self.load(None)
            && state.detail != self.api.app_fingerprint()
        {
            self.ensure_app(ctx);
        }
    }
}

impl Handler<Ping> for SubscriptionActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

impl Handler<Shutdown> for SubscriptionActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<EnsureAppSubscription> for SubscriptionActor {
    type Result = ();
    fn handle(&mut self, _: EnsureAppSubscription, ctx: &mut Self::Context) {
        self.ensure_app(ctx);
    }
}

impl Handler<EnsurePageSubscription> for SubscriptionActor {
    type Result = ResponseActFuture<Self, SubscriptionState>;
    fn handle(&mut self, msg: EnsurePageSubscription, ctx: &mut Self::Context) -> Self::Result {
        self.attempt_page(msg.page, ctx)
    }
}

impl Handler<ForgetSubscriptions> for SubscriptionActor {
    type Result = ();
    fn handle(&mut self, msg: ForgetSubscriptions, _: &mut Self::Context) {
        for page in msg.pages {
            self.retrying.remove(&page);
            if let Err(e) = self.tree.remove(Self::key(Some(&page))) {
                tracing::error!(page_id = %page, error = %e, "cannot forget subscription state");
            }
        }
    }
}

impl Handler<GetSubscription> for SubscriptionActor {
    type Result = Option<SubscriptionState>;
    fn handle(&mut self, msg: GetSubscription, _: &mut Self::Context) -> Self::Result {
        self.load(msg.page.as_ref())
    }
}
