//! What the page writer publishes as it works, for readers that must not wait in its
//! mailbox: `/metrics` and the systemd status line read a [`WriterFigures`] directly,
//! from any thread, while the writer's mailbox may hold thousands of deliveries.
//!
//! Each figure is an atomic written where the value changes, on the writer's thread:
//! the counters when a refresh ends, the queue figures by the scheduler
//! (`schedule.rs`) after each change of its state, Pages by status and the stalest
//! success by the index (`index.rs`) on every `page_state` write. They are the
//! writer's own numbers, not copies: [`GetWriterStats`](crate::messages::GetWriterStats)
//! and [`CountPagesByStatus`](crate::messages::CountPagesByStatus) answer from the same
//! atomics, so a message and a scrape cannot disagree.
//!
//! A reader loads the figures one by one (`Relaxed`): each is a value the writer held,
//! but two of them may come from either side of one change (a refresh that just ended
//! may already be out of `running` and not yet in `pages_written`). For gauges and
//! counters scraped every few seconds that is the usual contract; nothing decides on
//! two figures together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::messages::{SyncStatus, WriterStats};

/// See the module docs. Cheap to clone (one `Arc`); every clone reads the same figures.
#[derive(Debug, Clone, Default)]
pub struct WriterFigures {
    inner: Arc<Inner>,
}

/// The stalest-success slot when no Page qualifies. A real `last_success` is unix
/// seconds, which will not reach this value.
const NO_STALEST: u64 = u64::MAX;

#[derive(Debug)]
struct Inner {
    /// Deliveries accepted since start (`WriterStats::accepted`).
    accepted: AtomicU64,
    /// Refreshes since start by how they ended (`pagesync_page_refreshes_total{result}`):
    /// `page_data.json` changed and was rewritten,
    pages_written: AtomicU64,
    /// the answer equalled the file (left untouched),
    pages_unchanged: AtomicU64,
    /// Graph refused or failed, or pagesync's own failure,
    refresh_errors: AtomicU64,
    /// no token stored for the Page (nobody connected it),
    unknown_pages: AtomicU64,
    /// not attempted: the Page is `needs_reauth` or `disconnected`.
    refreshes_skipped: AtomicU64,
    /// Deliveries the scheduler tracks, the start-up replay's one among them while it
    /// is registered (see [`WriterFigures::inbox_depth`]).
    deliveries: AtomicU64,
    /// Refreshes running now.
    running: AtomicU64,
    /// Pages waiting for a refresh slot or for a back-off to end.
    waiting_pages: AtomicU64,
    /// The replay's delivery is registered with the scheduler (counted in
    /// `deliveries`, but it stands for `replay_left` records, not one).
    replay_active: AtomicBool,
    /// The replay's scan of the inbox has not ended: records it has not read yet are
    /// unknown, not absent, so the depth counts at least one.
    replay_scanning: AtomicBool,
    /// Replayed inbox records read and not yet removed. Also decremented by the
    /// blocking task that removes them, off the writer's thread.
    replay_left: AtomicU64,
    /// `page_state` records in each status, in `SyncStatus::ALL` order.
    by_status: [AtomicU64; SyncStatus::ALL.len()],
    /// `last_success` of the stalest Page kept in sync ([`NO_STALEST`]: none).
    stalest: AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            accepted: AtomicU64::new(0),
            pages_written: AtomicU64::new(0),
            pages_unchanged: AtomicU64::new(0),
            refresh_errors: AtomicU64::new(0),
            unknown_pages: AtomicU64::new(0),
            refreshes_skipped: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            running: AtomicU64::new(0),
            waiting_pages: AtomicU64::new(0),
            replay_active: AtomicBool::new(false),
            replay_scanning: AtomicBool::new(false),
            replay_left: AtomicU64::new(0),
            by_status: Default::default(),
            stalest: AtomicU64::new(NO_STALEST),
        }
    }
}

/// How a refresh ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Written,
    Unchanged,
    Error,
    UnknownPage,
    Skipped,
}

impl WriterFigures {
    /// Counters, queue depths and running refreshes, as `GetWriterStats` answers them.
    pub fn stats(&self) -> WriterStats {
        let i = &*self.inner;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WriterStats {
            inbox_depth: usize::try_from(self.inbox_depth()).unwrap_or(usize::MAX),
            running: usize::try_from(load(&i.running)).unwrap_or(usize::MAX),
            waiting_pages: usize::try_from(load(&i.waiting_pages)).unwrap_or(usize::MAX),
            accepted: load(&i.accepted),
            pages_written: load(&i.pages_written),
            pages_unchanged: load(&i.pages_unchanged),
            refresh_errors: load(&i.refresh_errors),
            unknown_pages: load(&i.unknown_pages),
            refreshes_skipped: load(&i.refreshes_skipped),
        }
    }

    /// Deliveries acknowledged and not yet fully processed: the scheduler's, with the
    /// start-up replay's records counted one by one (at least one while its scan has
    /// not ended).
    pub fn inbox_depth(&self) -> u64 {
        let i = &*self.inner;
        let scheduled = i.deliveries.load(Ordering::Relaxed);
        let replay_slot = u64::from(i.replay_active.load(Ordering::Relaxed));
        let mut left = i.replay_left.load(Ordering::Relaxed);
        if i.replay_scanning.load(Ordering::Relaxed) {
            left = left.max(1);
        }
        scheduled.saturating_sub(replay_slot).saturating_add(left)
    }

    /// Pages with a sync state in each status, in `SyncStatus::ALL` order.
    pub fn pages_by_status(&self) -> Vec<(SyncStatus, u64)> {
        SyncStatus::ALL.iter().copied().zip(self.inner.by_status.iter().map(|n| n.load(Ordering::Relaxed))).collect()
    }

    /// Unix seconds of the last successful sync of the stalest Page kept in sync (see
    /// `index.rs` for which Pages count); `None` when no Page qualifies.
    pub fn stalest_success(&self) -> Option<u64> {
        Some(self.inner.stalest.load(Ordering::Relaxed)).filter(|s| *s != NO_STALEST)
    }

    // Writers: the page writer's own thread only (plus `replay_left`, see there).

    pub(super) fn accepted(&self) {
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn ended(&self, how: Ended) {
        let i = &*self.inner;
        let counter = match how {
            Ended::Written => &i.pages_written,
            Ended::Unchanged => &i.pages_unchanged,
            Ended::Error => &i.refresh_errors,
            Ended::UnknownPage => &i.unknown_pages,
            Ended::Skipped => &i.refreshes_skipped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The scheduler's state after a change.
    pub(super) fn set_queue(&self, deliveries: usize, running: usize, waiting_pages: usize) {
        let i = &*self.inner;
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        i.deliveries.store(as_u64(deliveries), Ordering::Relaxed);
        i.running.store(as_u64(running), Ordering::Relaxed);
        i.waiting_pages.store(as_u64(waiting_pages), Ordering::Relaxed);
    }

    pub(super) fn set_replay(&self, active: bool, scanning: bool) {
        self.inner.replay_active.store(active, Ordering::Relaxed);
        self.inner.replay_scanning.store(scanning, Ordering::Relaxed);
    }

    /// `records` more replayed records were read.
    pub(super) fn replay_read(&self, records: u64) {
        self.inner.replay_left.fetch_add(records, Ordering::Relaxed);
    }

    /// One replayed record was removed from the inbox (from the blocking task that
    /// removes them).
    pub(super) fn replay_removed(&self) {
        let _ =
            self.inner.replay_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Every replayed record is gone.
    pub(super) fn replay_cleared(&self) {
        self.inner.replay_left.store(0, Ordering::Relaxed);
    }

    /// One more `page_state` record in `status` (index of `SyncStatus::ALL`).
    pub(super) fn status_added(&self, index: usize) {
        if let Some(n) = self.inner.by_status.get(index) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One `page_state` record fewer in `status`; never below zero.
    pub(super) fn status_removed(&self, index: usize) {
        if let Some(n) = self.inner.by_status.get(index) {
            let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
        }
    }

    /// `n` `page_state` records in `status` (index of `SyncStatus::ALL`): the counts
    /// of an index restored at start-up.
    pub(super) fn set_status_count(&self, index: usize, n: u64) {
        if let Some(count) = self.inner.by_status.get(index) {
            count.store(n, Ordering::Relaxed);
        }
    }

    pub(super) fn set_stalest(&self, last_success: Option<u64>) {
        self.inner.stalest.store(last_success.unwrap_or(NO_STALEST), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_depth_counts_replayed_records_instead_of_the_replays_slot() {
        let figures = WriterFigures::default();
        figures.set_queue(3, 0, 0);
        assert_eq!(figures.inbox_depth(), 3);
        // The replay is registered (one of the three) and its scan runs: unknown
        // records count as one.
        figures.set_replay(true, true);
        assert_eq!(figures.inbox_depth(), 3);
        figures.replay_read(10);
        assert_eq!(figures.inbox_depth(), 12);
        figures.set_replay(true, false);
        figures.replay_removed();
        assert_eq!(figures.inbox_depth(), 11);
        figures.set_queue(2, 0, 0);
        figures.set_replay(false, false);
        figures.replay_cleared();
        assert_eq!(figures.inbox_depth(), 2);
        // Never below zero, whatever order the stores land in.
        figures.set_queue(0, 0, 0);
        figures.set_replay(true, false);
        figures.replay_removed();
        assert_eq!(figures.inbox_depth(), 0);
    }

    #[test]
    fn counts_never_go_below_zero_and_the_stalest_slot_can_be_empty() {
        let figures = WriterFigures::default();
        figures.status_added(1);
        figures.status_removed(1);
        figures.status_removed(1);
        figures.status_added(99);
        assert!(figures.pages_by_status().iter().all(|(_, n)| *n == 0));
        assert_eq!(figures.stalest_success(), None);
        figures.set_stalest(Some(0));
        assert_eq!(figures.stalest_success(), Some(0));
        figures.set_stalest(None);
        assert_eq!(figures.stalest_success(), None);
    }
}
