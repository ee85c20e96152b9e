//! PollerActor: the daily re-sync that catches what webhooks missed.
//!
//! Every `PAGESYNC_POLL_INTERVAL` it sends each connected Page a [`PollPage`] through
//! the PageWriterActor: the Page token is checked with `/debug_token` (a token Meta no
//! longer honours makes the Page `needs_reauth`), then the Page is refreshed. Going
//! through the writer keeps the per-Page order (a webhook refresh and a poll refresh
//! never write one Page at once) and its rules: `needs_reauth` and `disconnected` Pages
//! are skipped without a Graph call, rate limits pause the Page or the app.
//!
//! # The pace
//!
//! A run does not refresh its Pages as fast as it can: it spreads their starts evenly
//! over the first 85 % of the interval ([`pace`]: with `n` Pages and interval `I`, one
//! Page every `0.85·I/n`, in list order), so Graph sees a steady trickle instead of a
//! burst, and the last 15 % is headroom in which the run ends before the next begins.
//! At most `concurrency` Pages are in flight at once; when Graph is slower than the
//! pace, the Pages whose time has come start as soon as a place is free (the run
//! catches up), never more at once.
//!
//! The runs follow the wall clock: run `c` is for the cycle `[c·I, (c+1)·I)` of Unix
//! time and starts at the cycle's beginning. A run that overran the cycle (Graph slower
//! than the pace for the whole interval) is followed at once by the next cycle's run,
//! which catches up from its first Page; a cycle that went by entirely is not run.
//!
//! # How many Pages
//!
//! The pace needs `n` before the first Page starts. A run counts the Pages first
//! ([`CountPages`]: the keys of the vault's `page_owner` tree from a cursor, at most
//! [`COUNT_STEP`] per message, no owner decoded and nothing collected; the vault shares
//! its thread with the writer that acknowledges webhooks, which thus waits for one step
//! at most), then walks them in slices of [`SLICE`]
//! ([`ListPagesFrom`]): the whole list is never in memory. Pages connected after the
//! count go after the span (in the headroom), Pages removed meanwhile are simply not
//! met; the next run counts again.
//!
//! # After a start
//!
//! The first run after the daemon starts is the current cycle's, but it *resumes*: it
//! leaves out the Pages whose start time in this cycle has already passed and polls the
//! rest at their usual spacing, all shifted by a settle time ([`pace::settle`]: a tenth
//! of the interval, at most 5 minutes, which the headroom absorbs) so that the first
//! minutes after a start are left to the inbox replay and the queued deliveries. A
//! daemon restarted often (deploys, a crash loop) thus goes on where its previous
//! process would be instead of starting from the first Pages again: every Page is still
//! polled about once per interval, and no state is kept for it. A fleet restarted
//! together is not a burst either: each daemon's Pages are spread over the interval
//! whatever the phase. (Before the pace, the first run waited a random part of the
//! interval to de-correlate such a fleet.)
//!
//! # By hand
//!
//! [`PollNow`] (nothing in the daemon sends it today; tests and embedders do) is
//! immediate: every Page from the first, as fast as `concurrency` and the usage
//! slow-down allow. It works with polling off, when there is no interval to pace over,
//! and whoever asks for a run now wants it done now. A cycle whose time comes while it
//! is going is left out (its Pages were just polled).
//!
//! # Slowing down
//!
//! The poller slows itself down before Meta has to: the Graph client records the
//! highest usage percentage seen in `X-App-Usage` / `X-Business-Use-Case-Usage` in a
//! [`UsageGauge`]; above 80 % the poller waits before each Page, longer the closer to 100.
//!
//! Owns no tree; holds only counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures_util::{Stream, StreamExt as _, stream};

use crate::ids::{PageId, UserId};
use crate::messages::{CountPages, ListPagesFrom, Ping, PollPage, Shutdown, VaultError};
use crate::token_vault::TokenVaultActor;

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `poller::<Message>` keeps working for callers.
pub use crate::messages::poller::*;

pub mod pace;
#[cfg(test)]
mod tests;

use pace::Pace;

/// Keys counted per [`CountPages`] message. Measured in a release build on a 100,000-
/// Page tree (2 cores): 2,000 keys take at most 1.3 ms of the vault's thread and the
/// whole count 45 ms; 10,000-key steps took up to 10 ms each, too long a stall for the
/// webhook acknowledgements that share the thread (p99 target 10 ms).
pub const COUNT_STEP: usize = 2_000;
/// Pages listed per [`ListPagesFrom`] message while a run walks the list: about 25 KiB
/// in memory, one vault message (about 1 ms, release) per 256 refreshes.
pub const SLICE: usize = 256;

/// Highest Graph usage percentage seen recently (shared with the Graph client).
#[derive(Debug, Clone, Default)]
pub struct UsageGauge(Arc<AtomicU32>);

impl UsageGauge {
    pub fn record(&self, percent: u32) {
        self.0.store(percent, Ordering::Relaxed);
    }

    pub fn percent(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Pause before the next poll refresh at this usage: none below 80 %, then from
    /// 2 s up to 5 minutes at 100 % and above.
    pub fn pause(&self) -> Duration {
        match self.percent() {
            0..80 => Duration::ZERO,
            p @ 80..100 => Duration::from_secs(2u64 << ((p - 80) / 3)).min(Duration::from_secs(300)),
            _ => Duration::from_secs(300),
        }
    }
}

/// How the poller runs.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// `None`: polling off (`PAGESYNC_POLL_INTERVAL=0`).
    pub interval: Option<Duration>,
    /// Pages refreshed at once by a poll run.
    pub concurrency: usize,
}

/// Unix time in milliseconds; the system clock but in tests.
type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, pace::millis)
}

/// The poller's figures ([`PollStats`]), read from any thread without a message
/// (`/metrics`: the poller shares the thread where webhook deliveries are
/// acknowledged). Written by the poller when a run starts and ends, and by a run's
/// work when it slows down. Cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct PollFigures(Arc<PollCounters>);

#[derive(Debug, Default)]
struct PollCounters {
    /// Runs finished since start.
    runs: AtomicU64,
    /// Refreshes the finished runs asked for.
    refreshes: AtomicU64,
    /// Of those, how many wrote `page_data.json`.
    written: AtomicU64,
    /// A run is in progress.
    running: AtomicBool,
    /// Refreshes delayed because Graph usage was high.
    slowed: AtomicU64,
}

impl PollFigures {
    pub fn stats(&self) -> PollStats {
        let c = &*self.0;
        PollStats {
            runs: c.runs.load(Ordering::Relaxed),
            refreshes: c.refreshes.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            running: c.running.load(Ordering::Relaxed),
            slowed: c.slowed.load(Ordering::Relaxed),
        }
    }

    fn running(&self) -> bool {
        self.0.running.load(Ordering::Relaxed)
    }

    fn set_running(&self, running: bool) {
        self.0.running.store(running, Ordering::Relaxed);
    }

    fn run_finished(&self, refreshes: u64, written: u64) {
        let c = &*self.0;
        c.runs.fetch_add(1, Ordering::Relaxed);
        c.refreshes.fetch_add(refreshes, Ordering::Relaxed);
        c.written.fetch_add(written, Ordering::Relaxed);
    }

    fn slowed(&self) {
        self.0.slowed.fetch_add(1, Ordering::Relaxed);
    }
}

/// See the module docs.
pub struct PollerActor {
    vault: Addr<TokenVaultActor>,
    /// The PageWriterActor (a recipient, so that tests can stand in for it).
    writer: Recipient<PollPage>,
    config: PollConfig,
    usage: UsageGauge,
    /// Runs, refreshes and slow-downs, published for `/metrics` (shared with the
    /// running work, which counts its slow-downs).
    figures: PollFigures,
    /// Where the cycles are read from.
    clock: Clock,
}

/// What a run is for.
#[derive(Debug, Clone, Copy)]
enum RunKind {
    /// The timer's run of cycle `index`; `resume` for the first after the start, which
    /// leaves out the Pages whose time in this cycle has passed.
    Cycle { index: u64, resume: bool },
    /// [`PollNow`]: every Page at once, within `concurrency`.
    Now,
}

impl PollerActor {
    pub fn new(
        vault: Addr<TokenVaultActor>,
        writer: Recipient<PollPage>,
        config: PollConfig,
        usage: UsageGauge,
    ) -> Self {
        PollerActor { vault, writer, config, usage, figures: PollFigures::default(), clock: Arc::new(system_clock) }
    }

    /// The figures this poller publishes (take them before it starts).
    pub fn figures(&self) -> PollFigures {
        self.figures.clone()
    }

    /// The same poller reading the cycles from another clock (tests).
    #[cfg(test)]
    fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The interval in milliseconds, `None` when polling is off.
    fn interval(&self) -> Option<u64> {
        self.config.interval.map(pace::millis)
    }

    /// Sets the timer for cycle `index`'s run (at once if the cycle has begun).
    fn plan(&mut self, ctx: &mut Context<Self>, index: u64, resume: bool) {
        let Some(interval) = self.interval() else { return };
        let delay = pace::until_cycle(index, interval, (self.clock)());
        ctx.run_later(Duration::from_millis(delay), move |act, ctx| act.on_cycle(ctx, index, resume));
    }

    fn on_cycle(&mut self, ctx: &mut Context<Self>, index: u64, resume: bool) {
        let Some(interval) = self.interval() else { return };
        // A timer that fires in a later cycle than its own (the machine slept, the clock
        // jumped) goes for the current one: the cycles in between cannot be had back.
        let index = index.max(pace::cycle_at((self.clock)(), interval).index);
        if !self.run(ctx, RunKind::Cycle { index, resume }) {
            tracing::info!(cycle = index, "a poll run asked for by hand is still going; this cycle's run is left out");
            self.plan(ctx, index.saturating_add(1), false);
        }
    }

    fn run(&mut self, ctx: &mut Context<Self>, kind: RunKind) -> bool {
        if self.figures.running() {
            return false;
        }
        self.figures.set_running(true);
        let plan = match (kind, self.interval()) {
            (RunKind::Cycle { index, resume }, Some(interval)) => {
                let phase = (self.clock)().saturating_sub(pace::cycle_start(index, interval));
                let settle = if resume { pace::settle(interval) } else { 0 };
                Some(Plan { interval, phase, resume, settle })
            }
            _ => None,
        };
        let walk = Walk {
            vault: self.vault.clone(),
            writer: self.writer.clone(),
            usage: self.usage.clone(),
            figures: self.figures.clone(),
            concurrency: self.config.concurrency.max(1),
            started: tokio::time::Instant::now(),
            plan,
        };
        ctx.spawn(walk.run().into_actor(self).map(move |outcome, act, ctx| {
            act.figures.set_running(false);
            if outcome.ran {
                act.figures.run_finished(outcome.refreshes, outcome.written);
                tracing::info!(refreshes = outcome.refreshes, written = outcome.written, "poll run finished");
            }
            if let (RunKind::Cycle { index, .. }, Some(interval)) = (kind, act.interval()) {
                let next = pace::next_cycle(index, interval, (act.clock)());
                act.plan(ctx, next, false);
            }
        }));
        true
    }
}

/// The pace of a timer run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The interval, in milliseconds.
    interval: u64,
    /// Milliseconds of its cycle gone when the run started.
    phase: u64,
    /// Leave out the Pages whose time has passed (the first run after a start).
    resume: bool,
    /// Milliseconds every Page's start is pushed back by ([`pace::settle`] for the
    /// first run after a start, else 0).
    settle: u64,
}

/// What a run did.
#[derive(Debug, Default)]
struct Outcome {
    /// The run went through its Pages; false for a resumed run that found none left
    /// (or a run that could not count them): it is not counted as a run.
    ran: bool,
    refreshes: u64,
    written: u64,
}

/// Why the Page list could not be read.
#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("the token vault did not answer: {0}")]
    Mailbox(#[from] MailboxError),
}

/// One run's work, spawned on the poller's context.
struct Walk {
    vault: Addr<TokenVaultActor>,
    writer: Recipient<PollPage>,
    usage: UsageGauge,
    figures: PollFigures,
    concurrency: usize,
    /// When the run started (the phase in `plan` was read at the same moment).
    started: tokio::time::Instant,
    /// `None`: a [`PollNow`] run, unpaced.
    plan: Option<Plan>,
}

impl Walk {
    async fn run(self) -> Outcome {
        // How long counting (and finding where to resume) held the vault, for the log.
        let counting = tokio::time::Instant::now();
        let (pace, first) = match self.plan {
            None => (None, 0),
            Some(plan) => {
                let pages = match count_pages(&self.vault, None, u64::MAX).await {
                    Ok((pages, _)) => pages,
                    Err(e) => {
                        tracing::error!(error = %e, "poll run could not count the Pages");
                        return Outcome::default();
                    }
                };
                let pace = Pace::new(plan.interval, pages);
                let first = if plan.resume { pace.resume_at(plan.phase) } else { 0 };
                if plan.resume && first >= pages {
                    tracing::info!(pages, "no Page is left to poll in this cycle; the next run polls them");
                    return Outcome::default();
                }
                (Some((pace, plan.phase, plan.settle)), first)
            }
        };
        // The cursor of the first Page to poll: the Page before it.
        let after = if first == 0 {
            None
        } else {
            match count_pages(&self.vault, None, first).await {
                Ok((_, Some(after))) => Some(after),
                Ok((_, None)) => {
                    tracing::info!("no Page is left to poll in this cycle; the next run polls them");
                    return Outcome::default();
                }
                Err(e) => {
                    tracing::error!(error = %e, "poll run could not find where to resume");
                    return Outcome::default();
                }
            }
        };
        tracing::info!(
            pages = pace.map(|(p, ..)| p.pages()),
            first,
            paced = pace.is_some(),
            spacing_ms = pace.map(|(p, ..)| p.due(1).saturating_sub(p.due(0))),
            count_ms = pace::millis(counting.elapsed()),
            "poll run started"
        );
        let started = self.started;
        let (writer, usage, figures) = (self.writer, self.usage, self.figures);
        pages_after(self.vault, after)
            .enumerate()
            .then(move |(i, page)| async move {
                if let Some((pace, phase, settle)) = pace {
                    let j = first.saturating_add(u64::try_from(i).unwrap_or(u64::MAX));
                    let delay = Duration::from_millis(pace.delay(j, phase).saturating_add(settle));
                    match started.checked_add(delay) {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => tokio::time::sleep(delay).await,
                    }
                }
                page
            })
            .map(|page| poll_one(writer.clone(), usage.clone(), figures.clone(), page))
            .buffer_unordered(self.concurrency)
            .fold(Outcome { ran: true, ..Outcome::default() }, |mut outcome, written| async move {
                outcome.refreshes += 1;
                outcome.written += u64::from(written);
                outcome
            })
            .await
    }
}

/// One Page's poll: the usage slow-down, then the writer's [`PollPage`]. Whether it
/// wrote the Page file.
async fn poll_one(writer: Recipient<PollPage>, usage: UsageGauge, figures: PollFigures, page: PageId) -> bool {
    let pause = usage.pause();
    if !pause.is_zero() {
        figures.slowed();
        tracing::info!(usage = usage.percent(), pause_s = pause.as_secs(), "Graph usage high; slowing the poll");
        tokio::time::sleep(pause).await;
    }
    writer.send(PollPage { page }).await.unwrap_or(false)
}

/// Counts up to `limit` Pages after `after`, [`COUNT_STEP`] per message. Answers the
/// count and, when more Pages follow, the last one counted.
async fn count_pages(
    vault: &Addr<TokenVaultActor>,
    mut after: Option<PageId>,
    limit: u64,
) -> Result<(u64, Option<PageId>), ListError> {
    let mut counted = 0u64;
    while counted < limit {
        let step = usize::try_from(limit - counted).unwrap_or(usize::MAX).min(COUNT_STEP);
        let count = vault.send(CountPages { after: after.take(), limit: step }).await??;
        counted = counted.saturating_add(u64::try_from(count.pages).unwrap_or(u64::MAX));
        match count.next {
            Some(next) => after = Some(next),
            None => return Ok((counted, None)),
        }
    }
    Ok((counted, after))
}

/// The Pages after `after`, in list order, fetched [`SLICE`] at a time as the stream is
/// read: the whole list is never in memory. A vault error ends the stream (logged).
fn pages_after(vault: Addr<TokenVaultActor>, after: Option<PageId>) -> impl Stream<Item = PageId> {
    struct Cursor {
        vault: Addr<TokenVaultActor>,
        /// Where the next slice starts; `None` with `done` unset: the list's start.
        after: Option<PageId>,
        slice: std::vec::IntoIter<(PageId, UserId)>,
        /// The last slice has been fetched.
        done: bool,
    }
    let cursor = Cursor { vault, after, slice: Vec::new().into_iter(), done: false };
    stream::unfold(cursor, |mut cursor| async move {
        loop {
            if let Some((page, _owner)) = cursor.slice.next() {
                return Some((page, cursor));
            }
            if cursor.done {
                return None;
            }
            let ask = ListPagesFrom { owner: None, after: cursor.after.take(), limit: SLICE };
            match cursor.vault.send(ask).await.map_err(ListError::from).and_then(|r| r.map_err(ListError::from)) {
                Ok(slice) => {
                    cursor.done = slice.next.is_none();
                    cursor.after = slice.next;
                    cursor.slice = slice.pages.into_iter();
                }
                Err(e) => {
                    tracing::error!(error = %e, "poll run could not list Pages; it stops here");
                    return None;
                }
            }
        }
    })
}

impl Actor for PollerActor {
    type Context = Context<Self>;

    /// The current cycle's run, resumed (see the module docs).
    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(interval) = self.interval() {
            let cycle = pace::cycle_at((self.clock)(), interval);
            self.plan(ctx, cycle.index, true);
        }
    }
}

impl Handler<Ping> for PollerActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

impl Handler<Shutdown> for PollerActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// An immediate, unpaced run of every Page (see the module docs).
impl Handler<PollNow> for PollerActor {
    type Result = bool;
    fn handle(&mut self, _: PollNow, ctx: &mut Self::Context) -> bool {
        self.run(ctx, RunKind::Now)
    }
}

impl Handler<GetPollStats> for PollerActor {
    type Result = MessageResult<GetPollStats>;
    fn handle(&mut self, _: GetPollStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.figures.stats())
    }
}
