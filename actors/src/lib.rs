//! pagesync's core: the actors that own its state and decide the order of work.
//!
//! # Actor map
//!
//! | actor | owns (sled trees, files) | receives from | talks to |
//! | --- | --- | --- | --- |
//! | [`SessionActor`](session::SessionActor) | `sessions`, `shops`, `shop_installs`, `shopify_states`, `shopify_webhooks`, `facebook_nonces`, `deletions`, and the indexes `shops_by_user`, `shop_sessions`, `session_expiries` (version in `session_meta`) | Shopify and Facebook routes | nothing |
//! | [`TokenVaultActor`] | `page_tokens`, `page_owner`, `page_grantor`, `user_tokens`, `shop_tokens` | OAuth and removal routes, PageWriterActor, SubscriptionActor | the store |
//! | [`SubscriptionActor`](subscription::SubscriptionActor) | `subscriptions` | Facebook callback, removal routes | TokenVaultActor, a [`SubscriptionApi`] (Graph) |
//! | [`PollerActor`](poller::PollerActor) | nothing (counters) | a timer, the operator CLI | TokenVaultActor, PageWriterActor |
//! | [`PageWriterActor`] | `inbox`, `page_state`, `facebook/<id>/page_data.json` | webhook route, Facebook callback, removal routes, readiness | TokenVaultActor, a [`PageSource`] (Graph), OutboxActor |
//! | [`ApiKeyActor`](api_keys::ApiKeyActor) | `api_keys` (hashes of consumer API keys, never the keys) | `/api/v1` routes (verify), the operator CLI (create, list, revoke) | nothing |
//! | [`OutboxActor`](outbox::OutboxActor) | `outbox`, `outbox_dead` | PageWriterActor (after a commit that holds an item), the operator CLI | an [`OutboxSender`](outbox::OutboxSender) (HTTP to the bot) |
//!
//! One [`Store`] holds the sled database; each tree belongs to one actor and no other
//! code touches it. Durable writes go through the store's group commit (one writer
//! thread, one flush shared by every write queued meanwhile).
//!
//! The HTTP layer (the `pagesync` crate) parses and verifies input at the edge: actors
//! receive typed ids ([`PageId`], [`UserId`]), wrapped secrets ([`Secret`]) and only
//! signature-checked deliveries.
//!
//! The actix plumbing is kept thin on purpose (the `actix` crate is in passive
//! maintenance): the logic lives in plain methods, the `Handler` impls only route.
//!
//! # Where things live
//!
//! - Every message, its reply type and its error type is declared in [`messages`], one
//!   file per actor (`messages::session`, `messages::vault`, `messages::writer`, ...);
//!   [`messages::Ping`] and [`messages::Shutdown`] go to every actor. Each actor module
//!   re-exports its own messages, so `session::CheckSession` and
//!   `messages::CheckSession` name the same type. Only messages an actor sends itself
//!   stay private to its file.
//! - One actor per module: its `//!` docs say what it owns and who sends it what; its
//!   logic is in plain methods; a reply that promises durability is
//!   [`Store::durable`] of the method's result.
//! - [`page_writer`] is a folder: [`page_writer::schedule`] is its scheduling state
//!   machine (no actix, no I/O), beside the refresh I/O, the page file I/O and the
//!   handlers.
//!
//! # Figures read without a message
//!
//! Monitoring must not queue behind work: a `/metrics` scrape that asked the page
//! writer would wait behind every webhook delivery in its mailbox (all actors but the
//! outbox share one thread). So the actors that own figures publish them as they
//! change into shared handles of atomics ([`Published`], in [`Actors::published`]),
//! and readers load those. The handles are the actors' own counters, not copies: the
//! messages that report the same figures ([`GetWriterStats`](messages::GetWriterStats),
//! [`CountPagesByStatus`](messages::CountPagesByStatus),
//! [`GetOutboxStats`](messages::GetOutboxStats)) answer from them too.

pub mod api_keys;
pub mod backup;
pub mod graph;
pub mod ids;
pub mod messages;
pub mod outbox;
pub mod page_writer;
pub mod poller;
pub mod seal;
pub mod secret;
pub mod session;
pub mod store;
pub mod subscription;
pub mod token_vault;

use std::sync::Arc;

use actix::{Actor, Addr};

pub use graph::{AppSubscriptionInfo, FetchError, LimitScope, PageData, PageSource, SubscriptionApi, TokenCheck};
pub use ids::{FacebookUserId, IdError, PageId, ShopDomain, UserId};
pub use page_writer::{PageWriterActor, WriterConfig};
pub use seal::{EncryptionKey, SealError, Sealer};
pub use secret::Secret;
pub use session::SessionActor;
pub use store::{Store, StoreConfig, StoreError};
pub use subscription::SubscriptionActor;
pub use token_vault::{KeyCheckError, TokenVaultActor, reseal_all, verify_key};

/// Figures the actors publish as they change, read from any thread without a message
/// (see the crate docs). Cheap to clone: each field is one `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The page writer's refresh counters, inbox depth, running refreshes, Pages by
    /// status and stalest success: written on its thread as they change, so a scrape
    /// does not wait behind the webhook deliveries in its mailbox.
    pub writer: page_writer::WriterFigures,
    /// The outbox's pending and dead items, attempts and oldest pending item: its
    /// mailbox takes one `Enqueued` per accepted delivery, so it can be deep too.
    pub outbox: outbox::OutboxFigures,
    /// The app-level webhook subscription's status (`pagesync_app_subscription`):
    /// the subscription actor shares the writer's thread.
    pub app_subscription: subscription::AppSubscriptionFigure,
    /// The poll's runs, refreshes and slow-downs: the poller shares that thread too.
    pub poll: poller::PollFigures,
}

/// The running actors' addresses; cloned into every HTTP worker.
#[derive(Clone)]
pub struct Actors {
    pub sessions: Addr<SessionActor>,
    pub vault: Addr<TokenVaultActor>,
    pub subscriptions: Addr<SubscriptionActor>,
    pub page_writer: Addr<PageWriterActor>,
    pub poller: Addr<poller::PollerActor>,
    /// Consumer API keys (`/api/v1`, `pagesync api-key`).
    pub api_keys: Addr<api_keys::ApiKeyActor>,
    /// The outbox actor and the queue that feeds it.
    pub outbox: outbox::OutboxHandle,
    /// The store they share (for backups).
    pub store: Store,
    /// `PAGESYNC_DATA_DIR/facebook`, where the Page files are.
    pub pages_dir: std::path::PathBuf,
    /// What the actors publish for readers that must not wait in a mailbox
    /// (`/metrics`, the systemd status line).
    pub published: Published,
}

/// What the actors are started with.
pub struct ActorsConfig {
    pub sealer: Sealer,
    /// Fetches Page data (the Graph client).
    pub source: Arc<dyn PageSource>,
    /// Makes webhook subscriptions (the Graph client).
    pub subscriptions: Arc<dyn SubscriptionApi>,
    pub writer: WriterConfig,
    pub subscription_retry: subscription::RetryConfig,
    /// `PAGESYNC_SESSION_TTL`.
    pub session_ttl: std::time::Duration,
    pub poll: poller::PollConfig,
    /// Graph usage as the Graph client last saw it; slows the poll.
    pub usage: poller::UsageGauge,
    /// Delivers forwards and events (the HTTP client).
    pub outbox_sender: Arc<dyn outbox::OutboxSender>,
    pub outbox: outbox::OutboxConfig,
    /// Whether the actors emit events (`PAGESYNC_EVENTS_URL` is set).
    pub events: bool,
}

/// Starts every actor on the current arbiter. Call once, inside an actix `System`,
/// before the HTTP server starts.
pub fn start(store: &Store, config: ActorsConfig) -> Result<Actors, StoreError> {
    let sessions = SessionActor::new(store.clone(), config.session_ttl)?.start();
    let vault = TokenVaultActor::new(store.clone(), config.sealer)?.start();
    let subscriptions = SubscriptionActor::new(store, config.subscriptions, vault.clone(), config.subscription_retry)?;
    let app_subscription = subscriptions.app_status();
    let subscriptions = subscriptions.start();
    let (outbox, queue) = outbox::OutboxActor::new(store, config.outbox_sender, config.outbox)?;
    let outbox_figures = outbox.figures();
    // The outbox gets a thread of its own: its sends (and the HTTP client's connection
    // tasks they spawn) would otherwise share the one thread where every other actor,
    // the writer that acknowledges webhook deliveries included, runs.
    let arbiter = actix::Arbiter::try_new().map_err(StoreError::Thread)?;
    let addr = outbox::OutboxActor::start_in_arbiter(&arbiter.handle(), move |_| outbox);
    let thread = Some(outbox::OutboxThread::new(arbiter));
    let outbox = outbox::OutboxHandle { queue, addr, events: config.events, thread };
    let pages_dir = config.writer.pages_dir.clone();
    let page_writer =
        PageWriterActor::new(store.clone(), vault.clone(), config.source, config.writer, Some(outbox.clone()))?;
    let writer_figures = page_writer.figures();
    let page_writer = page_writer.start();
    let poller = poller::PollerActor::new(vault.clone(), page_writer.clone().recipient(), config.poll, config.usage);
    let poll_figures = poller.figures();
    let poller = poller.start();
    let api_keys = api_keys::ApiKeyActor::new(store.clone())?.start();
    Ok(Actors {
        sessions,
        vault,
        subscriptions,
        page_writer,
        poller,
        api_keys,
        outbox,
        store: store.clone(),
        pages_dir,
        published: Published { writer: writer_figures, outbox: outbox_figures, app_subscription, poll: poll_figures },
    })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// The UTC calendar date and time of unix seconds: `(year, month, day, hour, minute,
/// second)` (Howard Hinnant's days-to-civil, proleptic Gregorian), for the few places
/// that print a timestamp without a date library.
pub fn civil_utc(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}
