//! Readiness: is the store open, and does every actor answer? Asked live by
//! `GET /readyz` and by the systemd watchdog at start-up; its own module so that
//! start-up does not reach into a route handler for it.
//!
//! `/metrics` exposes the same check as `pagesync_ready`, but a scrape must not wait
//! for seven pings behind the page writer's deliveries. So a background task
//! ([`watch`]) runs the check every [`CHECK_EVERY`] and stores the result in a
//! [`Readiness`]; a scrape reads it ([`Readiness::for_scrape`]) and checks live only
//! when no result is younger than [`FRESH_FOR`] (just after start, or when the task
//! itself cannot run because the actors' thread is stuck — then the live check is the
//! honest answer, and it is bounded by one [`PING_TIMEOUT`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pagesync_actors::messages::Ping;
use pagesync_actors::{Actors, Store};

/// How long an actor may take to answer a readiness ping (`/readyz`, `pagesync_ready`).
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the background task checks readiness for `/metrics`: a scrape every
/// 15 s or so sees a result at most this old (plus the check's own time).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The oldest stored result a scrape uses. The task stores one every `CHECK_EVERY`
/// plus at most `PING_TIMEOUT` (the pings run at once); the rest is slack for a busy
/// thread. Older means the task is not running, so the scrape checks live instead.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// What is not ready: the store if it does not answer a read, and every actor that
/// does not answer a ping within `timeout`. Empty when all is well. The actors are
/// pinged at once, so the answer takes at most one `timeout`.
pub async fn not_ready(store: &Store, actors: &Actors, timeout: Duration) -> Vec<&'static str> {
    let answered = |result: Result<(), actix::MailboxError>| result.is_ok();
    let (vault, sessions, subscriptions, page_writer, poller, outbox, api_keys) = tokio::join!(
        actors.vault.send(Ping).timeout(timeout),
        actors.sessions.send(Ping).timeout(timeout),
        actors.subscriptions.send(Ping).timeout(timeout),
        actors.page_writer.send(Ping).timeout(timeout),
        actors.poller.send(Ping).timeout(timeout),
        actors.outbox.addr.send(Ping).timeout(timeout),
        actors.api_keys.send(Ping).timeout(timeout),
    );
    let mut not_ready = Vec::new();
    if !store.is_open() {
        not_ready.push("store");
    }
    for (name, result) in [
        ("token_vault", vault),
        ("sessions", sessions),
        ("subscriptions", subscriptions),
        ("page_writer", page_writer),
        ("poller", poller),
        ("outbox", outbox),
        ("api_keys", api_keys),
    ] {
        if !answered(result) {
            not_ready.push(name);
        }
    }
    not_ready
}

/// The last readiness result and when it was had. Cheap to clone; every clone shares
/// the result.
#[derive(Debug, Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// What the times below count from.
    epoch: Instant,
    /// One word, so a reader never pairs a result with another check's time:
    /// `(ms since epoch + 1) << 1 | ready`; 0 before the first result.
    last: AtomicU64,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness { inner: Arc::new(Inner { epoch: Instant::now(), last: AtomicU64::new(0) }) }
    }
}

impl Readiness {
    /// Stores a result had at `at`.
    pub fn record_at(&self, ready: bool, at: Instant) {
        let ms = u64::try_from(at.saturating_duration_since(self.inner.epoch).as_millis()).unwrap_or(u64::MAX >> 2);
        let word = ((ms.min(u64::MAX >> 2) + 1) << 1) | u64::from(ready);
        self.inner.last.store(word, Ordering::Relaxed);
    }

    /// Stores a result had now.
    pub fn record(&self, ready: bool) {
        self.record_at(ready, Instant::now());
    }

    /// The stored result if it was had at most `max_age` before `now`.
    pub fn fresh_at(&self, max_age: Duration, now: Instant) -> Option<bool> {
        let word = self.inner.last.load(Ordering::Relaxed);
        let ms = (word >> 1).checked_sub(1)?;
        let at = self.inner.epoch.checked_add(Duration::from_millis(ms))?;
        (now.saturating_duration_since(at) <= max_age).then_some(word & 1 == 1)
    }

    /// `pagesync_ready`: the background task's result when fresh, else a live check
    /// (which is stored for the next scrape).
    pub async fn for_scrape(&self, store: &Store, actors: &Actors) -> bool {
        if let Some(ready) = self.fresh_at(FRESH_FOR, Instant::now()) {
            return ready;
        }
        let ready = not_ready(store, actors, PING_TIMEOUT).await.is_empty();
        self.record(ready);
        ready
    }
}

/// Runs the readiness check every `every` and stores each result, until dropped
/// (start-up spawns it and aborts it at stop).
pub async fn watch(readiness: Readiness, store: Store, actors: Actors, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    // A check that took long is not followed by a burst of catch-up checks.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let missing = not_ready(&store, &actors, PING_TIMEOUT).await;
        readiness.record(missing.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_result_is_used_only_while_fresh() {
        let readiness = Readiness::default();
        let start = readiness.inner.epoch;
        assert_eq!(readiness.fresh_at(FRESH_FOR, start), None, "nothing checked yet");
        readiness.record_at(true, start + Duration::from_secs(10));
        assert_eq!(readiness.fresh_at(FRESH_FOR, start + Duration::from_secs(12)), Some(true));
        assert_eq!(readiness.fresh_at(FRESH_FOR, start + Duration::from_secs(15)), Some(true));
        assert_eq!(readiness.fresh_at(FRESH_FOR, start + Duration::from_millis(15_001)), None, "stale");
        readiness.record_at(false, start + Duration::from_secs(20));
        assert_eq!(readiness.clone().fresh_at(FRESH_FOR, start + Duration::from_secs(21)), Some(false));
        // A result at the epoch itself is a result, not "none".
        let at_epoch = Readiness::default();
        at_epoch.record_at(true, at_epoch.inner.epoch);
        assert_eq!(at_epoch.fresh_at(FRESH_FOR, at_epoch.inner.epoch), Some(true));
        // A reading "before" the result (another thread's clock) is fresh, not a panic.
        assert_eq!(readiness.fresh_at(FRESH_FOR, start), Some(false));
    }
}
