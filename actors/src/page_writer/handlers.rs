//! The page writer's `Handler`s: each routes a message to the actor's methods.

use std::collections::HashSet;
use std::path::PathBuf;

use actix::prelude::*;

use super::records::encode_pages;
use super::{PageWriterActor, files};
use crate::ids::PageId;
use crate::messages::*;
use crate::outbox::{Enqueued, ItemKind};
use crate::store::{StoreError, trees};

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
        tracing::info!(inbox = self.inbox_depth(), running = self.schedule.running(), "page writer stopping");
        // The refreshes still running are dropped with the context: no record changes
        // after this point, so the saved index matches the tree.
        self.save_index();
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
        let mut pages: Vec<PageId> = msg.pages.into_iter().filter(|p| seen.insert(p.clone())).collect();
        let count = pages.len();
        // A delivery whose every Page has a queued refresh that a durable record
        // already promises needs no record of its own (module docs, "covered"). Checked
        // and joined in this one turn of the actor, so that refresh cannot start between.
        let covered = count > 0 && pages.iter().all(|p| self.schedule.covers(p, super::has_record));
        if covered {
            let seq = self.next_covered;
            self.next_covered = if seq + 1 < super::REPLAY_SEQ { seq + 1 } else { super::COVERED_SEQ };
            self.figures.accepted();
            // Taken: a covered delivery has no record to write them into.
            self.schedule.enqueue(seq, std::mem::take(&mut pages));
        }
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
        let seq = (count > 0 && !covered).then(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            writes.push((self.inbox.clone(), seq.to_be_bytes().to_vec(), encode_pages(&pages)));
            seq
        });
        if writes.is_empty() {
            let pages = if covered { count } else { 0 };
            return Box::pin(fut::ready(Ok(Receipt { seq: None, pages, forwarded: false })));
        }
        let commit = self.store.commit_all(writes);
        Box::pin(commit.into_actor(self).map(move |result, act, ctx| {
            result?;
            let forwarded = forward.is_some();
            if let Some((outbox, enqueued)) = forward {
                outbox.do_send(enqueued);
            }
            if let Some(seq) = seq {
                act.figures.accepted();
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
        self.schedule.request(page, tx, check_token);
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
        let deleted = self.delete_pages(&msg.pages);
        let durable = self.store.durable(deleted);
        let outbox = self.outbox.as_ref().map(|o| o.addr.clone());
        Box::pin(async move {
            let (dirs, announced) = durable.await?;
            let removed = tokio::task::spawn_blocking(move || dirs.iter().try_for_each(|d| files::remove_page_dir(d)));
            removed.await.map_err(std::io::Error::other).and_then(|r| r).map_err(StoreError::PageFiles)?;
            if let Some(outbox) = outbox {
                for item in announced {
                    outbox.do_send(item);
                }
            }
            Ok(())
        })
    }
}

impl PageWriterActor {
    /// Forgets Pages' sync state and records a `page.removed` event for each;
    /// tombstones them so a refresh still running has its result discarded. Returns
    /// their folders (to remove off the actor's thread) and the events to hand to the
    /// outbox once flushed.
    fn delete_pages(&mut self, pages: &[PageId]) -> Result<(Vec<PathBuf>, Vec<Enqueued>), StoreError> {
        let mut dirs = Vec::new();
        let mut announced = Vec::new();
        for page in pages {
            let shop = self.load_state(page).and_then(|s| s.shop);
            let data = serde_json::json!({ "page_id": page, "shop": shop });
            announced.extend(self.record_events(page, vec![("page.removed", data)]));
            let previous = self.states.remove(page.as_str())?;
            self.unindex(previous.as_deref());
            self.tombstones.insert(page.clone());
            // Nothing queued for a deleted Page runs; its deliveries are done.
            let done = self.schedule.drop_waiting(page);
            self.remove_from_inbox(done);
            dirs.push(self.config.pages_dir.join(page.as_str()));
        }
        Ok((dirs, announced))
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

/// The Pages' states and names, in the order asked, read by one task on the blocking
/// pool: a 1,000-Page slice is 1,000 point reads, and the actors' thread they would
/// otherwise hold is the one acknowledging webhooks. The states read are the ones
/// stored before this message (the writer stores them in its handlers). The names
/// come from the states (written with each file); only Pages whose state does not hold
/// them (written by an older pagesync, or names too long to keep there) have their
/// file read.
impl Handler<DescribePages> for PageWriterActor {
    type Result = ResponseFuture<Vec<PageSummary>>;

    fn handle(&mut self, msg: DescribePages, _: &mut Self::Context) -> Self::Result {
        let (states, pages_dir) = (self.states.clone(), self.config.pages_dir.clone());
        let count = msg.pages.len();
        let read = tokio::task::spawn_blocking(move || {
            msg.pages.iter().map(|page| describe(&states, &pages_dir, page)).collect::<Vec<_>>()
        });
        // A failed blocking task (it cannot panic on a bad record or file) answers
        // "never seen" for each.
        Box::pin(async move { read.await.unwrap_or_else(|_| vec![PageSummary::default(); count]) })
    }
}

/// One Page of [`DescribePages`]: its state, and its names from the state or else
/// from its file.
fn describe(states: &sled::Tree, pages_dir: &std::path::Path, page: &PageId) -> PageSummary {
    let state = super::read_state(states, page);
    match state.as_ref().and_then(|s| s.names.clone()) {
        Some(names) => PageSummary { state, name: names.name, category: names.category },
        None => {
            let (name, category) = files::name_and_category(&pages_dir.join(page.as_str()).join("page_data.json"));
            PageSummary { state, name, category }
        }
    }
}

/// Pages by status, from the counts kept as records change (no scan): the published
/// figures `/metrics` reads.
impl Handler<CountPagesByStatus> for PageWriterActor {
    type Result = Result<Vec<(SyncStatus, u64)>, StoreError>;

    fn handle(&mut self, _: CountPagesByStatus, _: &mut Self::Context) -> Self::Result {
        Ok(self.index.counts().collect())
    }
}

/// The stalest Page kept in sync, from the ordered index (no scan).
impl Handler<GetStalestSync> for PageWriterActor {
    type Result = Option<StalestSync>;

    fn handle(&mut self, _: GetStalestSync, _: &mut Self::Context) -> Self::Result {
        self.index.stalest().map(|last_success| StalestSync { last_success })
    }
}

/// A snapshot of counters and queues: the published figures `/metrics` reads, so the
/// two cannot disagree. Answered after the messages ahead of it, which is what callers
/// waiting for the writer to go idle want.
impl Handler<GetWriterStats> for PageWriterActor {
    type Result = MessageResult<GetWriterStats>;

    fn handle(&mut self, _: GetWriterStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.figures.stats())
    }
}
