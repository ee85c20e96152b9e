//! OutboxActor: owns everything pagesync still has to deliver to the bot — relayed
//! Meta deliveries (forwards) and pagesync's own events — and delivers it durably, in
//! order per lane, with retries.
//!
//! Trees: `outbox` (sequence number -> a pending item) and `outbox_dead` (sequence
//! number -> an item that kept failing for longer than `max_age`). A record is
//! `[u32 big-endian length][meta JSON][body bytes]`: the body is kept byte for byte
//! (a forward must reach the bot exactly as Meta signed it) and never parsed here.
//!
//! Who writes what: an item enters the `outbox` tree through an [`OutboxQueue`], a
//! cheap handle that builds the record so the caller can put it in the same group
//! commit as its own record (the webhook delivery in the inbox, the Page state an
//! event reports): one flush, and a crash keeps both or neither. The caller then tells
//! this actor ([`Enqueued`]); at start the actor reads back every pending item. Only
//! this actor removes items or moves them to `outbox_dead`.
//!
//! How work flows: each item belongs to a lane (a Page id, or `object:<name>` for
//! deliveries that name no Page). A lane sends its oldest item and nothing else until
//! that one got a 2xx or was dead-lettered (FIFO per lane); up to `max_in_flight`
//! lanes send at once. A failure is retried after an exponential back-off with
//! jitter (about `base` first, at most `cap`), or after the receiver's `Retry-After`;
//! an item still failing `max_age` after it was queued goes to `outbox_dead`, and its
//! lane goes on. At least once: an item leaves the tree only after its 2xx, so a
//! crash may repeat a send (same id), never lose one.
//!
//! Network calls run as futures spawned on this actor's context through an
//! [`OutboxSender`] (the HTTP client lives in the binary crate); the mailbox stays
//! free while a receiver is slow. Only sequence numbers and queue times are kept in
//! memory, so a large backlog costs a few dozen bytes per item; bodies are read back
//! when sent.
//!
//! Its counts (pending and dead by kind, attempts) and the oldest pending item's queue
//! time are published as they change in an [`OutboxFigures`] (`outbox/figures.rs`),
//! which `/metrics` reads without a message.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use sled::Transactional as _;

use crate::messages::{Ping, Shutdown};
use crate::store::{Store, StoreError, trees};

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `outbox::<Message>` keeps working for callers.
pub use crate::messages::outbox::*;

mod figures;
mod record;
pub use figures::OutboxFigures;
pub use record::{ItemMeta, OutboxQueue, Prepared, event_body, rfc3339_utc};
use record::{decode, encode, unix_ms};

/// One send attempt, handed to the [`OutboxSender`].
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub meta: ItemMeta,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub body: Vec<u8>,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// For the operator: a status or a transport error, never the body.
    pub detail: String,
    /// The receiver's `Retry-After`, when it gave one.
    pub retry_after: Option<Duration>,
}

/// Delivers items (implemented over HTTP in the binary crate).
pub trait OutboxSender: Send + Sync + 'static {
    /// One attempt; `Ok` only for a 2xx.
    fn send(&self, item: Outgoing) -> BoxFuture<'static, Result<(), SendFailure>>;
}

/// Tunables; defaults are the daemon's.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// `PAGESYNC_FORWARD_MAX_AGE`: an item failing this long after it was queued is
    /// dead-lettered.
    pub max_age: Duration,
    /// Lanes sending at once.
    pub max_in_flight: usize,
    /// About the first retry pause.
    pub base: Duration,
    /// The longest retry pause (a `Retry-After` may ask for more, up to `max_age`).
    pub cap: Duration,
    /// `false` for the operator CLI running without a daemon: it lists and re-queues
    /// items but leaves delivering them to the daemon.
    pub sending: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_age: Duration::from_secs(24 * 3600),
            max_in_flight: 16,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            sending: true,
        }
    }
}

/// What an actor that adds items holds: the queue that builds records for its own
/// group commits, and the actor to tell once they are durable.
#[derive(Clone)]
pub struct OutboxHandle {
    pub queue: OutboxQueue,
    pub addr: Addr<OutboxActor>,
    /// Whether events are wanted (`PAGESYNC_EVENTS_URL` is set): without, none is made.
    pub events: bool,
    /// The thread the actor runs on (see `start`); `None` for an actor started on the
    /// caller's arbiter.
    pub thread: Option<OutboxThread>,
}

/// The outbox actor's own arbiter. Stopping it drops the actor, and with it the
/// actor's handles on the database: [`OutboxThread::stop`] waits for that, so the store
/// can be closed (and its lock released) right after.
#[derive(Clone)]
pub struct OutboxThread(Arc<std::sync::Mutex<Option<actix::Arbiter>>>);

impl OutboxThread {
    pub fn new(arbiter: actix::Arbiter) -> Self {
        OutboxThread(Arc::new(std::sync::Mutex::new(Some(arbiter))))
    }

    /// Stops the thread and waits for it to end. Blocking: call it from a blocking
    /// context. Later calls do nothing.
    pub fn stop(&self) {
        let arbiter = self.0.lock().ok().and_then(|mut a| a.take());
        if let Some(arbiter) = arbiter {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }
}

/// One lane's queue.
#[derive(Debug, Default)]
struct Lane {
    /// Pending items in arrival order.
    items: BTreeSet<u64>,
    /// Its head is being sent or waits for a retry; the lane is not in `ready`.
    busy: bool,
    /// It waits for a retry (a timer will put it back in `ready`); a success of the
    /// same kind wakes it early (see [`OutboxActor::wake_waiting`]).
    waiting: bool,
}

/// See the module docs.
pub struct OutboxActor {
    queue: OutboxQueue,
    dead: sled::Tree,
    sender: Arc<dyn OutboxSender>,
    config: OutboxConfig,
    lanes: HashMap<String, Lane>,
    /// Lanes whose head may be sent now, in the order they became ready.
    ready: VecDeque<String>,
    in_flight: usize,
    /// Every pending item this actor knows of: sequence number -> unix ms it was
    /// queued. The first entry is the oldest (sequence numbers grow with time), so the
    /// oldest age is kept current without reading the tree.
    queued: BTreeMap<u64, u64>,
    /// Pending and dead counts, attempts and the oldest queue time, published for
    /// readers without a message (see `outbox/figures.rs`).
    figures: OutboxFigures,
    draining: bool,
}

impl OutboxActor {
    /// Opens the outbox trees and the queue handle that feeds them. The actor reads
    /// back pending items when it starts.
    pub fn new(
        store: &Store,
        sender: Arc<dyn OutboxSender>,
        config: OutboxConfig,
    ) -> Result<(OutboxActor, OutboxQueue), StoreError> {
        let tree = store.tree(trees::OUTBOX)?;
        let dead = store.tree(trees::OUTBOX_DEAD)?;
        let last = |t: &sled::Tree| -> Result<u64, StoreError> {
            Ok(t.last()?
                .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok())
                .map_or(0, |b| u64::from_be_bytes(b) + 1))
        };
        let next = last(&tree)?.max(last(&dead)?);
        let queue = OutboxQueue { tree, next_seq: Arc::new(AtomicU64::new(next)) };
        let figures = OutboxFigures::default();
        for item in dead.iter() {
            let (_, raw) = item?;
            if let Some((meta, _)) = decode(&raw) {
                figures.dead_added(meta.kind);
            }
        }
        let actor = OutboxActor {
            queue: queue.clone(),
            dead,
            sender,
            config,
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: 0,
            queued: BTreeMap::new(),
            figures,
            draining: false,
        };
        Ok((actor, queue))
    }

    /// The figures this outbox publishes; take them before starting it and read them
    /// from anywhere (see `outbox/figures.rs`).
    pub fn figures(&self) -> OutboxFigures {
        self.figures.clone()
    }

    /// Stores the oldest pending item's queue time in the figures.
    fn publish_oldest(&self) {
        self.figures.set_oldest(self.queued.first_key_value().map(|(_, queued_ms)| *queued_ms));
    }

    fn tree(&self) -> &sled::Tree {
        &self.queue.tree
    }

    fn add(&mut self, seq: u64, lane: String, kind: ItemKind, queued_ms: u64, ctx: &mut Context<Self>) {
        // Forwards and events never share a lane: an events receiver that is down must
        // not hold up the bot's messages, nor the other way round.
        let lane = format!("{}{lane}", kind_prefix(kind));
        let entry = self.lanes.entry(lane.clone()).or_default();
        // An item committed just before `started` read the tree arrives twice (read
        // back, then announced): count it once.
        if !entry.items.insert(seq) {
            return;
        }
        if !entry.busy {
            entry.busy = true;
            self.ready.push_back(lane);
        }
        self.figures.pending_added(kind);
        self.queued.insert(seq, queued_ms);
        self.publish_oldest();
        self.pump(ctx);
    }

    /// Starts sends while there are free slots.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.config.sending && !self.draining && self.in_flight < self.config.max_in_flight.max(1) {
            let Some(lane) = self.ready.pop_front() else { break };
            self.send_head(lane, ctx);
        }
    }

    fn send_head(&mut self, lane: String, ctx: &mut Context<Self>) {
        loop {
            let Some(seq) = self.lanes.get(&lane).and_then(|l| l.items.first().copied()) else {
                self.lanes.remove(&lane);
                return;
            };
            let raw = match self.tree().get(seq.to_be_bytes()) {
                Ok(Some(raw)) => raw,
                Ok(None) => {
                    // Already gone (delivered before a late announcement): next one.
                    self.forget(&lane, seq);
                    continue;
                }
                Err(e) => {
                    tracing::error!(seq, error = %e, "cannot read an outbox item; will try again");
                    self.retry_later(lane, self.config.cap, ctx);
                    return;
                }
            };
            let Some((mut meta, body)) = decode(&raw) else {
                tracing::error!(seq, "dropping an unreadable outbox record");
                let _ = self.tree().remove(seq.to_be_bytes());
                self.forget(&lane, seq);
                continue;
            };
            meta.attempts = meta.attempts.saturating_add(1);
            meta.last_attempt_ms = Some(unix_ms());
            let attempt = meta.attempts;
            // The record is rewritten only when the attempt fails (with its error): a
            // success just removes it, so the common case costs one read and one
            // removal. A crash during an attempt may leave the count one short.
            self.in_flight += 1;
            let outgoing = Outgoing { meta: meta.clone(), attempt, body: body.to_vec() };
            let send = self.sender.send(outgoing);
            ctx.spawn(send.into_actor(self).map(move |result, act, ctx| act.finished(lane, seq, meta, result, ctx)));
            return;
        }
    }

    fn finished(
        &mut self,
        lane: String,
        seq: u64,
        mut meta: ItemMeta,
        result: Result<(), SendFailure>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match result {
            Ok(()) => {
                self.figures.delivered();
                self.wake_waiting(meta.kind);
                // Not flushed: if this removal is lost in a crash the item is sent
                // again with the same id (at least once).
                if let Err(e) = self.tree().remove(seq.to_be_bytes()) {
                    tracing::error!(seq, error = %e, "cannot remove a delivered outbox item");
                }
                self.forget(&lane, seq);
                self.next_in_lane(lane, ctx);
            }
            Err(failure) => {
                self.figures.failed();
                let age = Duration::from_millis(unix_ms().saturating_sub(meta.queued_ms));
                meta.last_error = Some(failure.detail.clone());
                if age >= self.config.max_age {
                    tracing::warn!(
                        id = meta.id,
                        kind = meta.kind.as_str(),
                        lane,
                        error = failure.detail,
                        attempts = meta.attempts,
                        "outbox item dead-lettered"
                    );
                    self.bury(seq, &meta);
                    self.forget(&lane, seq);
                    self.next_in_lane(lane, ctx);
                } else {
                    if let Some((_, body)) =
                        self.tree().get(seq.to_be_bytes()).ok().flatten().as_deref().and_then(decode)
                    {
                        let _ = self.tree().insert(seq.to_be_bytes(), encode(&meta, body));
                    }
                    let delay = retry_delay(&self.config, meta.attempts, failure.retry_after)
                        .min(self.config.max_age.saturating_sub(age))
                        .max(Duration::from_millis(1));
                    tracing::debug!(
                        id = meta.id,
                        lane,
                        error = failure.detail,
                        delay_ms = delay.as_millis() as u64,
                        "outbox send failed; will retry"
                    );
                    self.retry_later(lane, delay, ctx);
                }
            }
        }
        self.pump(ctx);
    }

    /// Moves an item to `outbox_dead` (one transaction: it is in exactly one tree).
    fn bury(&mut self, seq: u64, meta: &ItemMeta) {
        let key = seq.to_be_bytes();
        let moved = (self.tree(), &self.dead).transaction(|(pending, dead)| {
            if let Some(raw) = pending.remove(&key)?
                && let Some((_, body)) = decode(&raw)
            {
                dead.insert(&key, encode(meta, body))?;
            }
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        });
        match moved {
            Ok(()) => {
                self.figures.dead_lettered();
                self.figures.dead_added(meta.kind);
            }
            Err(e) => tracing::error!(seq, error = ?e, "cannot dead-letter an outbox item"),
        }
    }

    /// The lane's head is done (delivered, dead or gone).
    fn forget(&mut self, lane: &str, seq: u64) {
        // Counted out only if it was counted in (see `add`).
        if self.lanes.get_mut(lane).is_some_and(|l| l.items.remove(&seq)) {
            self.figures.pending_removed(kind_of_lane(lane));
            self.queued.remove(&seq);
            self.publish_oldest();
        }
    }

    fn next_in_lane(&mut self, lane: String, _ctx: &mut Context<Self>) {
        match self.lanes.get_mut(&lane) {
            Some(l) if !l.items.is_empty() => self.ready.push_back(lane),
            _ => {
                self.lanes.remove(&lane);
            }
        }
    }

    fn retry_later(&mut self, lane: String, delay: Duration, ctx: &mut Context<Self>) {
        if let Some(l) = self.lanes.get_mut(&lane) {
            l.waiting = true;
        }
        ctx.run_later(delay, move |act, ctx| {
            // Already woken by a success meanwhile: the lane is not waiting any more.
            if let Some(l) = act.lanes.get_mut(&lane)
                && std::mem::take(&mut l.waiting)
            {
                act.ready.push_back(lane);
                act.pump(ctx);
            }
        });
    }

    /// A send of `kind` just succeeded, so its receiver is back: lanes of that kind
    /// waiting out a back-off go now instead of after their (up to minutes long)
    /// pause. One receiver serves every lane of a kind, so after an outage the backlog
    /// drains at once rather than lane by lane as timers expire.
    fn wake_waiting(&mut self, kind: ItemKind) {
        let woken: Vec<String> = self
            .lanes
            .iter_mut()
            .filter(|(name, l)| l.waiting && name.starts_with(kind_prefix(kind)))
            .map(|(name, l)| {
                l.waiting = false;
                name.clone()
            })
            .collect();
        self.ready.extend(woken);
    }

    /// The published figures: what `/metrics` reads, so the two cannot disagree.
    fn stats(&self) -> OutboxStats {
        self.figures.stats()
    }

    fn retry_dead(&mut self, msg: &RetryDead, ctx: &mut Context<Self>) -> Result<usize, StoreError> {
        let mut moved = Vec::new();
        for item in self.dead.iter() {
            let (key, raw) = item?;
            let Some((mut meta, body)) = decode(&raw) else { continue };
            if !msg.all && !msg.ids.contains(&meta.id) {
                continue;
            }
            let kind = meta.kind;
            meta.attempts = 0;
            meta.queued_ms = unix_ms();
            meta.last_error = None;
            let seq = self.queue.next_seq.fetch_add(1, Ordering::Relaxed);
            let record = encode(&meta, body);
            (self.tree(), &self.dead)
                .transaction(|(pending, dead)| {
                    dead.remove(&key)?;
                    pending.insert(&seq.to_be_bytes(), record.as_slice())?;
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                    sled::transaction::TransactionError::Abort(()) => StoreError::Closed,
                })?;
            self.figures.dead_removed(kind);
            moved.push((seq, meta.lane, kind, meta.queued_ms));
        }
        let count = moved.len();
        for (seq, lane, kind, queued_ms) in moved {
            self.add(seq, lane, kind, queued_ms, ctx);
        }
        Ok(count)
    }

    fn list(&self, limit: usize) -> Result<OutboxListing, StoreError> {
        let now = unix_ms();
        let mut items = Vec::new();
        for (tree, state) in [(self.tree(), "pending"), (&self.dead, "dead")] {
            for item in tree.iter().take(limit) {
                let (_, raw) = item?;
                if let Some((meta, _)) = decode(&raw) {
                    items.push(OutboxRow {
                        id: meta.id,
                        kind: meta.kind,
                        lane: meta.lane,
                        state,
                        attempts: meta.attempts,
                        last_error: meta.last_error,
                        age_seconds: now.saturating_sub(meta.queued_ms) / 1000,
                    });
                }
            }
        }
        Ok(OutboxListing { stats: self.stats(), items })
    }
}

/// The prefix that keeps each kind's lanes apart.
fn kind_prefix(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Forward => "forward:",
        ItemKind::Event => "event:",
    }
}

fn kind_of_lane(lane: &str) -> ItemKind {
    if lane.starts_with(kind_prefix(ItemKind::Event)) { ItemKind::Event } else { ItemKind::Forward }
}

/// The pause before attempt `attempts + 1`: about `base`·2^(attempts-1) with jitter
/// (between half and all of it), at most `cap`; a `Retry-After` replaces it (not
/// shorter than `base`, not longer than an hour: it comes from the receiver).
pub fn retry_delay(config: &OutboxConfig, attempts: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(hint) = retry_after {
        return hint.clamp(config.base, Duration::from_secs(3600));
    }
    let base = u64::try_from(config.base.as_millis()).unwrap_or(u64::MAX).max(1);
    let cap = u64::try_from(config.cap.as_millis()).unwrap_or(u64::MAX).max(base);
    let exp = base.saturating_mul(1u64 << attempts.saturating_sub(1).min(30)).min(cap);
    Duration::from_millis(exp / 2 + rand::random_range(0..=exp / 2))
}

impl Actor for OutboxActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Every accepted delivery sends one `Enqueued`; a deep mailbox rides out bursts.
        ctx.set_mailbox_capacity(4096);
        let mut replay = Vec::new();
        for item in self.tree().iter() {
            let Ok((key, raw)) = item else { continue };
            let (Ok(seq), Some((meta, _))) = (<[u8; 8]>::try_from(key.as_ref()), decode(&raw)) else {
                tracing::warn!("dropping an unreadable outbox record");
                let _ = self.tree().remove(key);
                continue;
            };
            replay.push((u64::from_be_bytes(seq), meta.lane, meta.kind, meta.queued_ms));
        }
        if !replay.is_empty() {
            tracing::info!(items = replay.len(), "resuming outbox deliveries");
        }
        for (seq, lane, kind, queued_ms) in replay {
            self.add(seq, lane, kind, queued_ms, ctx);
        }
    }
}

impl Handler<Ping> for OutboxActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

/// Stops sending; pending items stay in the tree for the next start.
impl Handler<Shutdown> for OutboxActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.draining = true;
        ctx.stop();
    }
}

impl Handler<Enqueued> for OutboxActor {
    type Result = ();
    fn handle(&mut self, msg: Enqueued, ctx: &mut Self::Context) {
        self.add(msg.seq, msg.lane, msg.kind, msg.queued_ms, ctx);
    }
}

impl Handler<RetryDead> for OutboxActor {
    type Result = Result<usize, StoreError>;
    fn handle(&mut self, msg: RetryDead, ctx: &mut Self::Context) -> Self::Result {
        self.retry_dead(&msg, ctx)
    }
}

impl Handler<ListOutbox> for OutboxActor {
    type Result = Result<OutboxListing, StoreError>;
    fn handle(&mut self, msg: ListOutbox, _: &mut Self::Context) -> Self::Result {
        self.list(msg.limit)
    }
}

impl Handler<GetOutboxStats> for OutboxActor {
    type Result = MessageResult<GetOutboxStats>;
    fn handle(&mut self, _: GetOutboxStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

#[cfg(test)]
#[path = "outbox/tests.rs"]
mod tests;
