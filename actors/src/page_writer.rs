//! PageWriterActor: owns the webhook inbox, the per-Page sync state and every
//! `facebook/<page_id>/page_data.json`.
//!
//! Who sends what: the webhook route sends [`AcceptDelivery`] once a delivery's
//! signature checked out; readiness sends [`Ping`]; startup sends [`Shutdown`] at the
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
//! 3. A delivery leaves the inbox when every one of its Pages is done (written,
//!    unknown, or definitively failed). Deliveries still in the inbox at start-up are
//!    replayed, so an acknowledged delivery survives a crash.
//!
//! Network calls and file writes run as futures spawned on this actor's context (the
//! file write itself on the blocking pool): the mailbox keeps answering
//! `AcceptDelivery` while Graph is slow. At most `max_concurrent` refreshes run at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::graph::{FetchError, LimitScope, PageData, PageSource, TokenCheck};
use crate::ids::PageId;
use crate::messages::{GetPageToken, Ping, Shutdown};
use crate::outbox::{Enqueued, ItemKind, OutboxHandle, event_body};
use crate::store::{Store, StoreError, trees};
use crate::token_vault::TokenVaultActor;

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `page_writer::<Message>` keeps working for callers.
pub use crate::messages::writer::*;

/// The longest pause any upstream hint can impose on a Page or on the app. Meta's
/// `estimated_time_to_regain_access` is in minutes and in practice below an hour; a
/// larger number is a bug or an attack, and the daily poll retries anyway.
pub const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);

/// `now + delay`, saturating: an `Instant` sum that overflows would panic, and a
/// panic in a handler kills the actor for good.
pub fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(MAX_PAUSE)).or_else(|| now.checked_add(Duration::from_secs(3600))).unwrap_or(now)
}

/// Mode of `facebook/<id>/` folders: the daemon writes, its group (the bot) reads.
pub const PAGE_DIR_MODE: u32 = 0o750;
/// Mode of `page_data.json`.
pub const PAGE_FILE_MODE: u32 = 0o640;

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

/// Work state of one Page. Removed when the Page has nothing running or waiting.
#[derive(Debug, Default)]
struct PageWork {
    /// Deliveries covered by the refresh running now (`None`: nothing runs).
    running: Option<Vec<u64>>,
    /// Deliveries that arrived since that refresh started; one more refresh covers all.
    waiting: Vec<u64>,
    /// Already in the ready queue or in a timed back-off; never queued twice.
    scheduled: bool,
    /// Consecutive rate-limit or transient failures, for the back-off.
    streak: u32,
    /// `SyncNow` callers waiting for the next refresh.
    waiters: Vec<tokio::sync::oneshot::Sender<bool>>,
    /// `SyncNow` callers waiting for the refresh running now.
    running_waiters: Vec<tokio::sync::oneshot::Sender<bool>>,
    /// The next refresh checks the token with `/debug_token` first (a poll asked).
    check_token: bool,
}

/// How one refresh ended.
#[derive(Debug)]
enum Outcome {
    /// The Page's data is current on disk; `changed` when the file changed (an
    /// identical answer leaves the file untouched: no write, no fsync); `etag` is the
    /// file's ETag either way.
    Written {
        changed: bool,
        etag: String,
    },
    UnknownPage,
    Skipped(SyncStatus),
    Failed(FetchError),
    /// The vault could not answer (mailbox closed, store error); treated as transient.
    Internal(String),
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
    /// Deliveries in the inbox -> how many of their Pages are not done yet.
    deliveries: HashMap<u64, usize>,
    pages: HashMap<PageId, PageWork>,
    /// Pages waiting for a refresh slot, in arrival order.
    ready: VecDeque<PageId>,
    running: usize,
    /// Set by an app-wide rate limit: no refresh starts before this instant.
    app_paused_until: Option<Instant>,
    /// Whether a wake-up is already scheduled for the end of the app pause.
    app_wake_scheduled: bool,
    /// Set by `Shutdown`: accept nothing, start nothing.
    draining: bool,
    stats: WriterStats,
    /// Deliveries found in the inbox at start-up, queued in `started`.
    replay: Vec<(u64, Vec<PageId>)>,
    /// Pages deleted while a refresh for them may still be running: whatever that
    /// refresh writes is removed again. Lifted when the Page is connected again.
    tombstones: HashSet<PageId>,
    /// How many `page_state` records are in each status (index of `SyncStatus::ALL`):
    /// counted once at start, then kept as records change, so `/metrics` never scans.
    status_counts: [u64; SyncStatus::ALL.len()],
    /// Where relayed deliveries and events go; `None` when the bot gets neither.
    outbox: Option<OutboxHandle>,
    /// Names this process's temporary files, so the start-up sweep of leftovers from
    /// an earlier crash never takes a file a refresh of ours is writing.
    generation: u64,
}

impl PageWriterActor {
    /// Opens the writer's trees and reads what the inbox still holds.
    pub fn new(
        store: Store,
        vault: Addr<TokenVaultActor>,
        source: Arc<dyn PageSource>,
        config: WriterConfig,
        outbox: Option<OutboxHandle>,
    ) -> Result<Self, StoreError> {
        let inbox = store.tree(trees::INBOX)?;
        let states = store.tree(trees::PAGE_STATE)?;
        let mut replay = Vec::new();
        let mut next_seq = 0;
        for item in inbox.iter() {
            let (key, value) = item?;
            let seq = match <[u8; 8]>::try_from(key.as_ref()) {
                Ok(b) => u64::from_be_bytes(b),
                Err(_) => {
                    tracing::warn!("dropping an inbox record with a malformed key");
                    inbox.remove(key)?;
                    continue;
                }
            };
            next_seq = next_seq.max(seq + 1);
            match decode_pages(&value) {
                Some(pages) => replay.push((seq, pages)),
                None => {
                    tracing::warn!(seq, "dropping an inbox record with malformed Page ids");
                    inbox.remove(key)?;
                }
            }
        }
        let mut status_counts = [0u64; SyncStatus::ALL.len()];
        for item in states.iter() {
            let (_, raw) = item?;
            if let Some(i) = status_of(&raw).and_then(status_index) {
                status_counts[i] += 1;
            }
        }
        Ok(PageWriterActor {
            outbox,
            status_counts,
            generation: rand::random(),
            store,
            inbox,
            states,
            vault,
            source,
            config,
            next_seq,
            deliveries: HashMap::new(),
            pages: HashMap::new(),
            ready: VecDeque::new(),
            running: 0,
            app_paused_until: None,
            app_wake_scheduled: false,
            draining: false,
            stats: WriterStats::default(),
            replay,
            tombstones: HashSet::new(),
        })
    }

    /// Registers an inbox delivery and schedules its Pages.
    fn enqueue(&mut self, seq: u64, pages: Vec<PageId>, ctx: &mut Context<Self>) {
        self.deliveries.insert(seq, pages.len());
        for page in pages {
            let work = self.pages.entry(page.clone()).or_default();
            work.waiting.push(seq);
            if work.running.is_none() && !work.scheduled {
                work.scheduled = true;
                self.ready.push_back(page);
            }
        }
        self.pump(ctx);
    }

    /// Starts refreshes while there are free slots and nothing pauses us.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        if let Some(until) = self.app_paused_until {
            let now = Instant::now();
            if until > now {
                if !self.app_wake_scheduled {
                    self.app_wake_scheduled = true;
                    ctx.run_later(until - now, |act, ctx| {
                        act.app_wake_scheduled = false;
                        act.pump(ctx);
                    });
                }
                return;
            }
            self.app_paused_until = None;
        }
        while self.running < self.config.max_concurrent {
            let Some(page) = self.ready.pop_front() else { break };
            self.start(page, ctx);
        }
    }

    fn start(&mut self, page: PageId, ctx: &mut Context<Self>) {
        let Some(work) = self.pages.get_mut(&page) else { return };
        work.scheduled = false;
        work.running = Some(std::mem::take(&mut work.waiting));
        work.running_waiters = std::mem::take(&mut work.waiters);
        let check_token = std::mem::take(&mut work.check_token);
        self.running += 1;

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

    fn finish(&mut self, page: PageId, outcome: Outcome, ctx: &mut Context<Self>) {
        self.running = self.running.saturating_sub(1);
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
            Outcome::Written { changed, etag } => {
                if st.etag.as_deref() != Some(etag.as_str()) {
                    events
                        .push(("page.updated", serde_json::json!({ "page_id": page, "shop": st.shop, "etag": etag })));
                    st.etag = Some(etag.clone());
                }
                if *changed {
                    self.stats.pages_written += 1;
                } else {
                    self.stats.pages_unchanged += 1;
                }
                st.status = SyncStatus::Synced;
                st.last_attempt = Some(now);
                st.last_success = Some(now);
                st.last_error = None;
                st.last_error_code = None;
                st.refreshes += 1;
                tracing::debug!(page_id = %page, "page_data.json written");
            }
            Outcome::UnknownPage => {
                self.stats.unknown_pages += 1;
                tracing::info!(page_id = %page, "delivery for a Page nobody connected; skipped");
            }
            Outcome::Skipped(status) => {
                tracing::debug!(page_id = %page, ?status, "refresh skipped");
            }
            Outcome::Failed(err) => {
                self.stats.refresh_errors += 1;
                st.last_attempt = Some(now);
                st.last_error = Some(err.to_string());
                st.last_error_code = err.code();
                let streak = self.pages.get(&page).map(|w| w.streak).unwrap_or(0);
                match err {
                    FetchError::Auth { .. } => {
                        if st.status != SyncStatus::NeedsReauth {
                            events.push(("page.needs_reauth", serde_json::json!({ "page_id": page, "shop": st.shop })));
                        }
                        st.status = SyncStatus::NeedsReauth;
                        tracing::warn!(page_id = %page, error = %err, "token refused; Page needs its owner to reconnect");
                    }
                    FetchError::RateLimited { scope, retry_after: hint, .. } => {
                        st.status = SyncStatus::RateLimited;
                        // Meta's hint is a number from upstream: never trust it to fit.
                        let delay = hint.unwrap_or_else(|| self.backoff(streak)).min(MAX_PAUSE);
                        if *scope == LimitScope::App {
                            let until = deadline_after(Instant::now(), delay);
                            self.app_paused_until = Some(self.app_paused_until.map_or(until, |u| u.max(until)));
                        }
                        tracing::warn!(page_id = %page, error = %err, delay_s = delay.as_secs(), "rate limited; pausing");
                        retry_after = Some(delay);
                    }
                    FetchError::Transient { .. } if streak + 1 < self.config.max_transient_rounds => {
                        st.status = SyncStatus::Error;
                        let delay = self.backoff(streak);
                        tracing::warn!(page_id = %page, error = %err, delay_s = delay.as_secs(), "refresh failed; will retry");
                        retry_after = Some(delay);
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
                self.stats.refresh_errors += 1;
                st.last_attempt = Some(now);
                st.last_error = Some(detail.clone());
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
            tokio::task::spawn_blocking(move || remove_page_dir(&dir));
        } else if known && !deleted {
            let announced = self.record_events(&page, events);
            self.save_state(&page, &st);
            self.announce(announced, ctx);
        }

        let Some(work) = self.pages.get_mut(&page) else { return };
        let written = matches!(outcome, Outcome::Written { .. }) && !deleted;
        for waiter in work.running_waiters.drain(..) {
            let _ = waiter.send(written);
        }
        let covered = work.running.take().unwrap_or_default();
        if let Some(delay) = retry_after {
            work.streak = work.streak.saturating_add(1);
            // Put the covered deliveries back in front; they are not done.
            let mut waiting = covered;
            waiting.append(&mut work.waiting);
            work.waiting = waiting;
            if !work.scheduled {
                work.scheduled = true;
                let page = page.clone();
                ctx.run_later(delay, move |act, ctx| {
                    act.ready.push_back(page);
                    act.pump(ctx);
                });
            }
        } else {
            work.streak = 0;
            let more = !work.waiting.is_empty() || !work.waiters.is_empty();
            if more && !work.scheduled {
                work.scheduled = true;
                self.ready.push_back(page.clone());
            } else if !more && !work.scheduled {
                self.pages.remove(&page);
            }
            for seq in covered {
                self.page_done(seq);
            }
        }
        self.pump(ctx);
    }

    /// One Page of delivery `seq` is done; the delivery leaves the inbox with its last.
    fn page_done(&mut self, seq: u64) {
        let Some(left) = self.deliveries.get_mut(&seq) else { return };
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.deliveries.remove(&seq);
            // Not flushed on purpose: if this removal is lost in a crash, the delivery
            // is replayed and the Page refreshed once more, which is harmless.
            if let Err(e) = self.inbox.remove(seq.to_be_bytes()) {
                tracing::error!(seq, error = %e, "could not remove a finished delivery from the inbox");
            }
        }
    }

    fn backoff(&self, streak: u32) -> Duration {
        let base = self.config.backoff_base.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << streak.min(20));
        let capped = exp.min(self.config.backoff_cap.as_millis() as u64).max(1);
        // Jitter: somewhere between half and the whole pause, so Pages that failed
        // together do not come back together.
        let jittered = capped / 2 + rand::random_range(0..=capped / 2);
        Duration::from_millis(jittered.max(1))
    }

    fn load_state(&self, page: &PageId) -> Option<PageState> {
        match self.states.get(page.as_str()) {
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

    fn save_state(&mut self, page: &PageId, state: &PageState) {
        let saved = serde_json::to_vec(state)
            .map_err(|e| e.to_string())
            .and_then(|v| self.states.insert(page.as_str(), v).map_err(|e| e.to_string()));
        match saved {
            Ok(previous) => {
                self.count_out(previous.as_deref());
                if let Some(i) = status_index(state.status) {
                    self.status_counts[i] += 1;
                }
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

    /// A `page_state` record left (replaced or removed): uncount its status.
    fn count_out(&mut self, previous: Option<&[u8]>) {
        if let Some(i) = previous.and_then(status_of).and_then(status_index) {
            self.status_counts[i] = self.status_counts[i].saturating_sub(1);
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

/// One refresh: token from the vault, data from Graph, file to disk.
async fn refresh(
    vault: Addr<TokenVaultActor>,
    source: Arc<dyn PageSource>,
    pages_dir: PathBuf,
    page: PageId,
    check_token: bool,
    generation: u64,
) -> Outcome {
    let creds = match vault.send(GetPageToken { page: page.clone() }).await {
        Ok(Ok(Some(creds))) => creds,
        Ok(Ok(None)) => return Outcome::UnknownPage,
        // A token that does not open (a damaged record; a wrong key is refused at
        // start) is our failure, not Meta's verdict: only Meta makes a Page needs_reauth.
        Ok(Err(e)) => return Outcome::Internal(e.to_string()),
        Err(e) => return Outcome::Internal(format!("token vault unavailable: {e}")),
    };
    if check_token {
        match source.check_token(&page, &creds.token).await {
            Ok(TokenCheck::Valid) => {}
            Ok(TokenCheck::Invalid(reason)) => {
                return Outcome::Failed(FetchError::Auth { code: 190, subcode: None, message: reason });
            }
            // Meta could not say: the fetch itself will show whether the token works.
            Err(e) => tracing::debug!(page_id = %page, error = %e, "token check failed; fetching anyway"),
        }
    }
    let data = match source.fetch_page(&page, &creds.token).await {
        Ok(data) => data,
        Err(e) => return Outcome::Failed(e),
    };
    let written = tokio::task::spawn_blocking(move || write_page_file(&pages_dir, &page, data, generation)).await;
    match written {
        Ok(Ok((changed, etag))) => Outcome::Written { changed, etag },
        Ok(Err(e)) => Outcome::Internal(format!("cannot write page_data.json: {e}")),
        Err(e) => Outcome::Internal(format!("page file writer failed: {e}")),
    }
}

/// Writes `<pages_dir>/<page>/page_data.json` atomically: a temporary file in the same
/// folder, fsync, rename over the old file, fsync the folder (and, for a new folder, its
/// parent, so the folder itself survives a power loss). A reader sees the old file or
/// the new one, never a torn one. Folders are 0750 and files 0640, set explicitly so
/// the daemon's umask cannot hide them from the bot's group. Any `access_token` key is
/// dropped first, so a misconfigured field list cannot put a token on disk. When the
/// file already holds exactly these bytes nothing is written and `false` is returned.
/// `generation` names the temporary file (see [`remove_leftovers`]).
pub fn write_page_file(
    pages_dir: &Path,
    page: &PageId,
    mut data: PageData,
    generation: u64,
) -> std::io::Result<(bool, String)> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    data.remove("access_token");
    let dir = pages_dir.join(page.as_str());
    match std::fs::create_dir(&dir) {
        Ok(()) => {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(PAGE_DIR_MODE))?;
            std::fs::File::open(pages_dir)?.sync_all()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let mut body = serde_json::to_vec_pretty(&data).map_err(std::io::Error::other)?;
    body.push(b'\n');
    let etag = etag_of(&body);
    if std::fs::read(dir.join("page_data.json")).is_ok_and(|current| current == body) {
        return Ok((false, etag));
    }
    let tmp = dir.join(format!("{TMP_PREFIX}{generation:016x}.{:016x}{TMP_SUFFIX}", rand::random::<u64>()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(PAGE_FILE_MODE).open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(PAGE_FILE_MODE))?;
        file.write_all(&body)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join("page_data.json"))?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| (true, etag))
}

/// Temporary files are `.page_data.json.<generation>.<random>.tmp`.
const TMP_PREFIX: &str = ".page_data.json.";
const TMP_SUFFIX: &str = ".tmp";

/// Removes temporary files a crashed earlier process left in Page folders (a write
/// cut between create and rename). Files of `generation` (this process) are in use
/// and kept. Returns how many were removed. Runs once at start, on the blocking pool.
pub fn remove_leftovers(pages_dir: &Path, generation: u64) -> std::io::Result<usize> {
    let ours = format!("{TMP_PREFIX}{generation:016x}.");
    let mut removed = 0;
    let folders = match std::fs::read_dir(pages_dir) {
        Ok(folders) => folders,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for folder in folders {
        let folder = folder?;
        if !folder.file_type()?.is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(folder.path()) else { continue };
        for file in files.flatten() {
            let name = file.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX)
                && name.ends_with(TMP_SUFFIX)
                && !name.starts_with(&ours)
                && std::fs::remove_file(file.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Removes a Page's folder; a folder that is already gone is fine.
fn remove_page_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The status of a raw `page_state` record, if it parses.
fn status_of(raw: &[u8]) -> Option<SyncStatus> {
    #[derive(serde::Deserialize)]
    struct Status {
        status: SyncStatus,
    }
    serde_json::from_slice::<Status>(raw).ok().map(|s| s.status)
}

fn status_index(status: SyncStatus) -> Option<usize> {
    SyncStatus::ALL.iter().position(|s| *s == status)
}

fn encode_pages(pages: &[PageId]) -> Vec<u8> {
    pages.iter().map(PageId::as_str).collect::<Vec<_>>().join(",").into_bytes()
}

fn decode_pages(raw: &[u8]) -> Option<Vec<PageId>> {
    let text = std::str::from_utf8(raw).ok()?;
    text.split(',').map(|p| PageId::parse(p).ok()).collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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
        let replay = std::mem::take(&mut self.replay);
        if !replay.is_empty() {
            tracing::info!(deliveries = replay.len(), "replaying deliveries left in the inbox");
        }
        for (seq, pages) in replay {
            self.enqueue(seq, pages, ctx);
        }
    }
}

/// Answers at once.
impl Handler<Ping> for PageWriterActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

/// Stops accepting and starting work; what is unfinished stays in the inbox.
impl Handler<Shutdown> for PageWriterActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.draining = true;
        tracing::info!(inbox = self.deliveries.len(), running = self.running, "page writer stopping");
        ctx.stop();
    }
}

/// Makes a delivery durable, then queues its Pages.
impl Handler<AcceptDelivery> for PageWriterActor {
    type Result = ResponseActFuture<Self, Result<Receipt, InboxError>>;

    fn handle(&mut self, msg: AcceptDelivery, _: &mut Self::Context) -> Self::Result {
        if self.draining {
            return Box::pin(fut::ready(Err(InboxError::ShuttingDown)));
        }
        let mut seen = HashSet::new();
        let pages: Vec<PageId> = msg.pages.into_iter().filter(|p| seen.insert(p.clone())).collect();
        let mut writes = Vec::with_capacity(2);
        // The forward goes first: a crash keeps a prefix of a commit, so the inbox
        // record never survives without it.
        let forward = match (msg.forward, &self.outbox) {
            (Some(f), Some(outbox)) => {
                let prepared = outbox.queue.prepare(ItemKind::Forward, &f.lane, f.headers, &f.body);
                writes.push(prepared.write);
                Some((outbox.addr.clone(), prepared.enqueued))
            }
            _ => None,
        };
        let seq = (!pages.is_empty()).then(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            writes.push((self.inbox.clone(), seq.to_be_bytes().to_vec(), encode_pages(&pages)));
            seq
        });
        if writes.is_empty() {
            return Box::pin(fut::ready(Ok(Receipt { seq: None, pages: 0, forwarded: false })));
        }
        let commit = self.store.commit_all(writes);
        Box::pin(commit.into_actor(self).map(move |result, act, ctx| {
            result?;
            let forwarded = forward.is_some();
            if let Some((outbox, enqueued)) = forward {
                outbox.do_send(enqueued);
            }
            let count = pages.len();
            if let Some(seq) = seq {
                act.stats.accepted += 1;
                act.enqueue(seq, pages, ctx);
            }
            Ok(Receipt { seq, pages: count, forwarded })
        }))
    }
}

/// Queues a refresh of one Page and replies when it has run.
impl Handler<SyncNow> for PageWriterActor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: SyncNow, ctx: &mut Self::Context) -> Self::Result {
        self.sync_now(msg.page, false, ctx)
    }
}

impl Handler<PollPage> for PageWriterActor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: PollPage, ctx: &mut Self::Context) -> Self::Result {
        self.sync_now(msg.page, true, ctx)
    }
}

impl PageWriterActor {
    /// Queues a refresh of `page` (one that covers it if one is already queued) and
    /// answers once it is done.
    fn sync_now(&mut self, page: PageId, check_token: bool, ctx: &mut Context<Self>) -> ResponseFuture<bool> {
        if self.draining {
            return Box::pin(async { false });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let work = self.pages.entry(page.clone()).or_default();
        work.waiters.push(tx);
        work.check_token |= check_token;
        if work.running.is_none() && !work.scheduled {
            work.scheduled = true;
            self.ready.push_back(page);
        }
        self.pump(ctx);
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

/// Clears `needs_reauth` / `disconnected` and any tombstone.
impl Handler<PageConnected> for PageWriterActor {
    type Result = ();

    fn handle(&mut self, msg: PageConnected, ctx: &mut Self::Context) {
        self.tombstones.remove(&msg.page);
        let mut state = self.load_state(&msg.page).unwrap_or_default();
        if matches!(state.status, SyncStatus::NeedsReauth | SyncStatus::Disconnected) {
            state.status = SyncStatus::Pending;
        }
        if let Some(shop) = &msg.shop {
            state.shop = Some(shop.to_string());
        }
        let data = serde_json::json!({ "page_id": msg.page, "shop": state.shop, "name": msg.name });
        let announced = self.record_events(&msg.page, vec![("page.connected", data)]);
        self.save_state(&msg.page, &state);
        self.announce(announced, ctx);
    }
}

/// Marks Pages disconnected.
impl Handler<MarkDisconnected> for PageWriterActor {
    type Result = ();

    fn handle(&mut self, msg: MarkDisconnected, ctx: &mut Self::Context) {
        let mut announced = Vec::new();
        for page in msg.pages {
            let mut state = self.load_state(&page).unwrap_or_default();
            if state.status != SyncStatus::Disconnected {
                let data = serde_json::json!({ "page_id": page, "shop": state.shop, "reason": msg.reason });
                announced.extend(self.record_events(&page, vec![("page.disconnected", data)]));
            }
            state.status = SyncStatus::Disconnected;
            self.save_state(&page, &state);
        }
        self.announce(announced, ctx);
    }
}

/// Deletes Pages' state and folders.
impl Handler<DeletePages> for PageWriterActor {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: DeletePages, _: &mut Self::Context) -> Self::Result {
        let mut dirs = Vec::new();
        let mut announced = Vec::new();
        for page in &msg.pages {
            let shop = self.load_state(page).and_then(|s| s.shop);
            let data = serde_json::json!({ "page_id": page, "shop": shop });
            announced.extend(self.record_events(page, vec![("page.removed", data)]));
            match self.states.remove(page.as_str()) {
                Ok(previous) => self.count_out(previous.as_deref()),
                Err(e) => return Box::pin(async move { Err(StoreError::from(e)) }),
            }
            self.tombstones.insert(page.clone());
            if let Some(work) = self.pages.get_mut(page) {
                // Nothing queued for a deleted Page runs; its deliveries are done.
                let waiting = std::mem::take(&mut work.waiting);
                for waiter in work.waiters.drain(..) {
                    let _ = waiter.send(false);
                }
                for seq in waiting {
                    self.page_done(seq);
                }
            }
            dirs.push(self.config.pages_dir.join(page.as_str()));
        }
        let flush = self.store.flush();
        let outbox = self.outbox.as_ref().map(|o| o.addr.clone());
        Box::pin(async move {
            let removed = tokio::task::spawn_blocking(move || dirs.iter().try_for_each(|d| remove_page_dir(d))).await;
            match removed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(StoreError::Corrupt { tree: "page files", detail: e.to_string() }),
                Err(e) => return Err(StoreError::Corrupt { tree: "page files", detail: e.to_string() }),
            }
            flush.await?;
            if let Some(outbox) = outbox {
                for item in announced {
                    outbox.do_send(item);
                }
            }
            Ok(())
        })
    }
}

/// Reads a Page's sync state.
impl Handler<GetPageState> for PageWriterActor {
    type Result = Result<Option<PageState>, StoreError>;

    fn handle(&mut self, msg: GetPageState, _: &mut Self::Context) -> Self::Result {
        match self.states.get(msg.page.as_str())? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { tree: trees::PAGE_STATE, detail: e.to_string() }),
        }
    }
}

/// A Page's state and the name in its file.
impl Handler<DescribePage> for PageWriterActor {
    type Result = ResponseFuture<PageSummary>;

    fn handle(&mut self, msg: DescribePage, _: &mut Self::Context) -> Self::Result {
        let state = self.load_state(&msg.page);
        let path = self.config.pages_dir.join(msg.page.as_str()).join("page_data.json");
        Box::pin(async move {
            let (name, category) = tokio::task::spawn_blocking(move || {
                let Some(value) =
                    std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                else {
                    return (None, None);
                };
                let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
                (text("name"), text("category"))
            })
            .await
            .unwrap_or_default();
            PageSummary { state, name, category }
        })
    }
}

/// Pages by status, from the counts kept as records change (no scan).
impl Handler<CountPagesByStatus> for PageWriterActor {
    type Result = Result<Vec<(SyncStatus, u64)>, StoreError>;

    fn handle(&mut self, _: CountPagesByStatus, _: &mut Self::Context) -> Self::Result {
        Ok(SyncStatus::ALL.iter().copied().zip(self.status_counts).collect())
    }
}

/// A snapshot of counters and queues.
impl Handler<GetWriterStats> for PageWriterActor {
    type Result = MessageResult<GetWriterStats>;

    fn handle(&mut self, _: GetWriterStats, _: &mut Self::Context) -> Self::Result {
        let mut stats = self.stats.clone();
        stats.inbox_depth = self.deliveries.len();
        stats.running = self.running;
        stats.waiting_pages = self.pages.values().filter(|w| w.scheduled).count();
        MessageResult(stats)
    }
}

/// The entity tag of a `page_data.json` content: the first 32 hex digits (128 bits)
/// of the SHA-256 of the file's bytes. The consumer API sends it as `ETag` (quoted) and
/// `page.updated` events carry it (unquoted), so both must come from here.
pub fn etag_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    crate::hex(&digest[..16])
}

/// The bytes of `<pages_dir>/<page>/page_data.json`, or `None` when the Page has no
/// file yet. Blocking: call it off the async threads. Readers never see a torn file
/// (see [`write_page_file`]), so no coordination with the writer is needed.
pub fn read_page_file(pages_dir: &Path, page: &PageId) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(pages_dir.join(page.as_str()).join("page_data.json")) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_records_round_trip() {
        let pages = vec![PageId::parse("1").unwrap(), PageId::parse("22").unwrap()];
        assert_eq!(decode_pages(&encode_pages(&pages)), Some(pages));
        assert_eq!(decode_pages(b"1,../2"), None);
        assert_eq!(decode_pages(b""), None);
        assert_eq!(decode_pages(&[0xff, 0xfe]), None);
    }

    #[test]
    fn page_files_are_written_whole_and_without_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let page = PageId::parse("42").unwrap();
        let mut data = PageData::new();
        data.insert("id".into(), "42".into());
        data.insert("name".into(), "Old".into());
        data.insert("access_token".into(), "EAAG-leak".into());
        let (written, first) = write_page_file(dir.path(), &page, data.clone(), 1).unwrap();
        assert!(written);
        assert_eq!(
            write_page_file(dir.path(), &page, data.clone(), 1).unwrap(),
            (false, first.clone()),
            "identical data is not rewritten"
        );
        data.insert("name".into(), "New".into());
        let (written, second) = write_page_file(dir.path(), &page, data, 1).unwrap();
        assert!(written && second != first);
        let on_disk = std::fs::read(dir.path().join("42/page_data.json")).unwrap();
        assert_eq!(etag_of(&on_disk), second, "the ETag is the file's");
        let text = std::fs::read_to_string(dir.path().join("42/page_data.json")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["name"], "New");
        assert!(!text.contains("EAAG-leak"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("42")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn page_files_and_folders_are_readable_by_the_group_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let page = PageId::parse("42").unwrap();
        let mut data = PageData::new();
        data.insert("id".into(), "42".into());
        write_page_file(dir.path(), &page, data, 1).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("42")), 0o750);
        assert_eq!(mode(&dir.path().join("42/page_data.json")), 0o640);
    }

    #[test]
    fn leftover_temporary_files_of_other_processes_are_removed_and_ours_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("42")).unwrap();
        let theirs = dir.path().join(format!("42/{TMP_PREFIX}{:016x}.{:016x}{TMP_SUFFIX}", 7, 1));
        let ours = dir.path().join(format!("42/{TMP_PREFIX}{:016x}.{:016x}{TMP_SUFFIX}", 9, 1));
        let file = dir.path().join("42/page_data.json");
        for p in [&theirs, &ours, &file] {
            std::fs::write(p, b"{}").unwrap();
        }
        std::fs::write(dir.path().join("stray-file"), b"x").unwrap();
        assert_eq!(remove_leftovers(dir.path(), 9).unwrap(), 1);
        assert!(!theirs.exists());
        assert!(ours.exists() && file.exists());
        assert_eq!(remove_leftovers(&dir.path().join("missing"), 9).unwrap(), 0);
    }

    #[test]
    fn absurd_pauses_saturate_instead_of_panicking() {
        let now = Instant::now();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut delays = vec![Duration::ZERO, Duration::from_nanos(1), Duration::MAX, Duration::from_secs(u64::MAX)];
        for _ in 0..2000 {
            // xorshift: a fixed, repeatable spread over the whole u64 range.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            delays.push(Duration::from_secs(rng));
            delays.push(Duration::from_millis(rng));
        }
        for delay in delays {
            let until = deadline_after(now, delay);
            assert!(until >= now && until <= now + MAX_PAUSE, "{delay:?}");
        }
    }
}
