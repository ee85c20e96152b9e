//! PageWriterActor: owns the webhook inbox, the per-Page sync state and every
//! `facebook/<page_id>/page_data.json`.
//!
//! Who sends what: the webhook route sends [`AcceptDelivery`] once a delivery's
//! signature checked out; readiness sends [`Ping`](crate::messages::Ping); startup sends [`Shutdown`](crate::messages::Shutdown) at the
//! end. The actor asks the TokenVaultActor for a Page's token and a [`PageSource`] for
//! the Page's data.
//!
//! Trees: `inbox` (sequence number -> the delivery's Page ids) and `page_state`
//! (Page id -> [`PageState`] as JSON).
//!
//! How work flows:
//! 1. A delivery is group-committed into the inbox; only then is the HTTP request
//!    answered. The Graph API is never called on the request path.
//! 2. Each of its Pages gets a refresh. Per Page at most one refresh runs, and at most
//!    one more is queued behind it: every delivery that arrives while a refresh runs
//!    joins the single queued one (a burst of N deliveries costs two fetches, not N).
//!    A delivery whose every Page already has that queued refresh, promised by a
//!    record already in the inbox, is *covered*: it needs no record of its own (the
//!    queued refresh starts after it arrived and the record stays until that refresh
//!    has run), so it is answered without a write. A burst of N costs two records, not
//!    N: inbox churn follows the refreshes, not the deliveries.
//! 3. A delivery leaves the inbox when every one of its Pages is done (written,
//!    unknown, or definitively failed). Deliveries still in the inbox at start-up are
//!    replayed, so an acknowledged delivery survives a crash.
//!
//! Network calls and file writes run as futures spawned on this actor's context (the
//! file write itself on the blocking pool): the mailbox keeps answering
//! `AcceptDelivery` while Graph is slow. At most `max_concurrent` refreshes run at once.
//!
//! The parts: [`schedule`] decides the order of work (a pure state machine: per-Page
//! running/waiting, the ready queue, back-off, when a delivery is done); `refresh`
//! does one refresh's I/O (vault, Graph, file); `files` is the page file I/O. This
//! file wires them: it owns the trees, the timers and the messages.
//!
//! Its counters, queue depths, Pages by status and stalest success are published as
//! they change in a [`WriterFigures`] (`figures.rs`), which `/metrics` reads without
//! a message: a scrape never waits behind the deliveries in this mailbox.

mod figures;
mod files;
mod handlers;
mod index;
mod records;
mod refresh;
pub mod schedule;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use self::figures::Ended;
pub use self::figures::WriterFigures;
pub use self::files::{PAGE_DIR_MODE, PAGE_FILE_MODE, etag_of, read_page_file, remove_leftovers, write_page_file};
use self::index::{Entry, SyncIndex};
use self::records::decode_pages;
use self::refresh::{Outcome, refresh};
use self::schedule::{Limits, Pump, Scheduler};
pub use self::schedule::{MAX_PAUSE, deadline_after};
use crate::graph::{FetchError, PageSource};
use crate::ids::PageId;
use crate::outbox::{Enqueued, ItemKind, OutboxHandle, event_body};
use crate::store::{Store, StoreError, trees};
use crate::token_vault::TokenVaultActor;

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `page_writer::<Message>` keeps working for callers.
pub use crate::messages::writer::*;

/// Tunables of the writer; defaults are what the daemon runs with.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// `PAGESYNC_DATA_DIR/facebook`.
    pub pages_dir: PathBuf,
    /// Refreshes running at once, across all Pages. Bounds sockets to Graph and
    /// memory; Graph's own limits are per Page, so a few dozen is plenty.
    pub max_concurrent: usize,
    /// First pause after a rate limit without `estimated_time_to_regain_access`, and
    /// after a refresh that stayed transient through the client's retries. Doubles per
    /// consecutive failure, with jitter.
    pub backoff_base: Duration,
    /// The longest such pause.
    pub backoff_cap: Duration,
    /// Consecutive transient failures after which a refresh is given up (status
    /// `error`; the next delivery or the daily poll tries again).
    pub max_transient_rounds: u32,
}

impl WriterConfig {
    /// The part of the configuration the scheduler applies.
    fn limits(&self) -> Limits {
        Limits {
            max_concurrent: self.max_concurrent,
            backoff_base: self.backoff_base,
            backoff_cap: self.backoff_cap,
            max_transient_rounds: self.max_transient_rounds,
        }
    }

    pub fn new(pages_dir: impl Into<PathBuf>) -> Self {
        WriterConfig {
            pages_dir: pages_dir.into(),
            max_concurrent: 32,
            backoff_base: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(3600),
            max_transient_rounds: 5,
        }
    }
}

/// See the module docs.
pub struct PageWriterActor {
    store: Store,
    inbox: sled::Tree,
    states: sled::Tree,
    vault: Addr<TokenVaultActor>,
    source: Arc<dyn PageSource>,
    config: WriterConfig,
    /// Next inbox key; starts after the highest key found at start-up.
    next_seq: u64,
    /// Next seq of a covered delivery (from [`COVERED_SEQ`]).
    next_covered: u64,
    /// The order of work: which Page refreshes next, back-offs, pending deliveries.
    schedule: Scheduler,
    /// Set by `Shutdown`: accept nothing, start nothing.
    draining: bool,
    /// The counters, depths and index figures, published for readers without a
    /// message (shared with `schedule` and `index`, which write their parts).
    figures: WriterFigures,
    /// The start-up replay of what the inbox held, while its scan runs.
    replay: Option<Replay>,
    /// Inbox records below this seq were there at start: the replay's.
    replay_boundary: u64,
    /// Whether the replay's delivery ([`REPLAY_SEQ`]) is registered with the scheduler.
    replay_active: bool,
    /// Pages deleted while a refresh for them may still be running: whatever that
    /// refresh writes is removed again. Lifted when the Page is connected again.
    tombstones: HashSet<PageId>,
    /// `writer_meta`: where the index is saved at a clean stop ([`SAVED_INDEX`]).
    meta: sled::Tree,
    /// Pages by status and Pages kept in sync by last success (`index.rs`): built once
    /// at start, then kept as `page_state` records change, so `/metrics` never scans.
    index: SyncIndex,
    /// Where relayed deliveries and events go; `None` when the bot gets neither.
    outbox: Option<OutboxHandle>,
    /// Names this process's temporary files, so the start-up sweep of leftovers from
    /// an earlier crash never takes a file a refresh of ours is writing.
    generation: u64,
}

/// The delivery the whole start-up replay counts as in the scheduler: done once every
/// Page the old inbox records name has been refreshed since the start. No real
/// delivery gets this seq (they count up from 0).
const REPLAY_SEQ: u64 = u64::MAX;

/// Seqs from here up (below [`REPLAY_SEQ`]) name covered deliveries: acknowledged
/// without an inbox record because each of their Pages already had a refresh queued
/// behind one (see `AcceptDelivery`). Inbox keys stay below it: a record with a key
/// at or above it was not written by this actor and is dropped at start.
const COVERED_SEQ: u64 = 1 << 63;

/// Whether `seq` names a record in the inbox (or the replay's records), as opposed to
/// a covered delivery.
fn has_record(seq: u64) -> bool {
    seq < COVERED_SEQ || seq == REPLAY_SEQ
}

/// Inbox records the replay reads per turn of the actor.
const REPLAY_CHUNK: usize = 4096;

/// The start-up replay: the inbox records below the boundary, read in chunks after the
/// actor started (start-up does not wait for them). Each Page they name is refreshed
/// once, which covers every one of those deliveries (the refresh reads Graph after
/// them); then the records are removed together. Memory grows with the distinct
/// Pages, not with the records.
struct Replay {
    /// The last seq read; the next chunk starts after it.
    cursor: Option<u64>,
    /// Pages already queued for the replay.
    seen: HashSet<PageId>,
    records: u64,
}

/// The key of the index saved at a clean stop in `writer_meta`.
const SAVED_INDEX: &[u8] = b"sync_index";

/// The index saved at the last clean stop, if there is one and it reads back; it is
/// removed from the store, durably, before anything else runs. Why both: the saved
/// index is true only of the `page_state` records as they were at that stop. Once
/// this writer changes one, a crash would leave a saved index that no longer adds up,
/// so it must be gone from disk first (sled recovers a prefix of the writes: a later
/// record change that survives a crash implies the removal did too). Without a saved
/// index (the first start, a crash, a damaged record), the caller reads every record.
fn take_saved_index(meta: &sled::Tree, figures: &WriterFigures) -> Result<Option<SyncIndex>, StoreError> {
    let Some(raw) = meta.remove(SAVED_INDEX)? else { return Ok(None) };
    meta.flush()?;
    let index = SyncIndex::decode(&raw, figures.clone());
    if index.is_none() {
        tracing::warn!("the page writer's saved index does not read back; reading every sync state instead");
    }
    Ok(index)
}

/// A Page's sync state from `states`; an unreadable record is logged and read as none
/// (a refresh then starts it afresh).
fn read_state(states: &sled::Tree, page: &PageId) -> Option<PageState> {
    match states.get(page.as_str()) {
        Ok(Some(raw)) => match serde_json::from_slice(&raw) {
            Ok(state) => Some(state),
            Err(e) => {
                tracing::warn!(page_id = %page, error = %e, "unreadable sync state; starting afresh");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::error!(page_id = %page, error = %e, "cannot read sync state");
            None
        }
    }
}

/// Reads the next chunk of the replay.
#[derive(Message)]
#[rtype(result = "()")]
struct ReplayChunk;

impl PageWriterActor {
    /// Opens the writer's trees; the inbox's records are read after start.
    pub fn new(
        store: Store,
        vault: Addr<TokenVaultActor>,
        source: Arc<dyn PageSource>,
        config: WriterConfig,
        outbox: Option<OutboxHandle>,
    ) -> Result<Self, StoreError> {
        let inbox = store.tree(trees::INBOX)?;
        let states = store.tree(trees::PAGE_STATE)?;
        // The next seq follows the last well-formed key; a malformed last key (never
        // written by this actor) is dropped.
        let mut next_seq = 0;
        while let Some((key, _)) = inbox.last()? {
            match <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes) {
                Ok(seq) if seq < COVERED_SEQ => {
                    next_seq = seq + 1;
                    break;
                }
                _ => {
                    tracing::warn!("dropping an inbox record with a malformed key");
                    inbox.remove(key)?;
                }
            }
        }
        let figures = WriterFigures::default();
        let meta = store.tree(trees::WRITER_META)?;
        let index = match take_saved_index(&meta, &figures)? {
            Some(index) => index,
            None => {
                let mut index = SyncIndex::publishing(figures.clone());
                for item in states.iter() {
                    let (key, raw) = item?;
                    if !index.add_record(&key, &raw) {
                        // Never written by this actor; left alone (and uncounted) rather
                        // than guessed at.
                        tracing::warn!("a page_state record with a malformed key or value");
                    }
                }
                index
            }
        };
        Ok(PageWriterActor {
            meta,
            outbox,
            index,
            generation: rand::random(),
            store,
            inbox,
            states,
            vault,
            source,
            schedule: Scheduler::publishing(config.limits(), figures.clone()),
            figures,
            config,
            next_seq,
            next_covered: COVERED_SEQ,
            draining: false,
            replay: None,
            replay_boundary: next_seq,
            replay_active: false,
            tombstones: HashSet::new(),
        })
    }

    /// The figures this writer publishes; take them before `start` and read them from
    /// anywhere (see `figures.rs`).
    pub fn figures(&self) -> WriterFigures {
        self.figures.clone()
    }

    /// Publishes where the start-up replay stands (for the inbox depth).
    fn publish_replay(&self) {
        self.figures.set_replay(self.replay_active, self.replay.is_some());
    }

    /// Registers an inbox delivery and schedules its Pages.
    fn enqueue(&mut self, seq: u64, pages: Vec<PageId>, ctx: &mut Context<Self>) {
        self.schedule.enqueue(seq, pages);
        self.pump(ctx);
    }

    /// Starts refreshes while there are free slots and nothing pauses us.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        match self.schedule.take_ready(Instant::now()) {
            Pump::Paused(None) => {}
            Pump::Paused(Some(wake_in)) => {
                ctx.run_later(wake_in, |act, ctx| {
                    act.schedule.woke();
                    act.pump(ctx);
                });
            }
            Pump::Start(started) => {
                for started in started {
                    self.start(started.page, started.check_token, ctx);
                }
            }
        }
    }

    /// Starts one refresh the scheduler let through.
    fn start(&mut self, page: PageId, check_token: bool, ctx: &mut Context<Self>) {
        let state = self.load_state(&page);
        if let Some(status) = state.as_ref().map(|s| s.status)
            && matches!(status, SyncStatus::NeedsReauth | SyncStatus::Disconnected)
        {
            // Left alone until the owner connects again; the deliveries are done.
            ctx.notify(Finished { page, outcome: Outcome::Skipped(status) });
            return;
        }
        let vault = self.vault.clone();
        let source = self.source.clone();
        let pages_dir = self.config.pages_dir.clone();
        let fut = refresh(vault, source, pages_dir, page.clone(), check_token, self.generation);
        ctx.spawn(fut.into_actor(self).map(move |outcome, act, ctx| act.finish(page, outcome, ctx)));
    }

    /// Records how a refresh ended (state, events, counters) and moves the Page on.
    fn finish(&mut self, page: PageId, outcome: Outcome, ctx: &mut Context<Self>) {
        let now = unix_now();
        let mut state = self.load_state(&page);
        let known = state.is_some() || !matches!(outcome, Outcome::UnknownPage);
        let previous = state.as_ref().map(|s| s.status);
        let mut st = state.take().unwrap_or_default();
        // Events this outcome reports, committed with the state below.
        let mut events: Vec<(&'static str, serde_json::Value)> = Vec::new();
        // `Some(delay)`: keep the deliveries and try this Page again after `delay`.
        let mut retry_after: Option<Duration> = None;
        match &outcome {
            Outcome::Written { changed, etag, names } => {
                if st.etag.as_deref() != Some(etag.as_str()) {
                    events
                        .push(("page.updated", serde_json::json!({ "page_id": page, "shop": st.shop, "etag": etag })));
                    st.etag = Some(etag.clone());
                }
                self.figures.ended(if *changed { Ended::Written } else { Ended::Unchanged });
                st.status = SyncStatus::Synced;
                st.last_attempt = Some(now);
                st.last_success = Some(now);
                st.last_error = None;
                st.last_error_code = None;
                st.refreshes += 1;
                st.names = names.clone();
                tracing::debug!(page_id = %page, "page_data.json written");
            }
            Outcome::UnknownPage => {
                self.figures.ended(Ended::UnknownPage);
                tracing::info!(page_id = %page, "delivery for a Page nobody connected; skipped");
            }
            Outcome::Skipped(status) => {
                self.figures.ended(Ended::Skipped);
                tracing::debug!(page_id = %page, ?status, "refresh skipped");
            }
            Outcome::Failed(err) => {
                self.figures.ended(Ended::Error);
                st.last_attempt = Some(now);
                st.last_error = Some(err.to_string());
                st.last_error_code = err.code();
                retry_after = self.schedule.after_failure(&page, err, Instant::now());
                match err {
                    FetchError::Auth { .. } => {
                        if st.status != SyncStatus::NeedsReauth {
                            events.push(("page.needs_reauth", serde_json::json!({ "page_id": page, "shop": st.shop })));
                        }
                        st.status = SyncStatus::NeedsReauth;
                        tracing::warn!(page_id = %page, error = %err, "token refused; Page needs its owner to reconnect");
                    }
                    FetchError::RateLimited { .. } => {
                        st.status = SyncStatus::RateLimited;
                        let delay_s = retry_after.unwrap_or_default().as_secs();
                        tracing::warn!(page_id = %page, error = %err, delay_s, "rate limited; pausing");
                    }
                    FetchError::Transient { .. } if retry_after.is_some() => {
                        st.status = SyncStatus::Error;
                        let delay_s = retry_after.unwrap_or_default().as_secs();
                        tracing::warn!(page_id = %page, error = %err, delay_s, "refresh failed; will retry");
                    }
                    FetchError::Transient { .. } | FetchError::Permanent { .. } => {
                        st.status = SyncStatus::Error;
                        tracing::warn!(page_id = %page, error = %err, "refresh failed");
                    }
                }
            }
            Outcome::Internal(detail) => {
                // Our own failure (a record that does not open, a disk error) says
                // nothing about the Page or its token: the status stays as it was.
                self.figures.ended(Ended::Error);
                st.last_attempt = Some(now);
                st.last_error = Some(detail.to_string());
                tracing::error!(page_id = %page, error = %detail, "refresh failed inside pagesync");
            }
        }
        if previous == Some(SyncStatus::Disconnected) && !matches!(outcome, Outcome::Skipped(_)) {
            // MarkDisconnected landed while this refresh ran: the tokens are gone and
            // that outranks whatever the refresh found.
            st.status = SyncStatus::Disconnected;
            events.retain(|(kind, _)| *kind != "page.needs_reauth");
        }
        let deleted = self.tombstones.contains(&page);
        if deleted && matches!(outcome, Outcome::Written { .. }) {
            // Deleted while this refresh ran: take back what it wrote.
            let dir = self.config.pages_dir.join(page.as_str());
            tokio::task::spawn_blocking(move || files::remove_page_dir(&dir));
        } else if known && !deleted {
            let announced = self.record_events(&page, events);
            self.save_state(&page, &st);
            self.announce(announced, ctx);
        }

        let written = matches!(outcome, Outcome::Written { .. }) && !deleted;
        let Some(finished) = self.schedule.finish(&page, written, retry_after) else { return };
        if let Some(delay) = finished.retry_in {
            ctx.run_later(delay, move |act, ctx| {
                act.schedule.requeue(page);
                act.pump(ctx);
            });
        }
        self.remove_from_inbox(finished.done);
        self.pump(ctx);
    }

    /// Reads one chunk of the replay, queues the Pages it names for the first time,
    /// and asks for the next chunk (or ends the scan).
    fn replay_chunk(&mut self, ctx: &mut Context<Self>) {
        use std::ops::Bound::{Excluded, Unbounded};
        let Some(replay) = self.replay.as_mut() else { return };
        let start = replay.cursor.map_or(Unbounded, |c| Excluded(c.to_be_bytes().to_vec()));
        let end = Excluded(self.replay_boundary.to_be_bytes().to_vec());
        let (mut read, mut records, mut fresh, mut malformed) = (0, 0, Vec::new(), Vec::new());
        for item in self.inbox.range::<Vec<u8>, _>((start, end)).take(REPLAY_CHUNK) {
            let (key, value) = match item {
                Ok(item) => item,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the inbox; the rest of the replay waits for a restart");
                    read = 0;
                    break;
                }
            };
            read += 1;
            let Ok(bytes) = <[u8; 8]>::try_from(key.as_ref()) else {
                malformed.push(key);
                continue;
            };
            replay.cursor = Some(u64::from_be_bytes(bytes));
            match decode_pages(&value) {
                Some(pages) => {
                    records += 1;
                    fresh.extend(pages.into_iter().filter(|page| replay.seen.insert(page.clone())));
                }
                None => malformed.push(key),
            }
        }
        replay.records += records;
        for key in malformed {
            tracing::warn!("dropping an inbox record with a malformed key or Page ids");
            if let Err(e) = self.inbox.remove(key) {
                tracing::error!(error = %e, "could not remove a malformed inbox record");
            }
        }
        self.figures.replay_read(records);
        self.schedule.add_pages(REPLAY_SEQ, fresh);
        self.pump(ctx);
        if read == REPLAY_CHUNK {
            ctx.notify(ReplayChunk);
            return;
        }
        if let Some(replay) = self.replay.take()
            && replay.records > 0
        {
            tracing::info!(
                deliveries = replay.records,
                pages = replay.seen.len(),
                "replaying deliveries left in the inbox"
            );
        }
        self.publish_replay();
        if self.schedule.release(REPLAY_SEQ) {
            self.finish_replay();
        }
    }

    /// Every Page of the replay is done: removes its records from the inbox, off the
    /// actor's thread. Not flushed: a removal lost in a crash means one more replay.
    fn finish_replay(&mut self) {
        self.replay_active = false;
        self.publish_replay();
        let (inbox, figures, boundary) = (self.inbox.clone(), self.figures.clone(), self.replay_boundary);
        tokio::task::spawn_blocking(move || {
            let keys = inbox.range::<Vec<u8>, _>(..boundary.to_be_bytes().to_vec()).keys();
            for key in keys {
                let removed = key.and_then(|key| inbox.remove(key));
                if let Err(e) = removed {
                    tracing::error!(error = %e, "could not remove replayed deliveries from the inbox");
                    return;
                }
                figures.replay_removed();
            }
            figures.replay_cleared();
        });
    }

    /// Deliveries not fully processed (see [`WriterFigures::inbox_depth`]).
    fn inbox_depth(&self) -> u64 {
        self.figures.inbox_depth()
    }

    /// Removes deliveries whose every Page is done from the inbox.
    fn remove_from_inbox(&mut self, done: Vec<u64>) {
        for seq in done {
            if seq == REPLAY_SEQ {
                self.finish_replay();
                continue;
            }
            if !has_record(seq) {
                continue;
            }
            // Not flushed on purpose: if this removal is lost in a crash, the delivery
            // is replayed and the Page refreshed once more, which is harmless.
            if let Err(e) = self.inbox.remove(seq.to_be_bytes()) {
                tracing::error!(seq, error = %e, "could not remove a finished delivery from the inbox");
            }
        }
    }

    fn load_state(&self, page: &PageId) -> Option<PageState> {
        read_state(&self.states, page)
    }

    fn save_state(&mut self, page: &PageId, state: &PageState) {
        let saved = serde_json::to_vec(state)
            .map_err(|e| e.to_string())
            .and_then(|v| self.states.insert(page.as_str(), v).map_err(|e| e.to_string()));
        match saved {
            Ok(previous) => {
                self.unindex(previous.as_deref());
                self.index.add(Entry::of_state(state));
            }
            Err(e) => tracing::error!(page_id = %page, error = %e, "cannot save sync state"),
        }
    }

    /// Writes `events` about `page` into the outbox tree now, before the state change
    /// they report is written: sled keeps a prefix of writes across a crash, so the
    /// change never survives without its events. Returns what to tell the outbox once
    /// a flush made both durable (see [`Self::announce`]). Nothing without events on.
    fn record_events(&self, page: &PageId, events: Vec<(&'static str, serde_json::Value)>) -> Vec<Enqueued> {
        let Some(outbox) = self.outbox.as_ref().filter(|o| o.events) else { return Vec::new() };
        let mut enqueued = Vec::with_capacity(events.len());
        for (kind, data) in events {
            let prepared = outbox.queue.prepare(ItemKind::Event, page.as_str(), Vec::new(), &event_body(kind, data));
            let (tree, key, value) = prepared.write;
            match tree.insert(key, value) {
                Ok(_) => enqueued.push(prepared.enqueued),
                Err(e) => tracing::error!(page_id = %page, kind, error = %e, "cannot record an event"),
            }
        }
        enqueued
    }

    /// Hands recorded events to the outbox once everything written so far is flushed.
    fn announce(&self, enqueued: Vec<Enqueued>, ctx: &mut Context<Self>) {
        let Some(outbox) = self.outbox.as_ref().filter(|_| !enqueued.is_empty()) else { return };
        let addr = outbox.addr.clone();
        let flush = self.store.flush();
        ctx.spawn(
            async move {
                if let Err(e) = flush.await {
                    // Still in the tree: sent after the next start at the latest.
                    tracing::error!(error = %e, "flush before handing events to the outbox failed");
                    return;
                }
                for item in enqueued {
                    addr.do_send(item);
                }
            }
            .into_actor(self),
        );
    }

    /// Saves the index for the next start (see [`take_saved_index`]); called by
    /// `Shutdown`, after which this writer changes no record. The store's final flush
    /// at stop makes it durable; a failure only costs the next start a full read.
    fn save_index(&self) {
        if let Err(e) = self.meta.insert(SAVED_INDEX, self.index.encode()) {
            tracing::warn!(error = %e, "cannot save the page writer's index; the next start reads every sync state");
        }
    }

    /// A `page_state` record `previous` left (replaced or removed): take it out of the
    /// index.
    fn unindex(&mut self, previous: Option<&[u8]>) {
        if let Some(entry) = previous.and_then(Entry::of_raw) {
            self.index.remove(entry);
        }
    }
}

/// Internal: a refresh that needed no network call has ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Finished {
    page: PageId,
    outcome: Outcome,
}

impl Handler<Finished> for PageWriterActor {
    type Result = ();
    fn handle(&mut self, msg: Finished, ctx: &mut Self::Context) {
        self.finish(msg.page, msg.outcome, ctx);
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Handler<ReplayChunk> for PageWriterActor {
    type Result = ();

    fn handle(&mut self, _: ReplayChunk, ctx: &mut Self::Context) {
        self.replay_chunk(ctx);
    }
}

impl Actor for PageWriterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Every webhook request waits in this mailbox; a deep one rides out bursts,
        // and when it is full the route answers 503 after its send timeout.
        ctx.set_mailbox_capacity(4096);
        let (pages_dir, generation) = (self.config.pages_dir.clone(), self.generation);
        tokio::task::spawn_blocking(move || match remove_leftovers(&pages_dir, generation) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed temporary files left by an interrupted write"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep leftover temporary files"),
        });
        if self.replay_boundary > 0 {
            self.schedule.hold(REPLAY_SEQ);
            self.replay_active = true;
            self.replay = Some(Replay { cursor: None, seen: HashSet::new(), records: 0 });
            self.publish_replay();
            ctx.notify(ReplayChunk);
        }
    }
}

#[cfg(test)]
mod tests;
