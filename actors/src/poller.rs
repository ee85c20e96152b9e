//! PollerActor: the daily re-sync that catches what webhooks missed.
//!
//! Every `PAGESYNC_POLL_INTERVAL` (±10 % jitter, the first run at a random point of the
//! first interval so that a fleet restarted together does not poll together) it lists
//! every connected Page from the TokenVaultActor and sends each a [`PollPage`] through
//! the PageWriterActor, a few at a time: the Page token is checked with `/debug_token`
//! (a token Meta no longer honours makes the Page `needs_reauth`), then the Page is
//! refreshed. Going through the writer keeps the per-Page
//! order (a webhook refresh and a poll refresh never write one Page at once) and its
//! rules: `needs_reauth` and `disconnected` Pages are skipped without a Graph call,
//! rate limits pause the Page or the app.
//!
//! It also slows itself down before Meta has to: the Graph client records the highest
//! usage percentage seen in `X-App-Usage` / `X-Business-Use-Case-Usage` in a
//! [`UsageGauge`]; above 80 % the poller waits between Pages, longer the closer to 100.
//!
//! Owns no tree; holds only counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt as _;

use crate::messages::{ListPages, Ping, PollPage, Shutdown};
use crate::page_writer::PageWriterActor;
use crate::token_vault::TokenVaultActor;

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `poller::<Message>` keeps working for callers.
pub use crate::messages::poller::*;

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

/// See the module docs.
pub struct PollerActor {
    vault: Addr<TokenVaultActor>,
    writer: Addr<PageWriterActor>,
    config: PollConfig,
    usage: UsageGauge,
    stats: PollStats,
    /// Shared with running poll work; copied into `stats.slowed` when asked.
    slowed: Arc<AtomicU64>,
}

impl PollerActor {
    pub fn new(
        vault: Addr<TokenVaultActor>,
        writer: Addr<PageWriterActor>,
        config: PollConfig,
        usage: UsageGauge,
    ) -> Self {
        PollerActor { vault, writer, config, usage, stats: PollStats::default(), slowed: Arc::default() }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>, first: bool) {
        let Some(interval) = self.config.interval else { return };
        let millis = interval.as_millis().min(u64::MAX as u128) as u64;
        let delay = if first {
            rand::random_range(millis / 10..=millis.max(1))
        } else {
            millis - millis / 10 + rand::random_range(0..=millis / 5)
        };
        ctx.run_later(Duration::from_millis(delay), |act, ctx| {
            act.run(ctx);
            act.schedule(ctx, false);
        });
    }

    fn run(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.stats.running {
            return false;
        }
        self.stats.running = true;
        let vault = self.vault.clone();
        let writer = self.writer.clone();
        let usage = self.usage.clone();
        let slowed = self.slowed.clone();
        let concurrency = self.config.concurrency.max(1);
        let work = async move {
            let pages = match vault.send(ListPages).await {
                Ok(Ok(pages)) => pages,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "poll run could not list Pages");
                    return (0, 0);
                }
                Err(e) => {
                    tracing::error!(error = %e, "poll run could not reach the token vault");
                    return (0, 0);
                }
            };
            tracing::info!(pages = pages.len(), "poll run started");
            let results: Vec<bool> = futures_util::stream::iter(pages)
                .map(|(page, _owner)| {
                    let writer = writer.clone();
                    let usage = usage.clone();
                    let slowed = slowed.clone();
                    async move {
                        let pause = usage.pause();
                        if !pause.is_zero() {
                            slowed.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                usage = usage.percent(),
                                pause_s = pause.as_secs(),
                                "Graph usage high; slowing the poll"
                            );
                            tokio::time::sleep(pause).await;
                        }
                        writer.send(PollPage { page }).await.unwrap_or(false)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let written = results.iter().filter(|w| **w).count() as u64;
            (results.len() as u64, written)
        };
        ctx.spawn(work.into_actor(self).map(|(refreshes, written), act, _| {
            act.stats.running = false;
            act.stats.runs += 1;
            act.stats.refreshes += refreshes;
            act.stats.written += written;
            tracing::info!(refreshes, written, "poll run finished");
        }));
        true
    }
}

impl Actor for PollerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.schedule(ctx, true);
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

impl Handler<PollNow> for PollerActor {
    type Result = bool;
    fn handle(&mut self, _: PollNow, ctx: &mut Self::Context) -> bool {
        self.run(ctx)
    }
}

impl Handler<GetPollStats> for PollerActor {
    type Result = MessageResult<GetPollStats>;
    fn handle(&mut self, _: GetPollStats, _: &mut Self::Context) -> Self::Result {
        let mut stats = self.stats.clone();
        stats.slowed = self.slowed.load(Ordering::Relaxed);
        MessageResult(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_slows_the_poll_only_near_the_limit() {
        let gauge = UsageGauge::default();
        gauge.record(50);
        assert_eq!(gauge.pause(), Duration::ZERO);
        gauge.record(80);
        assert_eq!(gauge.pause(), Duration::from_secs(2));
        gauge.record(95);
        assert!(gauge.pause() > Duration::from_secs(2));
        gauge.record(100);
        assert_eq!(gauge.pause(), Duration::from_secs(300));
    }
}
