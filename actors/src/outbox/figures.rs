//! What the outbox publishes as it works, for readers that must not wait in its
//! mailbox (`/metrics`): pending and dead items by kind, attempts since start, and when
//! the oldest pending item was queued. Each is an atomic the outbox actor writes where
//! the value changes (on its own thread); [`GetOutboxStats`](super::GetOutboxStats)
//! and the operator's listing answer from the same atomics.
//!
//! Read one by one (`Relaxed`): each figure is one the outbox held, two may come from
//! either side of one change (an item just delivered may be out of `pending` and not
//! yet in `delivered`). The oldest item's age is computed by the reader from its queue
//! time, so it grows between changes as a clock does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ItemKind, OutboxStats};

/// See the module docs. Cheap to clone; every clone reads the same figures.
#[derive(Debug, Clone, Default)]
pub struct OutboxFigures {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Forwards in the `outbox` tree that the actor knows of (an item committed by
    /// another actor counts once its `Enqueued` arrives): `pagesync_outbox_pending`.
    pending_forwards: AtomicU64,
    /// Events likewise.
    pending_events: AtomicU64,
    /// Forwards in `outbox_dead`: `pagesync_outbox_dead`.
    dead_forwards: AtomicU64,
    /// Events likewise.
    dead_events: AtomicU64,
    /// Attempts since start that got a 2xx: `pagesync_outbox_attempts_total`.
    delivered: AtomicU64,
    /// Attempts since start that failed (each retry counts).
    failed: AtomicU64,
    /// Items dead-lettered since start.
    dead_lettered: AtomicU64,
    /// Unix ms at which the first record of the `outbox` tree (the oldest pending
    /// item: sequence numbers grow with time) was queued; 0 when the tree is empty.
    oldest_queued_ms: AtomicU64,
}

impl OutboxFigures {
    /// The figures as `GetOutboxStats` answers them, the oldest age taken at `now_ms`
    /// (unix ms; a clock set back gives 0, never an underflow).
    pub fn stats_at(&self, now_ms: u64) -> OutboxStats {
        let i = &*self.inner;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let oldest = load(&i.oldest_queued_ms);
        OutboxStats {
            pending_forwards: load(&i.pending_forwards),
            pending_events: load(&i.pending_events),
            dead_forwards: load(&i.dead_forwards),
            dead_events: load(&i.dead_events),
            delivered: load(&i.delivered),
            failed: load(&i.failed),
            dead_lettered: load(&i.dead_lettered),
            oldest_age_seconds: if oldest == 0 { 0 } else { now_ms.saturating_sub(oldest) / 1000 },
        }
    }

    /// The figures now.
    pub fn stats(&self) -> OutboxStats {
        self.stats_at(super::unix_ms())
    }

    // Writers: the outbox actor's thread only.

    fn pending(&self, kind: ItemKind) -> &AtomicU64 {
        match kind {
            ItemKind::Forward => &self.inner.pending_forwards,
            ItemKind::Event => &self.inner.pending_events,
        }
    }

    fn dead(&self, kind: ItemKind) -> &AtomicU64 {
        match kind {
            ItemKind::Forward => &self.inner.dead_forwards,
            ItemKind::Event => &self.inner.dead_events,
        }
    }

    pub(super) fn pending_added(&self, kind: ItemKind) {
        self.pending(kind).fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn pending_removed(&self, kind: ItemKind) {
        decrement(self.pending(kind));
    }

    pub(super) fn dead_added(&self, kind: ItemKind) {
        self.dead(kind).fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn dead_removed(&self, kind: ItemKind) {
        decrement(self.dead(kind));
    }

    pub(super) fn delivered(&self) {
        self.inner.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self) {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn dead_lettered(&self) {
        self.inner.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// The oldest pending item was queued at `queued_ms` (`None`: nothing pending).
    pub(super) fn set_oldest(&self, queued_ms: Option<u64>) {
        // A queue time of 0 (the epoch) would read as "none"; 1 ms later is the same age.
        self.inner.oldest_queued_ms.store(queued_ms.map_or(0, |ms| ms.max(1)), Ordering::Relaxed);
    }
}

/// One fewer; never below zero.
fn decrement(n: &AtomicU64) {
    let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_age_is_computed_when_read_and_never_underflows() {
        let figures = OutboxFigures::default();
        assert_eq!(figures.stats_at(10_000).oldest_age_seconds, 0, "nothing pending");
        figures.set_oldest(Some(4_000));
        assert_eq!(figures.stats_at(10_000).oldest_age_seconds, 6);
        assert_eq!(figures.stats_at(70_500).oldest_age_seconds, 66, "it grows without a change");
        assert_eq!(figures.stats_at(1_000).oldest_age_seconds, 0, "a clock set back");
        figures.set_oldest(None);
        assert_eq!(figures.stats_at(10_000).oldest_age_seconds, 0);
    }

    #[test]
    fn counts_by_kind_never_go_below_zero() {
        let figures = OutboxFigures::default();
        figures.pending_added(ItemKind::Event);
        figures.pending_removed(ItemKind::Forward);
        figures.dead_removed(ItemKind::Event);
        let stats = figures.stats_at(0);
        assert_eq!((stats.pending_forwards, stats.pending_events, stats.dead_events), (0, 1, 0));
    }
}
