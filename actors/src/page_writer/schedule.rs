//! The writer's scheduling state machine, without actix and without I/O: which Page
//! refreshes next, what a finished refresh leaves behind, when a Page or the whole app
//! waits, and when a delivery is done.
//!
//! Per Page at most one refresh runs and at most one more is queued behind it: every
//! delivery that arrives while a refresh runs joins the queued one. Pages wait for a
//! slot in `ready`, in arrival order; at most `max_concurrent` refreshes run at once.
//! A delivery is done when each of its Pages is; the actor then removes it from the
//! inbox. The actor owns time (timers) and I/O; this struct only decides, so every
//! rule here is tested with plain `#[test]`s.
//!
//! It also publishes its depths (deliveries, running refreshes, waiting Pages) into
//! the writer's [`WriterFigures`] at the end of every method that changes them, so
//! `/metrics` reads them without a message and no caller can forget to.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::figures::WriterFigures;
use crate::graph::{FetchError, LimitScope};
use crate::ids::PageId;

/// The longest pause any upstream hint can impose on a Page or on the app. Meta's
/// `estimated_time_to_regain_access` is in minutes and in practice below an hour; a
/// larger number is a bug or an attack, and the daily poll retries anyway.
pub const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);

/// `now + delay`, saturating: an `Instant` sum that overflows would panic, and a
/// panic in a handler kills the actor for good.
pub fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(MAX_PAUSE)).or_else(|| now.checked_add(Duration::from_secs(3600))).unwrap_or(now)
}

/// A `SyncNow` / `PollPage` caller waiting for a refresh: told whether it wrote.
pub type Waiter = tokio::sync::oneshot::Sender<bool>;

/// The scheduling rules' tunables (a part of `WriterConfig`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Refreshes running at once, across all Pages.
    pub max_concurrent: usize,
    /// First back-off pause; doubles per consecutive failure, with jitter.
    pub backoff_base: Duration,
    /// The longest back-off pause.
    pub backoff_cap: Duration,
    /// Consecutive transient failures after which a refresh is given up.
    pub max_transient_rounds: u32,
}

/// Room the scheduler's maps keep however idle they get (see
/// [`Scheduler::shrink_when_idle`]): enough for ordinary traffic without regrowing.
const KEEP_CAPACITY: usize = 1024;

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
    waiters: Vec<Waiter>,
    /// `SyncNow` callers waiting for the refresh running now.
    running_waiters: Vec<Waiter>,
    /// The next refresh checks the token with `/debug_token` first (a poll asked).
    check_token: bool,
}

/// What [`Scheduler::take_ready`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Pump {
    /// Start these refreshes now (each already counted as running).
    Start(Vec<Started>),
    /// An app-wide pause holds everything back; `Some`: set a timer for this long
    /// and call [`Scheduler::woke`] then `take_ready` again (`None`: one is set).
    Paused(Option<Duration>),
}

/// A refresh to start.
#[derive(Debug, PartialEq, Eq)]
pub struct Started {
    pub page: PageId,
    /// Check the token with `/debug_token` first (a poll asked for it).
    pub check_token: bool,
}

/// What a finished refresh leaves to the actor.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Finished {
    /// Put the Page back in the ready queue ([`Scheduler::requeue`]) after this long.
    pub retry_in: Option<Duration>,
    /// Deliveries now done: remove them from the inbox.
    pub done: Vec<u64>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    limits: Limits,
    /// Deliveries in the inbox -> how many of their Pages are not done yet.
    deliveries: HashMap<u64, usize>,
    pages: HashMap<PageId, PageWork>,
    /// Pages waiting for a refresh slot, in arrival order.
    ready: VecDeque<PageId>,
    running: usize,
    /// Pages whose `scheduled` is set: kept as the flags change, so the figure costs
    /// O(1) instead of a walk over every Page with work.
    scheduled: usize,
    /// Set by an app-wide rate limit: no refresh starts before this instant.
    app_paused_until: Option<Instant>,
    /// Whether a wake-up is already scheduled for the end of the app pause.
    app_wake_scheduled: bool,
    /// Where the depths are published (see the module docs).
    figures: WriterFigures,
}

impl Scheduler {
    pub fn new(limits: Limits) -> Self {
        Scheduler::publishing(limits, WriterFigures::default())
    }

    /// A scheduler that publishes its depths into `figures`.
    pub(super) fn publishing(limits: Limits, figures: WriterFigures) -> Self {
        Scheduler {
            limits,
            deliveries: HashMap::new(),
            pages: HashMap::new(),
            ready: VecDeque::new(),
            running: 0,
            scheduled: 0,
            app_paused_until: None,
            app_wake_scheduled: false,
            figures,
        }
    }

    /// Stores the depths in the figures; called last by every method that changes one.
    fn publish(&self) {
        self.figures.set_queue(self.deliveries.len(), self.running, self.scheduled);
    }

    /// Registers an inbox delivery and queues those of its Pages not queued yet.
    pub fn enqueue(&mut self, seq: u64, pages: Vec<PageId>) {
        self.deliveries.insert(seq, 0);
        self.add_pages(seq, pages);
    }

    /// Adds Pages to delivery `seq` (registering it if new): it is done once each of
    /// them is, and once every [`Scheduler::hold`] on it is released.
    pub fn add_pages(&mut self, seq: u64, pages: Vec<PageId>) {
        *self.deliveries.entry(seq).or_default() += pages.len();
        for page in pages {
            let work = self.pages.entry(page.clone()).or_default();
            work.waiting.push(seq);
            if work.running.is_none() && !work.scheduled {
                work.scheduled = true;
                self.scheduled += 1;
                self.ready.push_back(page);
            }
        }
        self.publish();
    }

    /// Whether `page` has a refresh queued that has not started, waiting for at least
    /// one delivery `is_record` says is durable: a delivery arriving now is covered by
    /// that refresh (it starts later, so it reads Graph after the delivery) and by
    /// that record (kept until the refresh has run, or retried if it fails).
    pub fn covers(&self, page: &PageId, is_record: impl Fn(u64) -> bool) -> bool {
        self.pages.get(page).is_some_and(|work| work.waiting.iter().any(|&seq| is_record(seq)))
    }

    /// Keeps delivery `seq` from being done while more Pages may be added to it.
    pub fn hold(&mut self, seq: u64) {
        *self.deliveries.entry(seq).or_default() += 1;
        self.publish();
    }

    /// Releases one [`Scheduler::hold`]; `true` when that made the delivery done.
    pub fn release(&mut self, seq: u64) -> bool {
        let done = self.page_done(seq);
        self.publish();
        done
    }

    /// Queues a refresh of `page` for `waiter` (joining one already queued).
    pub fn request(&mut self, page: PageId, waiter: Waiter, check_token: bool) {
        let work = self.pages.entry(page.clone()).or_default();
        work.waiters.push(waiter);
        work.check_token |= check_token;
        if work.running.is_none() && !work.scheduled {
            work.scheduled = true;
            self.scheduled += 1;
            self.ready.push_back(page);
        }
        self.publish();
    }

    /// Takes the Pages that may start now: as many as there are free slots, unless an
    /// app-wide pause still runs at `now`.
    pub fn take_ready(&mut self, now: Instant) -> Pump {
        if let Some(until) = self.app_paused_until {
            if until > now {
                if self.app_wake_scheduled {
                    return Pump::Paused(None);
                }
                self.app_wake_scheduled = true;
                return Pump::Paused(Some(until - now));
            }
            self.app_paused_until = None;
        }
        let mut started = Vec::new();
        while self.running < self.limits.max_concurrent {
            let Some(page) = self.ready.pop_front() else { break };
            let Some(work) = self.pages.get_mut(&page) else { continue };
            if std::mem::take(&mut work.scheduled) {
                self.scheduled = self.scheduled.saturating_sub(1);
            }
            work.running = Some(std::mem::take(&mut work.waiting));
            work.running_waiters = std::mem::take(&mut work.waiters);
            let check_token = std::mem::take(&mut work.check_token);
            self.running += 1;
            started.push(Started { page, check_token });
        }
        self.publish();
        Pump::Start(started)
    }

    /// The timer set after [`Pump::Paused`] fired.
    pub fn woke(&mut self) {
        self.app_wake_scheduled = false;
    }

    /// A Page's back-off ended: it waits for a slot again.
    pub fn requeue(&mut self, page: PageId) {
        self.ready.push_back(page);
    }

    /// A refresh of `page` failed with `err` at `now`: how long until it is tried
    /// again (`None`: not retried; its deliveries are done). An app-wide rate limit
    /// also pauses every other Page.
    pub fn after_failure(&mut self, page: &PageId, err: &FetchError, now: Instant) -> Option<Duration> {
        let streak = self.pages.get(page).map(|w| w.streak).unwrap_or(0);
        match err {
            FetchError::RateLimited { scope, retry_after: hint, .. } => {
                // Meta's hint is a number from upstream: never trust it to fit.
                let delay = hint.unwrap_or_else(|| self.backoff(streak)).min(MAX_PAUSE);
                if *scope == LimitScope::App {
                    let until = deadline_after(now, delay);
                    self.app_paused_until = Some(self.app_paused_until.map_or(until, |u| u.max(until)));
                }
                Some(delay)
            }
            FetchError::Transient { .. } if streak + 1 < self.limits.max_transient_rounds => Some(self.backoff(streak)),
            FetchError::Transient { .. } | FetchError::Permanent { .. } | FetchError::Auth { .. } => None,
        }
    }

    /// The refresh of `page` that was running has ended. `written`: it wrote the
    /// Page's file (told to the callers waiting for it); `retry_after`: its deliveries
    /// are not done and the Page is tried again after this pause. `None` when the Page
    /// had no work (it was never started here).
    pub fn finish(&mut self, page: &PageId, written: bool, retry_after: Option<Duration>) -> Option<Finished> {
        self.running = self.running.saturating_sub(1);
        let finished = self.finish_page(page, written, retry_after);
        self.publish();
        finished
    }

    fn finish_page(&mut self, page: &PageId, written: bool, retry_after: Option<Duration>) -> Option<Finished> {
        let work = self.pages.get_mut(page)?;
        for waiter in work.running_waiters.drain(..) {
            let _ = waiter.send(written);
        }
        let covered = work.running.take().unwrap_or_default();
        let mut finished = Finished::default();
        if let Some(delay) = retry_after {
            work.streak = work.streak.saturating_add(1);
            // Put the covered deliveries back in front; they are not done.
            let mut waiting = covered;
            waiting.append(&mut work.waiting);
            work.waiting = waiting;
            if !work.scheduled {
                work.scheduled = true;
                self.scheduled += 1;
                finished.retry_in = Some(delay);
            }
        } else {
            work.streak = 0;
            let more = !work.waiting.is_empty() || !work.waiters.is_empty();
            if more && !work.scheduled {
                work.scheduled = true;
                self.scheduled += 1;
                self.ready.push_back(page.clone());
            } else if !more && !work.scheduled {
                self.pages.remove(page);
            }
            finished.done = covered.into_iter().filter(|&seq| self.page_done(seq)).collect();
        }
        self.shrink_when_idle();
        Some(finished)
    }

    /// A burst (the start-up replay of a large inbox, a flood of deliveries over many
    /// Pages) grows the maps to the size of the store, and a `HashMap` keeps its
    /// capacity when emptied, so the room a drain over 100,000 Pages needed would stay
    /// allocated for good. Once most of that room is unused, give it back. Shrinking only when less than an
    /// eighth is used, to twice what is, keeps the cost amortised O(1) per finish.
    fn shrink_when_idle(&mut self) {
        fn shrink<T>(len: usize, capacity: usize, shrink_to: impl FnOnce(usize) -> T) {
            if capacity > KEEP_CAPACITY && len.saturating_mul(8) < capacity {
                shrink_to(len.saturating_mul(2).max(KEEP_CAPACITY));
            }
        }
        shrink(self.pages.len(), self.pages.capacity(), |n| self.pages.shrink_to(n));
        shrink(self.deliveries.len(), self.deliveries.capacity(), |n| self.deliveries.shrink_to(n));
        shrink(self.ready.len(), self.ready.capacity(), |n| self.ready.shrink_to(n));
    }

    /// `page` was deleted: nothing queued for it runs, its waiting callers hear
    /// `false`. Returns the deliveries now done.
    pub fn drop_waiting(&mut self, page: &PageId) -> Vec<u64> {
        let Some(work) = self.pages.get_mut(page) else { return Vec::new() };
        let waiting = std::mem::take(&mut work.waiting);
        for waiter in work.waiters.drain(..) {
            let _ = waiter.send(false);
        }
        let done = waiting.into_iter().filter(|&seq| self.page_done(seq)).collect();
        self.publish();
        done
    }

    /// One Page of delivery `seq` is done; `true` when that was its last.
    fn page_done(&mut self, seq: u64) -> bool {
        let Some(left) = self.deliveries.get_mut(&seq) else { return false };
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.deliveries.remove(&seq);
            return true;
        }
        false
    }

    fn backoff(&self, streak: u32) -> Duration {
        let base = self.limits.backoff_base.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << streak.min(20));
        let capped = exp.min(self.limits.backoff_cap.as_millis() as u64).max(1);
        // Jitter: somewhere between half and the whole pause, so Pages that failed
        // together do not come back together.
        let jittered = capped / 2 + rand::random_range(0..=capped / 2);
        Duration::from_millis(jittered.max(1))
    }

    /// Deliveries not fully processed (the inbox's size).
    pub fn inbox_depth(&self) -> usize {
        self.deliveries.len()
    }

    /// Refreshes running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Pages waiting for a slot or for a back-off to end.
    pub fn waiting_pages(&self) -> usize {
        self.scheduled
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
