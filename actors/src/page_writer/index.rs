//! The writer's in-memory view of the `page_state` tree, for `/metrics` and health:
//! how many Pages are in each status, and when the Pages that are kept in sync last
//! synced successfully, ordered. Kept up to date on every record write and removal.
//! The counts live in the writer's [`WriterFigures`] (atomics), and every change also
//! stores the oldest success there, so a scrape reads a few atomics without a message
//! and without scanning any Page.
//!
//! The order is a multiset of seconds (`BTreeMap<second, Pages>`), not a set of
//! Pages: `/metrics` needs only the oldest second, and the multiset costs at most one
//! small entry per distinct second (12 bytes and the map's overhead) instead of a
//! Page id per Page, which at 100,000 Pages was ~8 MiB of the daemon's memory.
//!
//! Where it comes from at start-up: the form [`SyncIndex::encode`] writes at a clean
//! stop, if there is one (see `PageWriterActor::new`); else one read of every
//! `page_state` record ([`SyncIndex::add_record`]). The read costs time and, with
//! sled, memory that stays (sled keeps what it read: ~27 MiB at 100,000 Pages).
//!
//! Which Pages the order holds: those with a successful sync behind them
//! (`last_success` set) whose status says pagesync is expected to keep them current:
//! `synced`, `error`, `rate_limited`, and `pending` (reconnected after a successful
//! sync, waiting for the next one). `needs_reauth` and `disconnected` Pages are left
//! out: nothing pagesync does can sync them until their owner connects again (they are
//! counted in `pagesync_pages{status}` instead), and keeping them would hold the
//! stalest age up for good. A Page that never synced has no age to report; it shows
//! as `pending` or `error` in the counts.

use std::collections::BTreeMap;

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

    /// The second of this Page in the order, when it belongs there (see the module
    /// docs).
    fn ordered_at(&self) -> Option<u64> {
        if kept_in_sync(self.status) { self.last_success } else { None }
    }
}

/// Whether Pages in `status` are in the order (see the module docs).
fn kept_in_sync(status: SyncStatus) -> bool {
    match status {
        SyncStatus::NeedsReauth | SyncStatus::Disconnected => false,
        SyncStatus::Pending | SyncStatus::Synced | SyncStatus::Error | SyncStatus::RateLimited => true,
    }
}

/// The version byte of [`SyncIndex::encode`]'s form; another value is not read.
const SAVED_VERSION: u8 = 1;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct SyncIndex {
    /// Records in each status, and the stalest success, published (the counts are
    /// kept there and nowhere else).
    figures: WriterFigures,
    /// Second of the last success -> how many Pages kept in sync have it: the first
    /// key is the stalest.
    by_last_success: BTreeMap<u64, u64>,
}

impl SyncIndex {
    /// An empty index that keeps its counts in `figures`.
    pub fn publishing(figures: WriterFigures) -> Self {
        SyncIndex { figures, by_last_success: BTreeMap::new() }
    }

    /// A record now exists with `entry`.
    pub fn add(&mut self, entry: Entry) {
        if let Some(i) = status_index(entry.status) {
            self.figures.status_added(i);
        }
        if let Some(at) = entry.ordered_at() {
            let n = self.by_last_success.entry(at).or_default();
            *n = n.saturating_add(1);
            self.publish_stalest();
        }
    }

    /// Start-up: a raw `page_state` record (key: the Page id; value: JSON) found in the
    /// tree. `false` (and nothing counted) when the key or the value does not parse.
    pub fn add_record(&mut self, key: &[u8], raw: &[u8]) -> bool {
        let page = std::str::from_utf8(key).ok().and_then(|k| PageId::parse(k).ok());
        match (page, Entry::of_raw(raw)) {
            (Some(_), Some(entry)) => {
                self.add(entry);
                true
            }
            _ => false,
        }
    }

    /// A record that held `entry` was replaced or removed. A stray removal (of an
    /// entry never added) changes nothing and never underflows.
    pub fn remove(&mut self, entry: Entry) {
        if let Some(i) = status_index(entry.status) {
            self.figures.status_removed(i);
        }
        if let Some(at) = entry.ordered_at()
            && let Some(n) = self.by_last_success.get_mut(&at)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_last_success.remove(&at);
            }
            self.publish_stalest();
        }
    }

    /// Stores the first key in the figures (O(log n)).
    fn publish_stalest(&self) {
        self.figures.set_stalest(self.stalest());
    }

    /// Pages in each status, in `SyncStatus::ALL` order.
    pub fn counts(&self) -> impl Iterator<Item = (SyncStatus, u64)> + '_ {
        self.figures.pages_by_status().into_iter()
    }

    /// When the Page kept in sync whose last successful sync is the oldest synced
    /// (unix seconds); `None` when no Page qualifies.
    pub fn stalest(&self) -> Option<u64> {
        self.by_last_success.keys().next().copied()
    }

    /// The index as bytes, saved at a clean stop: the version, the number of statuses,
    /// each status's count, then each (second, Pages) of the order; big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let counts: Vec<u64> = self.counts().map(|(_, n)| n).collect();
        let mut out = Vec::with_capacity(2 + 8 * counts.len() + 16 * self.by_last_success.len());
        out.push(SAVED_VERSION);
        out.push(u8::try_from(counts.len()).unwrap_or(u8::MAX));
        for n in counts {
            out.extend_from_slice(&n.to_be_bytes());
        }
        for (at, n) in &self.by_last_success {
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(&n.to_be_bytes());
        }
        out
    }

    /// The index [`SyncIndex::encode`] wrote, publishing into `figures`; `None` (and
    /// `figures` untouched) when `raw` is not exactly such a form for this build's
    /// statuses, or does not add up (more Pages in the order than the statuses that
    /// keep Pages in sync hold, seconds out of order, an empty second).
    pub fn decode(raw: &[u8], figures: WriterFigures) -> Option<SyncIndex> {
        let statuses = SyncStatus::ALL.len();
        let (&[version, listed], rest) = raw.split_first_chunk::<2>()?;
        if version != SAVED_VERSION || usize::from(listed) != statuses || rest.len() < 8 * statuses {
            return None;
        }
        let (counts_raw, order_raw) = rest.split_at(8 * statuses);
        if order_raw.len() % 16 != 0 {
            return None;
        }
        let be = |b: &[u8]| b.try_into().ok().map(u64::from_be_bytes);
        let counts: Vec<u64> = counts_raw.chunks_exact(8).map(be).collect::<Option<_>>()?;
        let mut by_last_success = BTreeMap::new();
        let mut previous: Option<u64> = None;
        let mut ordered: u64 = 0;
        for pair in order_raw.chunks_exact(16) {
            let (at, n) = (be(&pair[..8])?, be(&pair[8..])?);
            if n == 0 || previous.is_some_and(|p| p >= at) {
                return None;
            }
            previous = Some(at);
            ordered = ordered.checked_add(n)?;
            by_last_success.insert(at, n);
        }
        let keepable = SyncStatus::ALL
            .iter()
            .zip(&counts)
            .filter(|(s, _)| kept_in_sync(**s))
            .try_fold(0u64, |sum, (_, n)| sum.checked_add(*n))?;
        if ordered > keepable {
            return None;
        }
        for (i, n) in counts.iter().enumerate() {
            figures.set_status_count(i, *n);
        }
        let index = SyncIndex { figures, by_last_success };
        index.publish_stalest();
        Some(index)
    }
}

fn status_index(status: SyncStatus) -> Option<usize> {
    SyncStatus::ALL.iter().position(|s| *s == status)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        index.add(entry(SyncStatus::Synced, Some(300)));
        index.add(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::Synced, Some(200)));
        assert_eq!(index.stalest(), Some(100));
    }

    #[test]
    fn a_new_success_moves_the_page_to_the_back() {
        let mut index = SyncIndex::default();
        index.add(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::Synced, Some(200)));
        // What the writer does on a record write: the old entry out, the new one in.
        index.remove(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::Synced, Some(300)));
        assert_eq!(index.stalest(), Some(200));
        assert_eq!(count(&index, SyncStatus::Synced), 2);
    }

    #[test]
    fn failing_pages_keep_their_age_and_grow_stale() {
        let mut index = SyncIndex::default();
        index.add(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::Synced, Some(200)));
        for status in [SyncStatus::Error, SyncStatus::RateLimited, SyncStatus::Pending] {
            index.remove(entry(SyncStatus::Synced, Some(100)));
            index.add(entry(status, Some(100)));
            assert_eq!(index.stalest(), Some(100), "{status:?}");
            index.remove(entry(status, Some(100)));
            index.add(entry(SyncStatus::Synced, Some(100)));
        }
    }

    #[test]
    fn needs_reauth_and_disconnected_pages_leave_the_order_but_stay_counted() {
        let mut index = SyncIndex::default();
        index.add(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::Synced, Some(200)));
        index.remove(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::NeedsReauth, Some(100)));
        assert_eq!(index.stalest(), Some(200));
        index.remove(entry(SyncStatus::Synced, Some(200)));
        index.add(entry(SyncStatus::Disconnected, Some(200)));
        assert_eq!(index.stalest(), None);
        assert_eq!(count(&index, SyncStatus::NeedsReauth), 1);
        assert_eq!(count(&index, SyncStatus::Disconnected), 1);
        assert_eq!(count(&index, SyncStatus::Synced), 0);
        // Reconnected: pending, with its old success, is back in the order.
        index.remove(entry(SyncStatus::NeedsReauth, Some(100)));
        index.add(entry(SyncStatus::Pending, Some(100)));
        assert_eq!(index.stalest(), Some(100));
    }

    #[test]
    fn pages_never_synced_have_no_age() {
        let mut index = SyncIndex::default();
        index.add(entry(SyncStatus::Pending, None));
        index.add(entry(SyncStatus::Error, None));
        assert_eq!(index.stalest(), None);
        assert_eq!(count(&index, SyncStatus::Pending), 1);
        assert_eq!(count(&index, SyncStatus::Error), 1);
    }

    #[test]
    fn a_removed_page_leaves_both_the_counts_and_the_order() {
        let mut index = SyncIndex::default();
        index.add(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::Synced, Some(100)));
        index.remove(entry(SyncStatus::Synced, Some(100)));
        // Same second: the other Page is still there.
        assert_eq!(index.stalest(), Some(100));
        index.remove(entry(SyncStatus::Synced, Some(100)));
        assert_eq!(index.stalest(), None);
        assert_eq!(count(&index, SyncStatus::Synced), 0);
        // A stray removal never underflows.
        index.remove(entry(SyncStatus::Synced, Some(100)));
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
        assert_eq!(index.stalest(), Some(400));
        let counts: Vec<u64> = index.counts().map(|(_, n)| n).collect();
        // pending, synced, error, rate_limited, needs_reauth, disconnected
        assert_eq!(counts, vec![1, 1, 1, 0, 1, 0]);
    }

    #[test]
    fn the_published_figures_follow_the_index() {
        let figures = WriterFigures::default();
        let mut index = SyncIndex::publishing(figures.clone());
        let published = |index: &SyncIndex| {
            assert_eq!(figures.stalest_success(), index.stalest());
            figures.pages_by_status()
        };
        index.add(entry(SyncStatus::Synced, Some(300)));
        index.add(entry(SyncStatus::Synced, Some(100)));
        assert_eq!(figures.stalest_success(), Some(100));
        published(&index);
        index.remove(entry(SyncStatus::Synced, Some(100)));
        index.add(entry(SyncStatus::NeedsReauth, Some(100)));
        assert_eq!(figures.stalest_success(), Some(300));
        let counts = published(&index);
        assert_eq!(counts.iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![0, 1, 0, 0, 1, 0]);
        index.remove(entry(SyncStatus::Synced, Some(300)));
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

    /// An index with the given (status, last success) entries added, publishing into
    /// its own figures.
    fn built(entries: &[(SyncStatus, Option<u64>)]) -> SyncIndex {
        let mut index = SyncIndex::default();
        for (status, at) in entries {
            index.add(entry(*status, *at));
        }
        index
    }

    #[test]
    fn the_saved_form_reads_back_as_the_same_index() {
        let index = built(&[
            (SyncStatus::Synced, Some(300)),
            (SyncStatus::Synced, Some(300)),
            (SyncStatus::Error, Some(100)),
            (SyncStatus::NeedsReauth, Some(5)),
            (SyncStatus::Pending, None),
        ]);
        let figures = WriterFigures::default();
        let mut back = SyncIndex::decode(&index.encode(), figures.clone()).expect("reads back");
        assert_eq!(back.counts().collect::<Vec<_>>(), index.counts().collect::<Vec<_>>());
        assert_eq!((back.stalest(), figures.stalest_success()), (Some(100), Some(100)));
        assert_eq!(back.encode(), index.encode());
        // And it goes on working: both Pages of second 300 are there.
        back.remove(entry(SyncStatus::Error, Some(100)));
        back.remove(entry(SyncStatus::Synced, Some(300)));
        assert_eq!(back.stalest(), Some(300));
        back.remove(entry(SyncStatus::Synced, Some(300)));
        assert_eq!((back.stalest(), figures.stalest_success()), (None, None));
        assert_eq!(
            SyncIndex::decode(&SyncIndex::default().encode(), WriterFigures::default()).map(|i| i.stalest()),
            Some(None)
        );
    }

    #[test]
    fn a_saved_form_that_does_not_add_up_is_refused() {
        let good = built(&[(SyncStatus::Synced, Some(300)), (SyncStatus::Synced, Some(400))]).encode();
        let statuses = SyncStatus::ALL.len();
        let order_at = 2 + 8 * statuses;
        let mut refused: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("version only", vec![1]),
            ("another version", [&[2u8][..], &good[1..]].concat()),
            ("another number of statuses", [&[1u8, 7][..], &good[2..]].concat()),
            ("counts cut short", good[..order_at - 1].to_vec()),
            ("an order entry cut short", good[..good.len() - 1].to_vec()),
        ];
        let mut unsorted = good.clone();
        let (first, second) = unsorted[order_at..].split_at_mut(16);
        first.swap_with_slice(second);
        refused.push(("seconds out of order", unsorted));
        let mut empty_second = good.clone();
        empty_second[order_at + 8..order_at + 16].copy_from_slice(&0u64.to_be_bytes());
        refused.push(("a second with no Page", empty_second));
        let mut too_many = good.clone();
        too_many[order_at + 8..order_at + 16].copy_from_slice(&5u64.to_be_bytes());
        refused.push(("more Pages in the order than statuses that keep them", too_many));
        let mut overflow = good.clone();
        overflow[order_at + 8..order_at + 16].copy_from_slice(&u64::MAX.to_be_bytes());
        refused.push(("a count that overflows the sum", overflow));
        for (what, raw) in refused {
            let figures = WriterFigures::default();
            assert!(SyncIndex::decode(&raw, figures.clone()).is_none(), "{what} was read");
            assert!(figures.pages_by_status().iter().all(|(_, n)| *n == 0), "{what} touched the figures");
        }
        assert!(SyncIndex::decode(&good, WriterFigures::default()).is_some());
    }
}
