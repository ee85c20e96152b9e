//! PollerActor's messages and replies: the daily re-sync, on demand and its counters.

use actix::Message;
use serde::Serialize;

/// Start a poll run now (unless one is running). Replies whether one was started.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct PollNow;

/// Counters of the poller.
#[derive(Debug, Message)]
#[rtype(result = "PollStats")]
pub struct GetPollStats;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollStats {
    /// Poll runs finished since start.
    pub runs: u64,
    /// Refreshes that a poll run asked for.
    pub refreshes: u64,
    /// Of those, how many wrote `page_data.json`.
    pub written: u64,
    /// A run is in progress.
    pub running: bool,
    /// Refreshes the poll delayed because Graph usage was high.
    pub slowed: u64,
}
