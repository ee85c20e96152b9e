//! PageWriterActor on a temporary store: the figures it publishes (read without a
//! message, as `/metrics` reads them) against the truth — a full scan of `page_state`,
//! the messages' answers, and what the refreshes did.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;

use super::*;
use crate::graph::{LimitScope, PageData};
use crate::ids::UserId;
use crate::messages::{MarkDisconnected, PageNames, Shutdown, StorePageToken};
use crate::seal::{EncryptionKey, Sealer};
use crate::secret::Secret;
use crate::store::StoreConfig;

/// Answers every Page with the same small object, except the Pages given a fault;
/// no answer leaves until the gate is open.
struct FakeSource {
    faults: Mutex<HashMap<String, FetchError>>,
    /// Page names other than the default "A Page".
    names: Mutex<HashMap<String, String>>,
    open: tokio::sync::watch::Sender<bool>,
}

impl FakeSource {
    fn new(open: bool) -> Arc<Self> {
        Arc::new(FakeSource {
            faults: Mutex::default(),
            names: Mutex::default(),
            open: tokio::sync::watch::Sender::new(open),
        })
    }

    fn fail(&self, page: &str, err: FetchError) {
        self.faults.lock().unwrap().insert(page.to_owned(), err);
    }

    fn name(&self, page: &str, name: &str) {
        self.names.lock().unwrap().insert(page.to_owned(), name.to_owned());
    }

    fn open_gate(&self) {
        self.open.send_replace(true);
    }
}

impl PageSource for FakeSource {
    fn fetch_page(&self, page: &PageId, _token: &Secret) -> BoxFuture<'static, Result<PageData, FetchError>> {
        let fault = self.faults.lock().unwrap().get(page.as_str()).cloned();
        let name = self.names.lock().unwrap().get(page.as_str()).cloned().unwrap_or_else(|| "A Page".into());
        let mut open = self.open.subscribe();
        let id = page.to_string();
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
            match fault {
                Some(err) => Err(err),
                None => {
                    let mut data = PageData::new();
                    data.insert("id".into(), id.into());
                    data.insert("name".into(), name.into());
                    Ok(data)
                }
            }
        })
    }
}

fn page(id: &str) -> PageId {
    PageId::parse(id).unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    vault: Addr<TokenVaultActor>,
    source: Arc<FakeSource>,
    pages_dir: PathBuf,
}

/// A store whose `page_state` holds `states` and whose `inbox` holds `inbox`, and a
/// vault holding a token for each of `tokens`.
async fn setup(states: &[(&str, PageState)], inbox: &[&[&str]], tokens: &[&str], gate_open: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let tree = store.tree(trees::PAGE_STATE).unwrap();
    for (id, state) in states {
        tree.insert(id.as_bytes(), serde_json::to_vec(state).unwrap()).unwrap();
    }
    let inbox_tree = store.tree(trees::INBOX).unwrap();
    for (seq, pages) in inbox.iter().enumerate() {
        let pages: Vec<PageId> = pages.iter().map(|p| page(p)).collect();
        inbox_tree.insert((seq as u64).to_be_bytes(), records::encode_pages(&pages)).unwrap();
    }
    let vault = TokenVaultActor::new(store.clone(), Sealer::new(&EncryptionKey::generate().unwrap())).unwrap().start();
    let owner = UserId::random();
    for id in tokens {
        let token = Secret::new(format!("token-{id}"));
        vault.send(StorePageToken { page: page(id), owner: owner.clone(), token }).await.unwrap().unwrap();
    }
    let pages_dir = dir.path().join("facebook");
    std::fs::create_dir_all(&pages_dir).unwrap();
    Setup { _dir: dir, store, vault, source: FakeSource::new(gate_open), pages_dir }
}

fn start(setup: &Setup) -> (Addr<PageWriterActor>, WriterFigures) {
    let mut config = WriterConfig::new(&setup.pages_dir);
    // A rate-limited Page stays paused for the whole test.
    config.backoff_base = Duration::from_secs(3600);
    let source: Arc<dyn PageSource> = setup.source.clone();
    let actor = PageWriterActor::new(setup.store.clone(), setup.vault.clone(), source, config, None).unwrap();
    let figures = actor.figures();
    (actor.start(), figures)
}

fn state(status: SyncStatus, last_success: Option<u64>) -> PageState {
    PageState { status, last_success, ..PageState::default() }
}

/// Pages by status and the stalest success, from a full scan of `page_state`: what
/// the index must amount to (see `index.rs` for which Pages the stalest counts).
fn scan(store: &Store) -> (Vec<(SyncStatus, u64)>, Option<u64>) {
    let mut counts: Vec<(SyncStatus, u64)> = SyncStatus::ALL.iter().map(|s| (*s, 0)).collect();
    let mut stalest: Option<u64> = None;
    for item in store.tree(trees::PAGE_STATE).unwrap().iter() {
        let (_, raw) = item.unwrap();
        let state: PageState = serde_json::from_slice(&raw).unwrap();
        counts.iter_mut().find(|(s, _)| *s == state.status).unwrap().1 += 1;
        let kept = !matches!(state.status, SyncStatus::NeedsReauth | SyncStatus::Disconnected);
        if let (true, Some(at)) = (kept, state.last_success) {
            stalest = Some(stalest.map_or(at, |s: u64| s.min(at)));
        }
    }
    (counts, stalest)
}

/// The published figures equal the full scan and the messages' answers.
async fn assert_published_is_true(step: &str, addr: &Addr<PageWriterActor>, store: &Store, figures: &WriterFigures) {
    // Answered after every message sent before: the writer is done with them.
    let counted = addr.send(CountPagesByStatus).await.unwrap().unwrap();
    let stalest = addr.send(GetStalestSync).await.unwrap().map(|s| s.last_success);
    let stats = addr.send(GetWriterStats).await.unwrap();
    let (scanned, scanned_stalest) = scan(store);
    assert_eq!(figures.pages_by_status(), scanned, "{step}: Pages by status, published vs scanned");
    assert_eq!(counted, scanned, "{step}: Pages by status, message vs scanned");
    assert_eq!(figures.stalest_success(), scanned_stalest, "{step}: stalest, published vs scanned");
    assert_eq!(stalest, scanned_stalest, "{step}: stalest, message vs scanned");
    assert_eq!(figures.stats(), stats, "{step}: writer stats, published vs message");
}

/// Polls the published figures (no message) until `check` holds; panics after 10 s.
async fn until_published(figures: &WriterFigures, what: &str, check: impl Fn(&WriterStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = figures.stats();
        if check(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "never published {what}: {stats:?}");
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
}

#[actix::test]
async fn the_published_counts_and_stalest_success_equal_a_full_scan_after_every_transition() {
    let setup = setup(
        &[
            ("11", state(SyncStatus::Synced, Some(100))),
            ("12", state(SyncStatus::Synced, Some(200))),
            ("13", state(SyncStatus::Error, Some(300))),
            ("14", state(SyncStatus::NeedsReauth, Some(50))),
            ("15", state(SyncStatus::Pending, None)),
        ],
        &[],
        &["11", "12", "13", "14", "16", "17"],
        true,
    )
    .await;
    let (addr, figures) = start(&setup);
    let store = &setup.store;
    assert_published_is_true("built at start", &addr, store, &figures).await;
    assert_eq!(figures.stalest_success(), Some(100));

    // A sync moves the stalest Page to the back.
    assert!(addr.send(SyncNow { page: page("11") }).await.unwrap());
    assert_published_is_true("11 synced", &addr, store, &figures).await;
    assert_eq!(figures.stalest_success(), Some(200));

    // A refused token takes the Page out of the order.
    setup.source.fail("12", FetchError::Auth { code: 190, subcode: None, message: "expired".into() });
    assert!(!addr.send(SyncNow { page: page("12") }).await.unwrap());
    assert_published_is_true("12 needs reauth", &addr, store, &figures).await;
    assert_eq!(figures.stalest_success(), Some(300), "the failing Page 13 keeps its old success");

    // A new Page: pending, then synced.
    addr.send(PageConnected { page: page("16"), shop: None, name: None }).await.unwrap();
    assert_published_is_true("16 connected", &addr, store, &figures).await;
    assert!(addr.send(SyncNow { page: page("16") }).await.unwrap());
    assert_published_is_true("16 synced", &addr, store, &figures).await;

    // A Page rate-limited keeps its place; one failing without a success has none.
    setup.source.fail("13", FetchError::RateLimited { code: 32, scope: LimitScope::Page, retry_after: None });
    assert!(!addr.send(SyncNow { page: page("13") }).await.unwrap());
    assert_published_is_true("13 rate limited", &addr, store, &figures).await;
    setup.source.fail("17", FetchError::Permanent { code: Some(100), detail: "gone".into() });
    assert!(!addr.send(SyncNow { page: page("17") }).await.unwrap());
    assert_published_is_true("17 failed", &addr, store, &figures).await;

    // Disconnected and deleted Pages leave the order; the counts follow.
    addr.send(MarkDisconnected { pages: vec![page("13"), page("15")], reason: "deauthorized" }).await.unwrap();
    assert_published_is_true("13 and 15 disconnected", &addr, store, &figures).await;
    addr.send(DeletePages { pages: vec![page("11"), page("99")] }).await.unwrap().unwrap();
    assert_published_is_true("11 deleted", &addr, store, &figures).await;

    // Reconnected: pending with its old success, back in the order and the stalest.
    addr.send(PageConnected { page: page("12"), shop: None, name: None }).await.unwrap();
    assert_published_is_true("12 reconnected", &addr, store, &figures).await;
    assert_eq!(figures.stalest_success(), Some(200));

    // A Page nobody connected and one needing reauth change no record, only counters.
    assert!(!addr.send(SyncNow { page: page("18") }).await.unwrap());
    assert!(!addr.send(SyncNow { page: page("14") }).await.unwrap());
    assert_published_is_true("unknown and skipped", &addr, store, &figures).await;

    let stats = figures.stats();
    assert_eq!(
        (stats.pages_written, stats.refresh_errors, stats.unknown_pages, stats.refreshes_skipped),
        (2, 3, 1, 1),
        "{stats:?}"
    );
    // The rate-limited Page waits out its back-off: counted as waiting, nothing runs.
    assert_eq!((stats.inbox_depth, stats.running, stats.waiting_pages), (0, 0, 1), "{stats:?}");
}

#[actix::test]
async fn the_published_depths_follow_deliveries_and_the_start_up_replay_without_a_message() {
    // Two deliveries left in the inbox by a previous run; the source holds every
    // answer until the gate opens.
    let setup = setup(&[], &[&["21"], &["21", "22"]], &["21", "22", "23"], false).await;
    let (addr, figures) = start(&setup);
    until_published(&figures, "the replay running", |s| s.inbox_depth == 2 && s.running == 2).await;

    // New deliveries while the replay's refreshes hang: 21 and 22 are running, so
    // they queue behind; 23 starts.
    for pages in [vec![page("21")], vec![page("22"), page("23")], vec![page("23")]] {
        let receipt = addr.send(AcceptDelivery { pages, forward: None }).await.unwrap().unwrap();
        assert!(receipt.seq.is_some());
    }
    until_published(&figures, "five deliveries, three refreshes", |s| {
        (s.inbox_depth, s.running, s.accepted) == (5, 3, 3)
    })
    .await;
    assert_eq!(figures.stats(), addr.send(GetWriterStats).await.unwrap());

    setup.source.open_gate();
    // Read only what is published: idle, the replayed records removed off-thread.
    until_published(&figures, "idle", |s| (s.inbox_depth, s.running, s.waiting_pages) == (0, 0, 0)).await;
    // 21, 22, 23 each written once, then refreshed again with the same answer.
    until_published(&figures, "every refresh counted", |s| (s.pages_written, s.pages_unchanged) == (3, 3)).await;
    assert_eq!(figures.pages_by_status(), scan(&setup.store).0);
    assert!(setup.store.tree(trees::INBOX).unwrap().is_empty());
    assert_eq!(figures.stats(), addr.send(GetWriterStats).await.unwrap());
}

/// The index as a start-up builds it from `store` (saved or read): Pages by status and
/// the stalest success, published, from a writer started and left running.
fn index_at_start(setup: &Setup) -> (Vec<(SyncStatus, u64)>, Option<u64>) {
    let (_, figures) = start(setup);
    (figures.pages_by_status(), figures.stalest_success())
}

fn saved_index(store: &Store) -> Option<sled::IVec> {
    store.tree(trees::WRITER_META).unwrap().get(SAVED_INDEX).unwrap()
}

/// Writes a `page_state` record behind the writer's back: never done by pagesync,
/// here to see whether a start read the records or took the saved index.
fn write_behind(store: &Store, id: &str, state: &PageState) {
    store.tree(trees::PAGE_STATE).unwrap().insert(id.as_bytes(), serde_json::to_vec(state).unwrap()).unwrap();
}

#[actix::test]
async fn a_clean_stop_saves_the_index_and_the_next_start_takes_it_instead_of_reading_every_record() {
    let setup = setup(
        &[
            ("31", state(SyncStatus::Synced, Some(100))),
            ("32", state(SyncStatus::Error, Some(50))),
            ("33", state(SyncStatus::NeedsReauth, Some(10))),
            ("34", state(SyncStatus::Pending, None)),
        ],
        &[],
        &["31", "35"],
        true,
    )
    .await;
    let (addr, figures) = start(&setup);
    // A change after the start is in what is saved.
    assert!(addr.send(SyncNow { page: page("35") }).await.unwrap());
    let (truth, stalest) = scan(&setup.store);
    assert_eq!((figures.pages_by_status(), figures.stalest_success()), (truth.clone(), stalest));
    addr.send(Shutdown).await.unwrap();
    assert!(saved_index(&setup.store).is_some(), "nothing saved at the stop");

    write_behind(&setup.store, "36", &state(SyncStatus::Synced, Some(1)));
    assert_eq!(index_at_start(&setup), (truth, Some(50)), "the start read the records: it counted 36");
    assert_eq!(saved_index(&setup.store), None, "the saved index stays in the store after it was taken");
}

#[actix::test]
async fn a_start_after_a_crash_reads_every_record_because_the_saved_index_was_taken() {
    let setup = setup(&[("41", state(SyncStatus::Synced, Some(100)))], &[], &[], true).await;
    let (addr, _) = start(&setup);
    addr.send(Shutdown).await.unwrap();
    // Started from the saved index, then "crashed": never told to stop, so nothing is
    // saved again; a record changed meanwhile must be counted by the next start.
    let _crashed = start(&setup);
    write_behind(&setup.store, "42", &state(SyncStatus::Error, Some(20)));
    assert_eq!(index_at_start(&setup), scan(&setup.store));
    assert_eq!(scan(&setup.store).1, Some(20));
}

#[actix::test]
async fn a_damaged_saved_index_is_dropped_and_every_record_read() {
    let setup = setup(
        &[("51", state(SyncStatus::Synced, Some(100))), ("52", state(SyncStatus::Pending, Some(70)))],
        &[],
        &[],
        true,
    )
    .await;
    let meta = setup.store.tree(trees::WRITER_META).unwrap();
    for damaged in [&b""[..], b"\x01", b"\x02\x06", &[0xff; 100][..]] {
        meta.insert(SAVED_INDEX, damaged).unwrap();
        assert_eq!(index_at_start(&setup), scan(&setup.store), "{damaged:?}");
        assert_eq!(saved_index(&setup.store), None, "{damaged:?} left in the store");
    }
}

fn write_file(setup: &Setup, id: &str, name: &str) {
    let dir = setup.pages_dir.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("page_data.json"), serde_json::json!({ "id": id, "name": name }).to_string()).unwrap();
}

#[actix::test]
async fn pages_are_described_from_their_states_and_only_older_states_have_their_file_read() {
    let named = PageState {
        names: Some(PageNames { name: Some("From State".into()), category: Some("Bakery".into()) }),
        ..state(SyncStatus::Synced, Some(10))
    };
    let setup = setup(&[("61", named), ("62", state(SyncStatus::Synced, Some(10)))], &[], &["64", "65"], true).await;
    write_file(&setup, "61", "From File");
    write_file(&setup, "62", "Older State");
    let (addr, _) = start(&setup);
    // 64: refreshed now, so its state holds the names; its file is gone afterwards.
    assert!(addr.send(SyncNow { page: page("64") }).await.unwrap());
    std::fs::remove_file(setup.pages_dir.join("64").join("page_data.json")).unwrap();
    // 65: a name too long to keep in the state is read from the file.
    let long = "n".repeat(PageNames::MAX_LEN + 1);
    setup.source.name("65", &long);
    assert!(addr.send(SyncNow { page: page("65") }).await.unwrap());

    let pages = ["61", "62", "63", "64", "65"].map(page).to_vec();
    let described = addr.send(DescribePages { pages }).await.unwrap();
    let names: Vec<Option<&str>> = described.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("From State"), Some("Older State"), None, Some("A Page"), Some(long.as_str())]);
    assert_eq!(described[0].category.as_deref(), Some("Bakery"));
    assert!(described[2].state.is_none(), "63 has no state");
    assert_eq!(described[3].state.as_ref().map(|s| s.status), Some(SyncStatus::Synced));
}

/// The inbox's records: seq -> the Pages each names.
fn inbox_records(store: &Store) -> Vec<(u64, Vec<String>)> {
    let tree = store.tree(trees::INBOX).unwrap();
    let decode = |(k, v): (sled::IVec, sled::IVec)| {
        let seq = u64::from_be_bytes(<[u8; 8]>::try_from(k.as_ref()).unwrap());
        (seq, records::decode_pages(&v).unwrap().iter().map(|p| p.to_string()).collect())
    };
    tree.iter().map(|item| decode(item.unwrap())).collect()
}

#[actix::test]
async fn a_delivery_whose_pages_already_wait_behind_a_record_gets_none_of_its_own() {
    let setup = setup(&[], &[], &["31", "32"], false).await;
    let (addr, figures) = start(&setup);
    let accept = |pages: &[&str]| {
        let pages = pages.iter().map(|p| page(p)).collect();
        addr.send(AcceptDelivery { pages, forward: None })
    };

    // 31's refresh starts and hangs at the gate: the next delivery is the one more
    // refresh queued behind it, and needs a record.
    let first = accept(&["31"]).await.unwrap().unwrap();
    until_published(&figures, "31 running", |s| s.running == 1).await;
    let second = accept(&["31"]).await.unwrap().unwrap();
    // Covered: 31's queued refresh starts after these arrived, and its record stays.
    let third = accept(&["31"]).await.unwrap().unwrap();
    // 32 has nothing queued: a delivery covered only in part gets its record.
    let fourth = accept(&["31", "32"]).await.unwrap().unwrap();
    let fifth = accept(&["32", "31"]).await.unwrap().unwrap();
    assert_eq!((first.seq, second.seq), (Some(0), Some(1)));
    assert_eq!((third.seq, third.pages), (None, 1), "covered, so no record");
    assert_eq!((fourth.seq, fourth.pages), (Some(2), 2));
    until_published(&figures, "32 running", |s| s.running == 2).await;
    let sixth = accept(&["32", "31"]).await.unwrap().unwrap();
    let seventh = accept(&["32", "31", "32"]).await.unwrap().unwrap();
    assert_eq!((fifth.seq, sixth.seq, seventh.seq, seventh.pages), (Some(3), None, None, 2));
    let records = inbox_records(&setup.store);
    let names = |pages: &[&str]| pages.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        records,
        vec![(0, names(&["31"])), (1, names(&["31"])), (2, names(&["31", "32"])), (3, names(&["32", "31"]))]
    );
    // Every acknowledged delivery is counted until its Pages are done.
    until_published(&figures, "seven deliveries", |s| (s.inbox_depth, s.accepted) == (7, 7)).await;

    setup.source.open_gate();
    until_published(&figures, "idle", |s| (s.inbox_depth, s.running, s.waiting_pages) == (0, 0, 0)).await;
    // The hung refreshes of 31 and 32 and the one queued behind each.
    until_published(&figures, "four refreshes", |s| s.pages_written + s.pages_unchanged == 4).await;
    assert!(inbox_records(&setup.store).is_empty());
}

#[actix::test]
async fn after_a_stop_the_record_a_covered_delivery_relied_on_is_replayed() {
    let setup = setup(&[], &[], &["41"], false).await;
    {
        let (addr, figures) = start(&setup);
        let accept = || addr.send(AcceptDelivery { pages: vec![page("41")], forward: None });
        accept().await.unwrap().unwrap();
        until_published(&figures, "41 running", |s| s.running == 1).await;
        let queued = accept().await.unwrap().unwrap();
        let covered = accept().await.unwrap().unwrap();
        assert_eq!((queued.seq, covered.seq), (Some(1), None));
        // The writer stops with 41's refresh hung (what it leaves is what a crash
        // leaves in the inbox: records are removed only once done).
        let weak = addr.downgrade();
        addr.send(Shutdown).await.unwrap();
        drop(addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        while weak.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the first writer never stopped");
            actix::clock::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(inbox_records(&setup.store), vec![(0, vec!["41".into()]), (1, vec!["41".into()])]);

    // The next start replays those records: 41 is refreshed, which is what the
    // covered delivery was promised.
    setup.source.open_gate();
    let (_addr, figures) = start(&setup);
    until_published(&figures, "41 refreshed", |s| (s.pages_written, s.inbox_depth) == (1, 0)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !inbox_records(&setup.store).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(inbox_records(&setup.store).is_empty(), "the replayed records are removed once 41 is written");
}

#[test]
fn inbox_keys_stay_below_the_covered_range_and_a_record_in_it_is_dropped_at_start() {
    assert!(has_record(0) && has_record(COVERED_SEQ - 1) && has_record(REPLAY_SEQ));
    assert!(!has_record(COVERED_SEQ) && !has_record(REPLAY_SEQ - 1));
    actix::System::new().block_on(async {
        let setup = setup(&[], &[&["51"]], &["51"], true).await;
        let tree = setup.store.tree(trees::INBOX).unwrap();
        tree.insert(COVERED_SEQ.to_be_bytes(), records::encode_pages(&[page("51")])).unwrap();
        let actor = PageWriterActor::new(
            setup.store.clone(),
            setup.vault.clone(),
            setup.source.clone(),
            WriterConfig::new(&setup.pages_dir),
            None,
        )
        .unwrap();
        assert_eq!(actor.next_seq, 1, "seqs follow the last record below the covered range");
        assert_eq!(inbox_records(&setup.store), vec![(0, vec!["51".into()])]);
    });
}
