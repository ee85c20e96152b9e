//! OutboxActor's messages and replies: items to deliver to the bot, the operator's
//! listing and retry of dead-lettered ones, and the counters.

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A Meta delivery relayed to `PAGESYNC_FORWARD_URL`.
    Forward,
    /// A pagesync event for `PAGESYNC_EVENTS_URL`.
    Event,
}

impl ItemKind {
    pub const ALL: [ItemKind; 2] = [ItemKind::Forward, ItemKind::Event];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Forward => "forward",
            ItemKind::Event => "event",
        }
    }
}

/// Items committed into the `outbox` tree: queue them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Enqueued {
    pub seq: u64,
    pub lane: String,
    pub kind: ItemKind,
    /// Unix ms it was queued (as in its record): the outbox keeps the oldest pending
    /// item's age current without reading the record back.
    pub queued_ms: u64,
}

/// Put dead-lettered items back in line (`pagesync outbox retry`): the named ids, or
/// every dead item with `all`. Replies how many were moved.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct RetryDead {
    pub ids: Vec<String>,
    pub all: bool,
}

/// Pending and dead items, oldest first, at most `limit` of each, with counts.
#[derive(Debug, Message)]
#[rtype(result = "Result<OutboxListing, StoreError>")]
pub struct ListOutbox {
    pub limit: usize,
}

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    pub id: String,
    pub kind: ItemKind,
    pub lane: String,
    pub state: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub age_seconds: u64,
}

/// What `ListOutbox` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxListing {
    pub stats: OutboxStats,
    pub items: Vec<OutboxRow>,
}

/// Counters of the outbox.
#[derive(Debug, Message)]
#[rtype(result = "OutboxStats")]
pub struct GetOutboxStats;

/// A snapshot of the outbox's work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    pub pending_forwards: u64,
    pub pending_events: u64,
    pub dead_forwards: u64,
    pub dead_events: u64,
    /// Attempts since start that got a 2xx.
    pub delivered: u64,
    /// Attempts since start that failed (each retry counts).
    pub failed: u64,
    /// Items dead-lettered since start.
    pub dead_lettered: u64,
    /// Age in seconds of the oldest pending item (0 when none).
    pub oldest_age_seconds: u64,
}
