//! Every message the actors take and every reply they give: the crate's public contract.
//!
//! HTTP handlers and the CLI talk to the actors only through these types. Ids arrive
//! already parsed ([`PageId`], [`UserId`]); secrets arrive wrapped ([`Secret`]).

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::ids::{PageId, UserId};
use crate::seal::SealError;
use crate::secret::Secret;
use crate::store::StoreError;

/// Answers at once; readiness checks send it to every actor with a timeout.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Stop the actor: a writer stops starting refreshes (what is unfinished stays in the
/// inbox for the next start), then the actor stops. Sent once the HTTP server drained.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

// ----- TokenVaultActor -------------------------------------------------------------

/// What the vault can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored token could not be opened: {0}")]
    Seal(#[from] SealError),
}

/// Seal and store a Page's token and bind the Page to its owner. A Page that moves to
/// another merchant is re-bound (one owner per Page). Durable before the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), VaultError>")]
pub struct StorePageToken {
    pub page: PageId,
    pub owner: UserId,
    pub token: Secret,
}

/// The Page's token and owner, or `None` for a Page nobody connected.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<PageCredentials>, VaultError>")]
pub struct GetPageToken {
    pub page: PageId,
}

/// A Page's opened token and its owner.
#[derive(Debug, Clone)]
pub struct PageCredentials {
    pub owner: UserId,
    pub token: Secret,
}

/// Forget a Page's token and owner. Idempotent.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), VaultError>")]
pub struct ForgetPage {
    pub page: PageId,
}

/// Every connected Page with its owner, in Page id order.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(PageId, UserId)>, VaultError>")]
pub struct ListPages;

// ----- PageWriterActor -------------------------------------------------------------

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
    /// The Pages the delivery's entries name, duplicates allowed.
    pub pages: Vec<PageId>,
}

/// Proof that a delivery is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Inbox sequence number; `None` when the delivery named no Page (nothing to store).
    pub seq: Option<u64>,
    /// Distinct Pages queued for a refresh.
    pub pages: usize,
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
    /// Refreshes that ended in an error since start.
    pub refresh_errors: u64,
    /// Page mentions skipped because no token is stored for the Page.
    pub unknown_pages: u64,
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
        }
    }
}
