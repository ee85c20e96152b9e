//! PageWriterActor's messages and replies: webhook deliveries into the inbox, refreshes
//! on demand, and each Page's sync state.

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::ids::{PageId, ShopDomain};
use crate::store::StoreError;

/// What accepting a delivery can fail with.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("pagesync is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A verified webhook delivery's Pages. The reply comes once the delivery is durably in
/// the inbox; refreshing happens afterwards. Built only from a signature-checked body
/// (see `Verified<Delivery>` in the binary crate).
#[derive(Debug, Message)]
#[rtype(result = "Result<Receipt, InboxError>")]
pub struct AcceptDelivery {
    /// The Pages whose entries ask for a refresh, duplicates allowed.
    pub pages: Vec<PageId>,
    /// The delivery as the bot must receive it, when relaying is on: committed in the
    /// same group commit as the inbox record.
    pub forward: Option<Forward>,
}

/// A verified Meta delivery to relay to the bot byte for byte.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The outbox lane: the first entry's Page id, else `object:<object>`.
    pub lane: String,
    /// `Content-Type` and Meta's signature headers exactly as received.
    pub headers: Vec<(String, String)>,
    /// The raw body Meta signed.
    pub body: bytes::Bytes,
}

/// Proof that a delivery is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Inbox sequence number; `None` when no record was written: the delivery named
    /// no Page to refresh, or every Page it named was covered (a refresh already
    /// queued behind a record in the inbox; see the page writer's docs).
    pub seq: Option<u64>,
    /// Distinct Pages it asks to refresh (covered ones included).
    pub pages: usize,
    /// Whether a forward to the bot was committed with it.
    pub forwarded: bool,
}

/// Refresh a Page now, through the same per-Page queue as webhook deliveries (so a
/// webhook and this never write one Page at once). Replies `true` once the refresh
/// wrote `page_data.json`, `false` if it failed (a retry may follow in the background).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct SyncNow {
    pub page: PageId,
}

/// The daily re-sync's refresh of one Page: like [`SyncNow`], but the Page token is
/// first checked with `/debug_token`; a token Meta calls invalid, of another app or
/// of another Page makes the Page `needs_reauth` without a fetch.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct PollPage {
    pub page: PageId,
}

/// The Page was (re)connected: clears `needs_reauth` / `disconnected` so it is fetched
/// again, lifts a deletion tombstone, remembers the merchant's shop and emits
/// `page.connected`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PageConnected {
    pub page: PageId,
    /// The merchant's shop, carried by the Page's events.
    pub shop: Option<ShopDomain>,
    /// The Page's name as Meta listed it at connect.
    pub name: Option<String>,
}

/// Marks Pages `disconnected` (their tokens are gone); they are no longer fetched.
/// Emits `page.disconnected` with `reason` for each Page that was not already.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MarkDisconnected {
    pub pages: Vec<PageId>,
    /// Why, for the event: `deauthorized` or `data_deletion`.
    pub reason: &'static str,
}

/// Deletes Pages' sync state and `facebook/<id>/` folders; a refresh still running
/// for one of them has its result discarded. Replies once the folders are gone.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeletePages {
    pub pages: Vec<PageId>,
}

/// Each Page's sync state and the `name` and `category` in its `page_data.json`, in
/// the order asked (the dashboard, `/api/v1/pages`, `pagesync pages`). One message for
/// a whole screen or slice: the states are point lookups and the few files read, all
/// by one task on the blocking pool, so a 1,000-row slice costs the writer's mailbox
/// one short turn, not a thousand reads on the actors' thread.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PageSummary>")]
pub struct DescribePages {
    pub pages: Vec<PageId>,
}

/// What `DescribePages` answers for one Page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PageSummary {
    pub state: Option<PageState>,
    /// `name` from `page_data.json`, when the file exists.
    pub name: Option<String>,
    /// `category` from `page_data.json`, when the file has one.
    pub category: Option<String>,
}

/// A Page's sync state, or `None` if it was never seen.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<PageState>, StoreError>")]
pub struct GetPageState {
    pub page: PageId,
}

/// Counters and queue depths of the writer.
#[derive(Debug, Message)]
#[rtype(result = "WriterStats")]
pub struct GetWriterStats;

/// A snapshot of the writer's work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    /// Deliveries acknowledged and not yet fully processed (the inbox's size).
    pub inbox_depth: usize,
    /// Refreshes running now.
    pub running: usize,
    /// Pages waiting for a refresh slot or a back-off to end.
    pub waiting_pages: usize,
    /// Deliveries accepted since start.
    pub accepted: u64,
    /// `page_data.json` files written since start.
    pub pages_written: u64,
    /// Refreshes whose answer equalled the file already on disk (left untouched).
    pub pages_unchanged: u64,
    /// Refreshes that ended in an error since start.
    pub refresh_errors: u64,
    /// Page mentions skipped because no token is stored for the Page.
    pub unknown_pages: u64,
    /// Refreshes not attempted because the Page is `needs_reauth` or `disconnected`.
    pub refreshes_skipped: u64,
}

/// Where a Page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Connected, never fetched yet.
    Pending,
    /// The last refresh wrote `page_data.json`.
    Synced,
    /// The last refresh failed; the next delivery or poll tries again.
    Error,
    /// Meta asked us to slow down; a refresh is scheduled after the pause.
    RateLimited,
    /// Meta refused the token: no fetches until the owner connects again.
    NeedsReauth,
    /// The owner removed the app; the Page is kept but not fetched.
    Disconnected,
}

impl SyncStatus {
    /// Every status, in the order dashboards and metrics list them.
    pub const ALL: [SyncStatus; 6] = [
        SyncStatus::Pending,
        SyncStatus::Synced,
        SyncStatus::Error,
        SyncStatus::RateLimited,
        SyncStatus::NeedsReauth,
        SyncStatus::Disconnected,
    ];

    /// The name used in JSON, metrics labels and the dashboard.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::Synced => "synced",
            SyncStatus::Error => "error",
            SyncStatus::RateLimited => "rate_limited",
            SyncStatus::NeedsReauth => "needs_reauth",
            SyncStatus::Disconnected => "disconnected",
        }
    }
}

/// How many Pages have a sync state in each status (for `/metrics`).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(SyncStatus, u64)>, StoreError>")]
pub struct CountPagesByStatus;

/// When the Page whose last successful sync is the oldest, among the Pages pagesync
/// keeps in sync (those that synced at least once and are not `needs_reauth` or
/// `disconnected`, see `page_writer::index`), last synced. Answered from an ordered
/// index kept in memory, so it costs O(log n) whatever the number of Pages. `None`
/// when no Page qualifies.
#[derive(Debug, Message)]
#[rtype(result = "Option<StalestSync>")]
pub struct GetStalestSync;

/// What [`GetStalestSync`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StalestSync {
    /// Unix seconds of the oldest last successful sync.
    pub last_success: u64,
}

/// Per-Page sync state, kept in the `page_state` tree as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageState {
    pub status: SyncStatus,
    /// Unix seconds of the last successful write of `page_data.json`.
    pub last_success: Option<u64>,
    /// Unix seconds of the last refresh attempt, successful or not.
    pub last_attempt: Option<u64>,
    /// What went wrong last (never contains a token).
    pub last_error: Option<String>,
    /// The Graph error code of the last failure, if any.
    pub last_error_code: Option<i64>,
    /// Successful refreshes so far.
    pub refreshes: u64,
    /// The merchant's shop (for events), remembered at connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
    /// The ETag of the `page_data.json` content last announced in a `page.updated`
    /// event: an event is due whenever the file's ETag differs, so a crash between the
    /// file write and the event's commit is made up for by the next refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `name` and `category` of the `page_data.json` last written, so that lists (the
    /// dashboard, `/api/v1/pages`) need not read every Page's file. `None` in states
    /// written before this field existed, or when a value is too long to keep here:
    /// then the file is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<PageNames>,
}

/// What lists show of a Page's data (see [`PageState::names`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageNames {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl PageNames {
    /// The longest `name` or `category` kept in a sync state, in bytes. Meta's Page
    /// names are far shorter; a longer value (from a hostile or broken upstream) is not
    /// copied into every state read, the file is read instead.
    pub const MAX_LEN: usize = 256;

    /// The names of a Page's data, if both fit (see [`PageNames::MAX_LEN`]).
    pub fn of(data: &serde_json::Map<String, serde_json::Value>) -> Option<PageNames> {
        let text = |key: &str| data.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let names = PageNames { name: text("name"), category: text("category") };
        let fits = |v: &Option<String>| v.as_ref().is_none_or(|v| v.len() <= Self::MAX_LEN);
        (fits(&names.name) && fits(&names.category)).then_some(names)
    }
}

impl Default for PageState {
    fn default() -> Self {
        PageState {
            status: SyncStatus::Pending,
            last_success: None,
            last_attempt: None,
            last_error: None,
            last_error_code: None,
            refreshes: 0,
            shop: None,
            etag: None,
            names: None,
        }
    }
}
