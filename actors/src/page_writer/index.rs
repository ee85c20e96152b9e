//! The writer's in-memory view of the `page_state` tree, for `/metrics` and health:
//! how many Pages are in each status, and the Pages that are kept in sync ordered by
//! their last successful sync. Built once at start-up by reading the tree, then kept
//! up to date on every record write and removal. The counts live in the writer's
//! [`WriterFigures`] (atomics), and every change also stores the first element of the
//! `BTreeSet` (the stalest success) there, so a scrape reads a few atomics without a
//! message and without scanning any Page.
//!
//! Which Pages the order holds: those with a successful sync behind them
//! (`last_success` set) whose status says pagesync is expected to keep them current:
//! `synced`, `error`, `rate_limited`, and `pending` (reconnected after a successful
//! sync, waiting for the next one). `needs_reauth` and `disconnected` Pages are left
//! out: nothing pagesync does can sync them until their owner connects again (they are
//! counted in `pagesync_pages{status}` instead), and keeping them would hold the
//! stalest age up for good. A Page that never synced has no age to report; it shows
//! as `pending` or `error` in the counts.

use std::collections::BTreeSet;

use super::figures::WriterFigures;
use crate::ids::PageId;
use crate::messages::{PageState, SyncStatus};

/// What the index needs from one `page_state` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub status: SyncStatus,
    /// Unix seconds of the last successful sync, if there was one.
    pub last_success: Option<u64>,
}

impl Entry {
    pub fn of_state(state: &PageState) -> Entry {
        Entry { status: state.status, last_success: state.last_success }
    }

    /// The entry of a raw record (JSON), if it parses; only the two fields are read.
    pub fn of_raw(raw: &[u8]) -> Option<Entry> {
        #[derive(serde::Deserialize)]
        struct Fields {
            status: SyncStatus,
            #[serde(default)]
            last_success: Option<u64>,
        }
        serde_json::from_slice::<Fields>(raw).ok().map(|f| Entry { status: f.status, last_success: f.last_success })
    }

    /// The key of this Page in the order, when it belongs there (see the module docs).
    fn ordered_at(&self) -> Option<u64> {
        match self.status {
            SyncStatus::NeedsReauth | SyncStatus::Disconnected => None,
            SyncStatus::Pending | SyncStatus::Synced | SyncStatus::Error | SyncStatus::RateLimited => self.last_success,
        }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct SyncIndex {
    /// Records in each status, and the stalest success, published (the counts are
    /// kept there and nowhere else).
    figures: WriterFigures,
    /// `(last_success, page)` of every Page kept in sync: the first is the stalest.
    /// The Page id breaks ties and makes each element unique.
    by_last_success: BTreeSet<(u64, PageId)>,
}

impl SyncIndex {
    /// An empty index that keeps its counts in `figures`.
    pub fn publishing(figures: WriterFigures) -> Self {
        SyncIndex { figures, by_last_success: BTreeSet::new() }
    }

    /// A record for `page` now exists with `entry`.
    pub fn add(&mut self, page: &PageId, entry: Entry) {
        if let Some(i) = status_index(entry.status) {
            self.figures.status_added(i);
        }
        if let Some(at) = entry.ordered_at()
            && self.by_last_success.insert((at, page.clone()))
        {
            self.publish_stalest();
        }
    }

    /// Start-up: a raw `page_state` record (key: the Page id; value: JSON) found in the
    /// tree. `false` (and nothing counted) when the key or the value does not parse.
    pub fn add_record(&mut self, key: &[u8], raw: &[u8]) -> bool {
        let page = std::str::from_utf8(key).ok().and_then(|k| PageId::parse(k).ok());
        match (page, Entry::of_raw(raw)) {
            (Some(page), Some(entry)) => {
                self.add(&page, entry);
                true
            }
            _ => false,
        }
    }

    /// The record of `page` that held `entry` was replaced or removed.
    pub fn remove(&mut self, page: &PageId, entry: Entry) {
        if let Some(i) = status_index(entry.status) {
            self.figures.status_removed(i);
        }
        // Cloning the id for the lookup key costs one small allocation; the set
        // holds owned ids so it needs no lifetime tied to the records.
        if let Some(at) = entry.ordered_at()
            && self.by_last_success.remove(&(at, page.clone()))
        {
            self.publish_stalest();
        }
    }

    /// Stores the first element's success in the figures (O(log n)).
    fn publish_stalest(&self) {
        self.figures.set_stalest(self.by_last_success.first().map(|(at, _)| *at));
    }

    /// Pages in each status, in `SyncStatus::ALL` order.
    pub fn counts(&self) -> impl Iterator<Item = (SyncStatus, u64)> + '_ {
        self.figures.pages_by_status().into_iter()
    }

    /// The Page kept in sync whose last successful sync is the oldest, and when that
    /// was (unix seconds); `None` when no Page qualifies.
    pub fn stalest(&self) -> Option<(u64, &PageId)> {
        self.by_last_success.first().map(|(at, page)| (*at, page))
    }
}

fn status_index(status: SyncStatus) -> Option<usize> {
    SyncStatus::ALL.iter().position(|s| *s == status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(id: &str) -> PageId {
        PageId::parse(id).unwrap()
    }

    fn entry(status: SyncStatus, last_success: Option<u64>) -> Entry {
        Entry { status, last_success }
    }

    fn count(index: &SyncIndex, status: SyncStatus) -> u64 {
        index.counts().find(|(s, _)| *s == status).map(|(_, n)| n).unwrap()
    }

    #[test]
    fn the_stalest_page_is_the_one_with_the_oldest_success() {
        let mut index = SyncIndex::default();
        assert_eq!(index.stalest(), None);
        index.add(&page("1"), entry(SyncStatus::Synced, Some(300)));
        index.add(&page("2"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("3"), entry(SyncStatus::Synced, Some(200)));
        assert_eq!(index.stalest(), Some((100, &page("2"))));
    }

    #[test]
    fn a_new_success_moves_the_page_to_the_back() {
        let mut index = SyncIndex::default();
        index.add(&page("1"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("2"), entry(SyncStatus::Synced, Some(200)));
        // What the writer does on a record write: the old entry out, the new one in.
        index.remove(&page("1"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("1"), entry(SyncStatus::Synced, Some(300)));
        assert_eq!(index.stalest(), Some((200, &page("2"))));
        assert_eq!(count(&index, SyncStatus::Synced), 2);
    }

    #[test]
    fn failing_pages_keep_their_age_and_grow_stale() {
        let mut index = SyncIndex::default();
        index.add(&page("1"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("2"), entry(SyncStatus::Synced, Some(200)));
        for status in [SyncStatus::Error, SyncStatus::RateLimited, SyncStatus::Pending] {
            index.remove(&page("1"), entry(SyncStatus::Synced, Some(100)));
            index.add(&page("1"), entry(status, Some(100)));
            assert_eq!(index.stalest(), Some((100, &page("1"))), "{status:?}");
            index.remove(&page("1"), entry(status, Some(100)));
            index.add(&page("1"), entry(SyncStatus::Synced, Some(100)));
        }
    }

    #[test]
    fn needs_reauth_and_disconnected_pages_leave_the_order_but_stay_counted() {
        let mut index = SyncIndex::default();
        index.add(&page("1"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("2"), entry(SyncStatus::Synced, Some(200)));
        index.remove(&page("1"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("1"), entry(SyncStatus::NeedsReauth, Some(100)));
        assert_eq!(index.stalest(), Some((200, &page("2"))));
        index.remove(&page("2"), entry(SyncStatus::Synced, Some(200)));
        index.add(&page("2"), entry(SyncStatus::Disconnected, Some(200)));
        assert_eq!(index.stalest(), None);
        assert_eq!(count(&index, SyncStatus::NeedsReauth), 1);
        assert_eq!(count(&index, SyncStatus::Disconnected), 1);
        assert_eq!(count(&index, SyncStatus::Synced), 0);
        // Reconnected: pending, with its old success, is back in the order.
        index.remove(&page("1"), entry(SyncStatus::NeedsReauth, Some(100)));
        index.add(&page("1"), entry(SyncStatus::Pending, Some(100)));
        assert_eq!(index.stalest(), Some((100, &page("1"))));
    }

    #[test]
    fn pages_never_synced_have_no_age() {
        let mut index = SyncIndex::default();
        index.add(&page("1"), entry(SyncStatus::Pending, None));
        index.add(&page("2"), entry(SyncStatus::Error, None));
        assert_eq!(index.stalest(), None);
        assert_eq!(count(&index, SyncStatus::Pending), 1);
        assert_eq!(count(&index, SyncStatus::Error), 1);
    }

    #[test]
    fn a_removed_page_leaves_both_the_counts_and_the_order() {
        let mut index = SyncIndex::default();
        index.add(&page("1"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("2"), entry(SyncStatus::Synced, Some(100)));
        index.remove(&page("1"), entry(SyncStatus::Synced, Some(100)));
        // Same second: the other Page is still there.
        assert_eq!(index.stalest(), Some((100, &page("2"))));
        index.remove(&page("2"), entry(SyncStatus::Synced, Some(100)));
        assert_eq!(index.stalest(), None);
        assert_eq!(count(&index, SyncStatus::Synced), 0);
        // A stray removal never underflows.
        index.remove(&page("2"), entry(SyncStatus::Synced, Some(100)));
        assert_eq!(count(&index, SyncStatus::Synced), 0);
    }

    #[test]
    fn start_up_builds_the_index_from_the_records_and_skips_malformed_ones() {
        let mut index = SyncIndex::default();
        let record = |status: SyncStatus, last_success: Option<u64>| {
            serde_json::to_vec(&PageState { status, last_success, ..PageState::default() }).unwrap()
        };
        assert!(index.add_record(b"10", &record(SyncStatus::Synced, Some(500))));
        assert!(index.add_record(b"11", &record(SyncStatus::Error, Some(400))));
        assert!(index.add_record(b"12", &record(SyncStatus::NeedsReauth, Some(1))));
        assert!(index.add_record(b"13", &record(SyncStatus::Pending, None)));
        assert!(!index.add_record(b"../x", &record(SyncStatus::Synced, Some(2))));
        assert!(!index.add_record(&[0xff], &record(SyncStatus::Synced, Some(2))));
        assert!(!index.add_record(b"14", b"{"));
        assert_eq!(index.stalest(), Some((400, &page("11"))));
        let counts: Vec<u64> = index.counts().map(|(_, n)| n).collect();
        // pending, synced, error, rate_limited, needs_reauth, disconnected
        assert_eq!(counts, vec![1, 1, 1, 0, 1, 0]);
    }

    #[test]
    fn the_published_figures_follow_the_index() {
        let figures = WriterFigures::default();
        let mut index = SyncIndex::publishing(figures.clone());
        let published = |index: &SyncIndex| {
            assert_eq!(figures.stalest_success(), index.stalest().map(|(at, _)| at));
            figures.pages_by_status()
        };
        index.add(&page("1"), entry(SyncStatus::Synced, Some(300)));
        index.add(&page("2"), entry(SyncStatus::Synced, Some(100)));
        assert_eq!(figures.stalest_success(), Some(100));
        published(&index);
        index.remove(&page("2"), entry(SyncStatus::Synced, Some(100)));
        index.add(&page("2"), entry(SyncStatus::NeedsReauth, Some(100)));
        assert_eq!(figures.stalest_success(), Some(300));
        let counts = published(&index);
        assert_eq!(counts.iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![0, 1, 0, 0, 1, 0]);
        index.remove(&page("1"), entry(SyncStatus::Synced, Some(300)));
        assert_eq!(figures.stalest_success(), None);
        published(&index);
    }

    #[test]
    fn entries_are_read_from_raw_records() {
        let state = PageState { status: SyncStatus::Synced, last_success: Some(42), ..PageState::default() };
        let raw = serde_json::to_vec(&state).unwrap();
        assert_eq!(Entry::of_raw(&raw), Some(Entry::of_state(&state)));
        assert_eq!(Entry::of_raw(br#"{"status":"pending"}"#), Some(entry(SyncStatus::Pending, None)));
        assert_eq!(Entry::of_raw(b"not json"), None);
        assert_eq!(Entry::of_raw(br#"{"status":"bogus"}"#), None);
    }
}
