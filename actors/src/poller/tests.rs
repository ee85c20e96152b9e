//! PollerActor on paused tokio time: a real TokenVaultActor on a temporary store, and a
//! stand-in for the PageWriterActor that notes when each Page's poll arrived. Virtual
//! time only moves when every task waits for a timer, so "not before its time" and "before
//! the next Page's time" are exact statements here, not races.

use std::sync::Mutex;

use super::*;
use crate::seal::{EncryptionKey, Sealer};
use crate::secret::Secret;
use crate::store::{Store, StoreConfig};
use crate::token_vault::StorePageToken;

/// A poll as the stand-in saw it: the Page, and when (since the test's start).
type Seen = (PageId, Duration);

#[derive(Default)]
struct Notes {
    polls: Vec<Seen>,
    in_flight: usize,
    most_in_flight: usize,
}

/// Stands in for the PageWriterActor: notes each [`PollPage`] and answers `true` after
/// `delay` (a Graph that takes that long).
struct FakeWriter {
    notes: Arc<Mutex<Notes>>,
    t0: tokio::time::Instant,
    delay: Duration,
}

impl Actor for FakeWriter {
    type Context = Context<Self>;
}

impl Handler<PollPage> for FakeWriter {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: PollPage, _: &mut Self::Context) -> Self::Result {
        {
            let mut notes = self.notes.lock().unwrap();
            notes.polls.push((msg.page, self.t0.elapsed()));
            notes.in_flight += 1;
            notes.most_in_flight = notes.most_in_flight.max(notes.in_flight);
        }
        let (notes, delay) = (self.notes.clone(), self.delay);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            notes.lock().unwrap().in_flight -= 1;
            true
        })
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    poller: Addr<PollerActor>,
    notes: Arc<Mutex<Notes>>,
    /// The Pages, in list order.
    pages: Vec<PageId>,
}

/// `n` Pages in a real vault; then time is paused and a poller started whose wall clock
/// reads `clock_at_start` (Unix ms) and moves with virtual time.
async fn setup(n: usize, config: PollConfig, clock_at_start: u64, delay: Duration) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let vault = TokenVaultActor::new(store, Sealer::new(&EncryptionKey::generate().unwrap())).unwrap().start();
    let owner = UserId::random();
    // Same length, so that the store's byte order is the numeric order.
    let pages: Vec<PageId> = (0..n).map(|i| PageId::parse(&(1000 + i).to_string()).unwrap()).collect();
    for page in &pages {
        let msg = StorePageToken { page: page.clone(), owner: owner.clone(), token: Secret::new("t") };
        vault.send(msg).await.unwrap().unwrap();
    }
    tokio::time::pause();
    let t0 = tokio::time::Instant::now();
    let notes = Arc::new(Mutex::new(Notes::default()));
    let writer = FakeWriter { notes: notes.clone(), t0, delay }.start();
    let clock: Clock = Arc::new(move || clock_at_start + pace::millis(t0.elapsed()));
    let poller = PollerActor::new(vault, writer.recipient(), config, UsageGauge::default()).with_clock(clock).start();
    Setup { _dir: dir, poller, notes, pages }
}

impl Setup {
    /// Waits (in virtual time, at most `within`) until `runs` runs have finished.
    async fn runs(&self, runs: u64, within: Duration) -> PollStats {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let stats = self.poller.send(GetPollStats).await.unwrap();
            if stats.runs >= runs {
                return stats;
            }
            assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn polls(&self) -> Vec<Seen> {
        self.notes.lock().unwrap().polls.clone()
    }
}

const INTERVAL: Duration = Duration::from_secs(1_000);
/// A moment on the wall clock where a cycle of [`INTERVAL`] begins.
const CYCLE_START: u64 = 1_767_000_000_000;
/// The tests that watch whole runs start the poller this long before a cycle begins,
/// in the previous cycle's headroom (where a resumed run has nothing left): started
/// exactly at [`CYCLE_START`], the first Page's time would have passed by the
/// millisecond that starting takes, and a resumed run rightly leaves it out.
const LEAD: Duration = Duration::from_secs(1);

fn paced(concurrency: usize) -> PollConfig {
    PollConfig { interval: Some(INTERVAL), concurrency }
}

/// Page `j` of `n`'s start in its cycle.
fn due(n: usize, j: usize) -> Duration {
    Duration::from_millis(Pace::new(pace::millis(INTERVAL), n as u64).due(j as u64))
}

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

#[actix::test]
async fn a_run_polls_every_page_once_in_list_order_spread_over_the_interval() {
    assert_eq!(CYCLE_START % pace::millis(INTERVAL), 0);
    let n = 10;
    let app = setup(n, paced(4), CYCLE_START - pace::millis(LEAD), Duration::ZERO).await;
    let stats = app.runs(1, INTERVAL).await;
    assert_eq!((stats.runs, stats.refreshes, stats.written), (1, n as u64, n as u64));
    let polls = app.polls();
    let order: Vec<&PageId> = polls.iter().map(|(p, _)| p).collect();
    assert_eq!(order, app.pages.iter().collect::<Vec<_>>(), "every Page once, in list order");
    for (j, (page, at)) in polls.iter().enumerate() {
        // Not before its time, and before the next Page's: one Page every 85 s.
        assert!(*at >= LEAD + due(n, j), "{page} at {at:?}, due {:?}", LEAD + due(n, j));
        assert!(*at < LEAD + due(n, j + 1), "{page} at {at:?}, the next is due {:?}", LEAD + due(n, j + 1));
    }
    // The next cycle's run starts at its beginning and polls every Page once more.
    app.runs(2, 2 * INTERVAL).await;
    let polls = app.polls();
    assert_eq!(polls.len(), 2 * n);
    for (j, (page, at)) in polls[n..].iter().enumerate() {
        assert_eq!(page, &app.pages[j]);
        let (due, next) = (LEAD + INTERVAL + due(n, j), LEAD + INTERVAL + due(n, j + 1));
        assert!(*at >= due && *at < next, "{page} at {at:?}, due {due:?}");
    }
}

#[actix::test]
async fn a_daemon_started_mid_cycle_polls_only_the_pages_still_due_then_all_of_them() {
    let n = 10;
    let phase = INTERVAL / 2;
    let app = setup(n, paced(4), CYCLE_START + pace::millis(phase), Duration::ZERO).await;
    let stats = app.runs(1, INTERVAL).await;
    // Half way through the cycle, the Pages due at 510 s and later are left: 6 to 9.
    assert_eq!(stats.refreshes, 4, "{stats:?}");
    let polls = app.polls();
    let order: Vec<&PageId> = polls.iter().map(|(p, _)| p).collect();
    assert_eq!(order, app.pages[6..].iter().collect::<Vec<_>>());
    // Their spacing kept, all shifted by the settle time (a tenth of the interval).
    let settle = INTERVAL / 10;
    for ((page, at), j) in polls.iter().zip(6..) {
        let (due, next) = (due(n, j) - phase + settle, due(n, j + 1) - phase + settle);
        assert!(*at >= due && *at < next, "{page} at {at:?}, due {due:?}");
    }
    // The next cycle (500 s later on this clock) polls every Page from the first.
    app.runs(2, INTERVAL).await;
    let polls = app.polls();
    assert_eq!(polls.len(), 4 + n);
    for (j, (page, at)) in polls[4..].iter().enumerate() {
        assert_eq!(page, &app.pages[j]);
        assert!(*at >= INTERVAL - phase + due(n, j), "{page} at {at:?}");
    }
}

#[actix::test]
async fn a_daemon_started_in_the_headroom_waits_for_the_next_cycle() {
    let n = 10;
    let phase = INTERVAL * 9 / 10;
    let app = setup(n, paced(4), CYCLE_START + pace::millis(phase), Duration::ZERO).await;
    let stats = app.runs(1, INTERVAL).await;
    assert_eq!(stats.refreshes, n as u64, "one run, the next cycle's: {stats:?}");
    let polls = app.polls();
    assert!(polls.iter().all(|(_, at)| *at >= INTERVAL - phase), "{polls:?}");
}

#[actix::test]
async fn a_graph_slower_than_the_pace_is_caught_up_with_at_most_concurrency_pages_at_once() {
    // 20 Pages, one due every 42.5 s; each poll takes 300 s: three at once cannot keep up.
    let n = 20;
    let app = setup(n, paced(3), CYCLE_START - pace::millis(LEAD), Duration::from_secs(300)).await;
    let stats = app.runs(1, 4 * INTERVAL).await;
    assert_eq!((stats.runs, stats.refreshes), (1, n as u64));
    let notes = app.notes.lock().unwrap();
    assert_eq!(notes.most_in_flight, 3, "caught up with every place taken, never more");
    let order: Vec<&PageId> = notes.polls.iter().take(n).map(|(p, _)| p).collect();
    assert_eq!(order, app.pages.iter().collect::<Vec<_>>(), "every Page once, in list order");
}

#[actix::test]
async fn poll_now_polls_every_page_at_once_even_with_polling_off() {
    let n = 10;
    let off = PollConfig { interval: None, concurrency: 4 };
    let app = setup(n, off, CYCLE_START, Duration::ZERO).await;
    assert!(app.poller.send(PollNow).await.unwrap());
    assert!(!app.poller.send(PollNow).await.unwrap(), "one run at a time");
    let stats = app.runs(1, INTERVAL).await;
    assert_eq!((stats.runs, stats.refreshes), (1, n as u64));
    let polls = app.polls();
    let order: Vec<&PageId> = polls.iter().map(|(p, _)| p).collect();
    assert_eq!(order, app.pages.iter().collect::<Vec<_>>());
    assert!(polls.iter().all(|(_, at)| *at < Duration::from_secs(1)), "unpaced: {polls:?}");
}
