//! SubscriptionActor: owns the webhook subscription state, at both levels Meta needs
//! (a field only fires when subscribed at app level and at Page level).
//!
//! Tree `subscriptions`: `app` -> the app-level subscription (fingerprint of the
//! configuration it was checked for, whether it succeeded, last error, the callback
//! URL pagesync registered last, the other URL when in conflict); `page/<id>` ->
//! that Page's subscription (fields, subscribed or not, last error, attempts).
//!
//! Network calls run as futures spawned on this actor's context, never awaited by a
//! handler that answers HTTP: the app-level POST in particular makes Meta call our
//! verification GET while it is open, and that GET is answered by the HTTP workers
//! alone. The app-level subscription is checked once per configuration (fingerprint),
//! not per login. Failures are retried in the background with back-off.
//!
//! The Meta app is shared with the sales bot, so subscribing never removes a field
//! (docs/contract.md §4): at both levels the current set F is read first, nothing is posted when
//! the wanted set W is already in it, and otherwise F ∪ W is posted ([`fields_to_post`],
//! [`plan_app`]). Meta keeps one callback URL per object per app: when the `page`
//! object's callback is someone else's and `PAGESYNC_FORWARD_URL` is not set, taking it
//! over would silently cut the bot off, so nothing is posted and the app-level state is
//! `conflict` ([`SubscriptionStatus::Conflict`]). A conflict is not retried on a timer
//! (only an operator can resolve it); it is checked again on the next connect or start.
//!
//! The app-level status is also published in an [`AppSubscriptionFigure`] each time
//! the app state is saved, so `/metrics` reads it without a message.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::graph::{AppSubscriptionInfo, FetchError, SubscriptionApi};
use crate::ids::PageId;
use crate::messages::{GetPageToken, Ping, Shutdown};
use crate::store::{Store, StoreError, trees};
use crate::token_vault::TokenVaultActor;

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `subscription::<Message>` keeps working for callers.
pub use crate::messages::subscription::*;

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

/// `a` then what `b` adds, each name once, in first-seen order. Stable, so the same
/// sets always produce the same request.
pub fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(a.len() + b.len());
    for field in a.iter().chain(b) {
        if !out.contains(field) {
            out.push(field.clone());
        }
    }
    out
}

/// The Page-level `subscribed_fields` to post, given the fields `have` on the Page and
/// the `wanted` ones: `None` when every wanted field is there (post nothing), else
/// `have ∪ wanted`, which never lacks a field `have` had.
pub fn fields_to_post(have: &[String], wanted: &[String]) -> Option<Vec<String>> {
    if wanted.iter().all(|w| have.contains(w)) { None } else { Some(union(have, wanted)) }
}

/// What to do about the app-level subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppPlan {
    /// Our callback, active, with every wanted field: post nothing.
    Keep,
    /// Post our callback with these fields (the current ones ∪ W).
    Post {
        fields: Vec<String>,
        /// Someone else's callback URL this POST replaces (allowed because
        /// `PAGESYNC_FORWARD_URL` relays to the bot); `None` when the callback was
        /// empty or already pagesync's.
        takes_over: Option<String>,
    },
    /// Someone else's callback URL is in place and may not be taken over.
    Conflict { other: String },
}

/// Decides the app-level step from what `GET /{app-id}/subscriptions` showed.
/// `ours` is `FACEBOOK_WEBHOOK_ADDRESS`; `earlier` the callback pagesync itself
/// registered last (a moved address is not a conflict with ourselves).
pub fn plan_app(
    current: Option<&AppSubscriptionInfo>,
    ours: &str,
    earlier: Option<&str>,
    wanted: &[String],
    may_take_over: bool,
) -> AppPlan {
    let Some(current) = current else {
        return AppPlan::Post { fields: union(&[], wanted), takes_over: None };
    };
    let fields = union(&current.fields, wanted);
    match current.callback_url.as_deref() {
        Some(url) if url == ours => {
            // An inactive subscription (Meta disabled it) is reactivated by a POST.
            if current.active && wanted.iter().all(|w| current.fields.contains(w)) {
                AppPlan::Keep
            } else {
                AppPlan::Post { fields, takes_over: None }
            }
        }
        None => AppPlan::Post { fields, takes_over: None },
        Some(url) if Some(url) == earlier => AppPlan::Post { fields, takes_over: None },
        Some(url) if may_take_over => AppPlan::Post { fields, takes_over: Some(url.to_owned()) },
        Some(url) => AppPlan::Conflict { other: url.to_owned() },
    }
}

/// How an app-level check ended (when it did not fail).
enum AppOutcome {
    /// Nothing to post.
    AlreadyThere,
    /// Posted; `takes_over` as in [`AppPlan::Post`].
    Posted { takes_over: Option<String> },
    /// Left alone: this other callback URL holds the subscription.
    Conflict(String),
}

/// The app-level subscription's status as last saved, for readers that must not wait
/// in the actor's mailbox (`/metrics`). Cheap to clone; every clone reads the same
/// value. Before anything was saved it reads `pending`, as a missing state does.
#[derive(Debug, Clone, Default)]
pub struct AppSubscriptionFigure(Arc<AtomicU8>);

impl AppSubscriptionFigure {
    /// The status of the stored app-level state (`pending` when there is none).
    pub fn status(&self) -> SubscriptionStatus {
        let index = usize::from(self.0.load(Ordering::Relaxed));
        SubscriptionStatus::ALL.get(index).copied().unwrap_or(SubscriptionStatus::Pending)
    }

    fn set(&self, status: SubscriptionStatus) {
        let index = SubscriptionStatus::ALL.iter().position(|s| *s == status).unwrap_or(0);
        self.0.store(u8::try_from(index).unwrap_or(0), Ordering::Relaxed);
    }
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
    /// The app-level status, published on every save of the app state.
    app_status: AppSubscriptionFigure,
}

impl SubscriptionActor {
    pub fn new(
        store: &Store,
        api: Arc<dyn SubscriptionApi>,
        vault: Addr<TokenVaultActor>,
        retry: RetryConfig,
    ) -> Result<Self, StoreError> {
        let actor = SubscriptionActor {
            tree: store.tree(trees::SUBSCRIPTIONS)?,
            api,
            vault,
            retry,
            app_in_flight: false,
            retrying: HashSet::new(),
            app_status: AppSubscriptionFigure::default(),
        };
        actor.app_status.set(actor.load(None).map_or(SubscriptionStatus::Pending, |s| s.status()));
        Ok(actor)
    }

    /// The app-level status this actor publishes; take it before `start` and read it
    /// from anywhere.
    pub fn app_status(&self) -> AppSubscriptionFigure {
        self.app_status.clone()
    }

    fn key(page: Option<&PageId>) -> String {
        page.map_or_else(|| "app".to_owned(), |p| format!("page/{p}"))
    }

    fn load(&self, page: Option<&PageId>) -> Option<SubscriptionState> {
        read_state(&self.tree, page)
    }

    fn save(&self, page: Option<&PageId>, state: &SubscriptionState) {
        let saved = serde_json::to_vec(state)
            .map_err(|e| e.to_string())
            .and_then(|v| self.tree.insert(Self::key(page), v).map(|_| ()).map_err(|e| e.to_string()));
        match saved {
            // Published once stored, so it always says what `GetSubscription` reads.
            Ok(()) if page.is_none() => self.app_status.set(state.status()),
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "cannot save subscription state"),
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
        let api = self.api.clone();
        let ours = api.callback_url();
        let earlier = current.and_then(|s| s.callback_url);
        let registered = ours.clone();
        // Read first: Meta's one callback per object may belong to the bot, and its
        // fields must survive our POST.
        let work = async move {
            let found = api.app_subscription().await?;
            match plan_app(found.as_ref(), &ours, earlier.as_deref(), &api.wanted_fields(), api.may_take_over()) {
                AppPlan::Keep => Ok(AppOutcome::AlreadyThere),
                AppPlan::Conflict { other } => Ok(AppOutcome::Conflict(other)),
                AppPlan::Post { fields, takes_over } => {
                    api.subscribe_app(fields).await?;
                    Ok(AppOutcome::Posted { takes_over })
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(move |result: Result<AppOutcome, FetchError>, act, ctx| {
            act.app_in_flight = false;
            let mut state = act.load(None).unwrap_or_default();
            state.detail = fingerprint;
            state.updated_at = now();
            state.conflict = None;
            match result {
                Ok(AppOutcome::Conflict(other)) => {
                    state.subscribed = false;
                    state.attempts = 0;
                    state.last_error = Some(format!(
                        "the app's page webhooks go to {other}; set PAGESYNC_FORWARD_URL to the bot's URL to let \
                         pagesync take them over and relay every delivery there"
                    ));
                    // Not retried on a timer: only the operator can resolve it. The
                    // next connect or start checks again.
                    tracing::error!(
                        callback_url = %other,
                        "app-level webhook subscription left alone: Meta sends the app's page webhooks to \
                         another URL and PAGESYNC_FORWARD_URL is not set (state: conflict)"
                    );
                    state.conflict = Some(other);
                }
                Ok(outcome) => {
                    state.subscribed = true;
                    state.last_error = None;
                    state.attempts = 0;
                    state.callback_url = Some(registered);
                    match outcome {
                        AppOutcome::Posted { takes_over: Some(previous) } => tracing::warn!(
                            previous_callback_url = %previous,
                            "app-level webhook subscription taken over; deliveries are relayed to PAGESYNC_FORWARD_URL"
                        ),
                        AppOutcome::Posted { takes_over: None } => {
                            tracing::info!("app-level webhook subscription made")
                        }
                        _ => tracing::info!("app-level webhook subscription already in place"),
                    }
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
            // `None`: the app is not installed on the Page yet, so F is empty.
            let have = api.page_fields(&p, &creds.token).await.map_err(|e| e.to_string())?;
            let Some(fields) = fields_to_post(have.as_deref().unwrap_or_default(), &wanted) else {
                return Ok(false);
            };
            api.subscribe_page(&p, &creds.token, fields).await.map_err(|e| e.to_string())?;
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
        // A subscription made before under another configuration is checked again, and
        // so is one that failed or was left in conflict (the operator may have fixed
        // it); a daemon that never subscribed waits for the first connect.
        if let Some(state) = self.load(None)
            && (state.detail != self.api.app_fingerprint() || !state.subscribed)
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

/// Read on the blocking pool, not on the actors' thread: a 1,000-Page slice is 1,000
/// point reads, and every actor (the page writer acknowledging webhooks included)
/// shares that thread. The records read are the ones stored before this message.
impl Handler<GetPageSubscriptions> for SubscriptionActor {
    type Result = ResponseFuture<Vec<Option<SubscriptionState>>>;
    fn handle(&mut self, msg: GetPageSubscriptions, _: &mut Self::Context) -> Self::Result {
        let tree = self.tree.clone();
        let count = msg.pages.len();
        let read = tokio::task::spawn_blocking(move || {
            msg.pages.iter().map(|page| read_state(&tree, Some(page))).collect::<Vec<_>>()
        });
        // A failed blocking task (the reads cannot panic) answers "unknown" for each.
        Box::pin(async move { read.await.unwrap_or_else(|_| vec![None; count]) })
    }
}

/// The stored state of `page` (`None`: the app level) in `tree`; `None` when there is
/// none or it does not read back.
fn read_state(tree: &sled::Tree, page: Option<&PageId>) -> Option<SubscriptionState> {
    let raw = tree.get(SubscriptionActor::key(page)).ok()??;
    serde_json::from_slice(&raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const OURS: &str = "https://sync.example/facebook/webhook";
    const BOT: &str = "https://bot.example/webhook";

    fn info(callback: Option<&str>, fields: &[&str], active: bool) -> AppSubscriptionInfo {
        AppSubscriptionInfo { callback_url: callback.map(str::to_owned), fields: v(fields), active }
    }

    #[test]
    fn union_keeps_the_first_order_and_drops_duplicates() {
        assert_eq!(union(&v(&["b", "a", "b"]), &v(&["a", "c", "c", "d"])), v(&["b", "a", "c", "d"]));
        assert_eq!(union(&[], &v(&["x", "x"])), v(&["x"]));
        assert!(union(&[], &[]).is_empty());
    }

    #[test]
    fn nothing_is_posted_to_a_page_that_has_every_wanted_field() {
        let wanted = v(&["name", "category", "messages"]);
        assert_eq!(fields_to_post(&v(&["messages", "feed", "category", "name"]), &wanted), None);
        assert_eq!(fields_to_post(&v(&["x"]), &[]), None);
    }

    #[test]
    fn a_page_missing_a_field_gets_the_union_which_keeps_every_field_it_had() {
        let have = v(&["messages", "messaging_postbacks"]);
        let wanted = v(&["name", "category", "messages"]);
        let posted = fields_to_post(&have, &wanted).unwrap();
        assert_eq!(posted, v(&["messages", "messaging_postbacks", "name", "category"]));
        assert!(have.iter().chain(&wanted).all(|f| posted.contains(f)));
        assert_eq!(fields_to_post(&[], &wanted), Some(wanted.clone()), "not installed: W");
    }

    #[test]
    fn no_app_subscription_posts_the_wanted_fields() {
        let plan = plan_app(None, OURS, None, &v(&["name", "name", "messages"]), false);
        assert_eq!(plan, AppPlan::Post { fields: v(&["name", "messages"]), takes_over: None });
    }

    #[test]
    fn our_callback_with_every_field_is_kept() {
        let current = info(Some(OURS), &["feed", "messages", "name"], true);
        assert_eq!(plan_app(Some(&current), OURS, None, &v(&["name", "messages"]), false), AppPlan::Keep);
    }

    #[test]
    fn our_callback_missing_a_field_posts_the_union() {
        let current = info(Some(OURS), &["feed", "name"], true);
        let plan = plan_app(Some(&current), OURS, None, &v(&["name", "messages"]), false);
        assert_eq!(plan, AppPlan::Post { fields: v(&["feed", "name", "messages"]), takes_over: None });
    }

    #[test]
    fn an_inactive_subscription_is_posted_again() {
        let current = info(Some(OURS), &["name"], false);
        let plan = plan_app(Some(&current), OURS, None, &v(&["name"]), false);
        assert_eq!(plan, AppPlan::Post { fields: v(&["name"]), takes_over: None });
    }

    #[test]
    fn another_callback_without_a_forward_url_is_a_conflict() {
        let current = info(Some(BOT), &["messages"], true);
        let plan = plan_app(Some(&current), OURS, Some("https://old.example/hook"), &v(&["name"]), false);
        assert_eq!(plan, AppPlan::Conflict { other: BOT.to_owned() });
    }

    #[test]
    fn another_callback_with_a_forward_url_is_taken_over_keeping_its_fields() {
        let current = info(Some(BOT), &["messages", "messaging_postbacks"], true);
        let plan = plan_app(Some(&current), OURS, None, &v(&["name", "messages"]), true);
        assert_eq!(
            plan,
            AppPlan::Post { fields: v(&["messages", "messaging_postbacks", "name"]), takes_over: Some(BOT.to_owned()) }
        );
    }

    #[test]
    fn pagesyncs_own_earlier_callback_or_none_is_replaced_without_a_conflict() {
        let earlier = "https://old.example/facebook/webhook";
        let moved = info(Some(earlier), &["name"], true);
        let plan = plan_app(Some(&moved), OURS, Some(earlier), &v(&["name"]), false);
        assert_eq!(plan, AppPlan::Post { fields: v(&["name"]), takes_over: None });
        let empty = info(None, &["feed"], true);
        let plan = plan_app(Some(&empty), OURS, None, &v(&["name"]), false);
        assert_eq!(plan, AppPlan::Post { fields: v(&["feed", "name"]), takes_over: None });
    }

    #[test]
    fn the_status_tells_conflict_from_failure() {
        let mut state = SubscriptionState::default();
        assert_eq!(state.status(), SubscriptionStatus::Pending);
        state.last_error = Some("Graph unavailable".into());
        assert_eq!(state.status(), SubscriptionStatus::Failed);
        state.conflict = Some(BOT.into());
        assert_eq!(state.status(), SubscriptionStatus::Conflict);
        state.subscribed = true;
        assert_eq!(state.status(), SubscriptionStatus::Subscribed);
        let labels: Vec<&str> = SubscriptionStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(labels, ["pending", "subscribed", "failed", "conflict"]);
    }

    #[test]
    fn the_published_app_status_reads_back_every_status_and_starts_pending() {
        let figure = AppSubscriptionFigure::default();
        assert_eq!(figure.status(), SubscriptionStatus::Pending);
        for status in SubscriptionStatus::ALL.iter().rev() {
            figure.set(*status);
            assert_eq!(figure.clone().status(), *status);
        }
    }

    #[test]
    fn a_state_stored_before_conflicts_existed_still_reads() {
        let old = br#"{"subscribed":true,"detail":"abc","last_error":null,"attempts":0,"updated_at":1}"#;
        let state: SubscriptionState = serde_json::from_slice(old).unwrap();
        assert_eq!(state.status(), SubscriptionStatus::Subscribed);
        assert_eq!(state.conflict, None);
    }
}
