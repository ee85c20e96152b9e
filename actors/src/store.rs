//! The one sled database and its trees, plus the group-commit writer.
//!
//! Each tree belongs to exactly one actor (see the crate docs for the map); this module
//! only opens them and hands them out. Writes that must be on disk before an HTTP answer
//! (a webhook delivery entering the inbox, a token arriving from OAuth) go through
//! [`Store::commit`], which queues them for one dedicated writer thread. That thread
//! takes everything queued, inserts it, calls sled's blocking `flush()` once and then
//! answers every waiter: concurrent writers share one flush (group commit).
//!
//! Why a thread and not `flush_async`: sled 0.34.7 deadlocks when several tasks call
//! `flush_async` at once (docs/architecture.md, "Group commit"). Exactly one thread ever flushes here,
//! so that cannot happen, and the async executors never block on disk.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// Tree names. Internal to the project, but stable: renaming one loses its data.
pub mod trees {
    /// Webhook deliveries acknowledged but not yet fully processed (PageWriterActor).
    pub const INBOX: &str = "inbox";
    /// Per-Page sync state: status, last success, last error (PageWriterActor).
    pub const PAGE_STATE: &str = "page_state";
    /// Page id -> sealed Page token (TokenVaultActor).
    pub const PAGE_TOKENS: &str = "page_tokens";
    /// Page id -> owning user UUID (TokenVaultActor).
    pub const PAGE_OWNER: &str = "page_owner";
    /// Page id -> Facebook user id that granted the Page token (TokenVaultActor).
    pub const PAGE_GRANTOR: &str = "page_grantor";
    /// User UUID -> sealed long-lived Facebook user token (TokenVaultActor).
    pub const USER_TOKENS: &str = "user_tokens";
    /// Shop domain -> sealed Shopify token (TokenVaultActor).
    pub const SHOP_TOKENS: &str = "shop_tokens";
    /// SHA-256 of a session id -> session (SessionActor).
    pub const SESSIONS: &str = "sessions";
    /// Nonce of a Shopify OAuth `state` already used -> its expiry (SessionActor).
    pub const SHOPIFY_STATES: &str = "shopify_states";
    /// Facebook state nonce -> user and expiry (SessionActor).
    pub const FACEBOOK_NONCES: &str = "facebook_nonces";
    /// Shop domain -> user UUID (SessionActor).
    pub const SHOPS: &str = "shops";
    /// Index: user UUID -> shop domain, the reverse of `shops` (SessionActor).
    pub const SHOPS_BY_USER: &str = "shops_by_user";
    /// Index: shop domain + `/` + session key -> nothing, a shop's sessions (SessionActor).
    pub const SHOP_SESSIONS: &str = "shop_sessions";
    /// Index: big-endian expiry seconds + kind byte + record key -> nothing, for the
    /// incremental sweep of sessions, nonces, used states and webhook ids (SessionActor).
    pub const SESSION_EXPIRIES: &str = "session_expiries";
    /// SHA-256 of a handled `X-Shopify-Webhook-Id` -> expiry (SessionActor).
    pub const SHOPIFY_WEBHOOKS: &str = "shopify_webhooks";
    /// Shop domain -> unix milliseconds of its latest completed install (SessionActor).
    pub const SHOP_INSTALLS: &str = "shop_installs";
    /// SessionActor's bookkeeping: the version of its indexes (SessionActor).
    pub const SESSION_META: &str = "session_meta";
    /// Data-deletion confirmation code -> status (SessionActor).
    pub const DELETIONS: &str = "deletions";
    /// Facebook user id -> unix seconds of their latest connect (TokenVaultActor).
    pub const FACEBOOK_USERS: &str = "facebook_users";
    /// `key_check`: a record sealed with the store's key, checked at start (TokenVaultActor).
    pub const VAULT_META: &str = "vault_meta";
    /// Owner -> Pages, grantor -> Pages, grantor -> owners (TokenVaultActor).
    pub const VAULT_INDEX: &str = "vault_index";
    /// Sequence number -> a forward or event still to deliver (OutboxActor).
    pub const OUTBOX: &str = "outbox";
    /// Sequence number -> a dead-lettered forward or event (OutboxActor).
    pub const OUTBOX_DEAD: &str = "outbox_dead";
    /// "app" and "page/<id>" -> webhook subscription state (SubscriptionActor).
    pub const SUBSCRIPTIONS: &str = "subscriptions";
    /// SHA-256 of a consumer API key -> its record, and name -> that hash (ApiKeyActor).
    pub const API_KEYS: &str = "api_keys";
    /// The page writer's own records: its index of `page_state`, saved at a clean stop
    /// and taken back (removed) at the next start (PageWriterActor).
    pub const WRITER_META: &str = "writer_meta";
    /// The store's own records: its format version (`format`, a big-endian u32).
    pub const STORE_META: &str = "store_meta";
}

/// The on-disk format this build writes and reads (docs/operations.md, "Upgrades"):
/// 1 is every store from before the version record, 2 adds it, 3 adds the page
/// writer's index saved at a clean stop (`writer_meta`). A store of an older format is
/// migrated forward at open, in one step; a newer one is refused.
pub const FORMAT_VERSION: u32 = 3;

/// The key of the format version in [`trees::STORE_META`].
const FORMAT_KEY: &[u8] = b"format";

/// One migration: from its format to the next. Each runs once, in order, before
/// anything else reads the store; the version record is written after the last.
type Migration = fn(&sled::Db) -> Result<(), StoreError>;

/// `MIGRATIONS[n]` takes a store from format `n + 1` to `n + 2`.
const MIGRATIONS: [Migration; (FORMAT_VERSION - 1) as usize] = [
    // 1 → 2: nothing to rewrite. The index trees that format 1 stores may lack
    // (`vault_index`, the session indexes) are built by their actors at start, as
    // they were before; the version record is what this step adds.
    |_| Ok(()),
    // 2 → 3: nothing to rewrite; the number is what matters. A saved index is true
    // only if every writer of `page_state` since the stop knew to take it out first.
    // A pagesync of format 2 does not: run on a store after this one stopped, it would
    // change Pages and leave the saved index behind, and this one would then trust it
    // at its next start. Format 3 makes format-2 builds refuse the store instead.
    |_| Ok(()),
];

/// How many queued writes one flush may cover at most. Large enough that a flush is
/// shared by every request that arrives while the previous one runs at our target
/// load, small enough that one batch never holds waiters for long.
const MAX_GROUP: usize = 4096;

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the store at {path}: {source}. Another pagesync may be running on this data \
         dir, or the database is damaged (restore it from a backup, see docs/operations.md)"
    )]
    Open { path: PathBuf, source: sled::Error },
    #[error("store operation failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("the store's writer has stopped")]
    Closed,
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("a record in tree {tree} is not valid: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    /// A read handed to the blocking pool (a list's batch of point reads) did not
    /// finish: the task panicked or the runtime is shutting down.
    #[error("a read of the store on the blocking pool failed: {0}")]
    Reader(#[source] tokio::task::JoinError),
    /// The store was written by a newer pagesync.
    #[error(
        "the store at {path} has format {found}, newer than this pagesync reads (up to {supported}): run the \
         pagesync that wrote it, or restore a backup made before the upgrade (docs/operations.md, \"Upgrades\")"
    )]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    /// The writer thread could not insert a job's records (nothing of that job is
    /// acknowledged as durable).
    #[error("cannot write to the store: {0}")]
    Write(#[source] sled::Error),
    /// The group flush failed. Every waiter of that flush gets the same error, hence
    /// the `Arc`: `sled::Error` cannot be cloned.
    #[error("cannot flush the store to disk: {0}")]
    Flush(#[source] Arc<sled::Error>),
    /// A Page's files could not be removed (the files belong to the page writer, not
    /// to a tree, but its messages answer with this error type).
    #[error("cannot remove a Page's files: {0}")]
    PageFiles(#[source] std::io::Error),
}

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Folder of the sled database (`PAGESYNC_DATA_DIR/db`).
    pub path: PathBuf,
    /// sled's page cache in bytes. sled defaults to 1 GiB and RSS follows the working
    /// set; our trees are small (the inbox is drained continuously), so a few MiB do.
    pub cache_capacity: u64,
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig { path: path.into(), cache_capacity: 8 * 1024 * 1024 }
    }
}

/// One record to write: tree, key, value.
pub type Write = (sled::Tree, Vec<u8>, Vec<u8>);

enum Job {
    /// Records inserted in order and covered by the same flush (a prefix survives a
    /// crash, so the last record of a job is on disk only if every earlier one is).
    Write {
        writes: Vec<Write>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Flush {
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Ends a batch: once its writes are flushed, says so on `paused` and applies
    /// nothing more until `resume` fires or is dropped.
    Pause {
        paused: mpsc::Sender<()>,
        resume: mpsc::Receiver<()>,
    },
    Stop,
}

/// The writer held between two group commits ([`Store::pause_writer`]); dropping it
/// lets the writer go on.
#[must_use = "the writer resumes when this is dropped"]
pub struct WriterPause {
    _resume: mpsc::Sender<()>,
}

/// A handle on the open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// Queue of the writer thread.
    jobs: mpsc::Sender<Job>,
    /// The writer thread, joined by `close`.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Flushes the writer has done, and writes they covered (for stats and tests).
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database and starts its writer thread.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| StoreError::Open { path: config.path.clone(), source })?;
        check_format(&db, &config.path)?;
        let (jobs, rx) = mpsc::channel();
        let writer_db = db.clone();
        let counters = Arc::new(Counters::default());
        let writer_counters = counters.clone();
        let writer = std::thread::Builder::new()
            .name("pagesync-store-writer".into())
            .spawn(move || writer_loop(writer_db, rx, &writer_counters))
            .map_err(|e| StoreError::Open { path: config.path.clone(), source: sled::Error::Io(e) })?;
        Ok(Store { inner: Arc::new(Inner { db, jobs, writer: Mutex::new(Some(writer)), counters }) })
    }

    /// Opens one of the project's trees.
    pub fn tree(&self, name: &'static str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(name)?)
    }

    /// Inserts `value` under `key` in `tree` and resolves once it is flushed to disk
    /// together with whatever else was queued meanwhile.
    pub fn commit(
        &self,
        tree: &sled::Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + use<> {
        self.commit_all(vec![(tree.clone(), key, value)])
    }

    /// Inserts every record, in order, and resolves once all of them are flushed by
    /// one group commit: the way two actors' records (a delivery in the inbox and its
    /// forward in the outbox) become durable together.
    pub fn commit_all(&self, writes: Vec<Write>) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (done, wait) = oneshot::channel();
        let sent = self.inner.jobs.send(Job::Write { writes, done });
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            wait_for(wait).await
        }
    }

    /// Resolves once everything written so far is flushed (shares the writer's flush).
    pub fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (done, wait) = oneshot::channel();
        let sent = self.inner.jobs.send(Job::Flush { done });
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            wait_for(wait).await
        }
    }

    /// Makes what a handler just wrote durable: queues a group flush at once (so it
    /// shares the flush with whatever else is queued) and resolves to `written` once
    /// that flush is done. A failed write resolves to its error without waiting; the
    /// flush still runs, harmlessly. This is the "write, then reply after the flush"
    /// step of every handler whose reply promises durability.
    pub fn durable<T, E>(&self, written: Result<T, E>) -> impl Future<Output = Result<T, E>> + use<T, E>
    where
        E: From<StoreError>,
    {
        let flush = self.flush();
        async move {
            let value = written?;
            flush.await?;
            Ok(value)
        }
    }

    /// A cheap liveness check of the database: a read of a tree that always exists.
    pub fn is_open(&self) -> bool {
        self.inner.db.contains_key(b"__probe").is_ok()
    }

    /// Flushes, stops the writer thread and waits for it. Later commits fail with
    /// [`StoreError::Closed`]. Blocking: call it from a blocking context.
    pub fn close(&self) -> Result<(), StoreError> {
        let result = self.inner.db.flush().map(|_| ());
        let _ = self.inner.jobs.send(Job::Stop);
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        result.map_err(StoreError::from)
    }

    /// Holds the group-commit writer between two commits until the returned guard is
    /// dropped: every write queued before is applied and flushed, and none queued
    /// after is applied meanwhile. Blocking: the caller waits for the writer.
    pub fn pause_writer(&self) -> Result<WriterPause, StoreError> {
        let (paused, wait) = mpsc::channel();
        let (resume, held) = mpsc::channel();
        self.inner.jobs.send(Job::Pause { paused, resume: held }).map_err(|_| StoreError::Closed)?;
        wait.recv().map_err(|_| StoreError::Closed)?;
        Ok(WriterPause { _resume: resume })
    }

    /// The database itself, for the backup's export and import.
    pub(crate) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// `(flushes, writes)` done by the group-commit writer since the store opened.
    pub fn commit_stats(&self) -> (u64, u64) {
        let c = &self.inner.counters;
        (c.flushes.load(Ordering::Relaxed), c.writes.load(Ordering::Relaxed))
    }

    /// The database folder's size on disk, for reports.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()?)
    }
}

/// Reads the format version, migrates an older store forward and records the
/// version; refuses a newer store. A new, empty store just gets the record.
fn check_format(db: &sled::Db, path: &std::path::Path) -> Result<(), StoreError> {
    let meta = db.open_tree(trees::STORE_META)?;
    let found = match meta.get(FORMAT_KEY)? {
        Some(bytes) => {
            let bytes: [u8; 4] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                tree: trees::STORE_META,
                detail: format!("the format version is {} bytes long, not 4", bytes.len()),
            })?;
            u32::from_be_bytes(bytes)
        }
        // No record: a new store, or one of format 1 (it has other trees).
        None if db.tree_names().iter().all(|name| matches!(&name[..], b"__sled__default" | b"store_meta")) => {
            FORMAT_VERSION
        }
        None => 1,
    };
    if found > FORMAT_VERSION {
        return Err(StoreError::NewerFormat { path: path.to_owned(), found, supported: FORMAT_VERSION });
    }
    if found == 0 {
        return Err(StoreError::Corrupt { tree: trees::STORE_META, detail: "the format version is 0".into() });
    }
    for (step, migrate) in MIGRATIONS.iter().enumerate().skip(found as usize - 1) {
        tracing::info!(from = step + 1, to = step + 2, "migrating the store");
        migrate(db)?;
    }
    if meta.get(FORMAT_KEY)?.as_deref() != Some(&FORMAT_VERSION.to_be_bytes()[..]) {
        meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
        db.flush()?;
    }
    Ok(())
}

async fn wait_for(wait: oneshot::Receiver<Result<(), StoreError>>) -> Result<(), StoreError> {
    // A dropped sender means the writer thread is gone.
    wait.await.unwrap_or(Err(StoreError::Closed))
}

/// The writer thread: block for one job, take every other job already queued (up to
/// [`MAX_GROUP`]), apply the writes, flush once, answer everyone.
fn writer_loop(db: sled::Db, rx: mpsc::Receiver<Job>, counters: &Counters) {
    let mut batch: Vec<Job> = Vec::with_capacity(256);
    while let Ok(first) = rx.recv() {
        let mut ends_batch = matches!(first, Job::Pause { .. });
        batch.push(first);
        while !ends_batch && batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => {
                    ends_batch = matches!(job, Job::Pause { .. });
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut stop = false;
        let mut pause = None;
        let mut waiters = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            match job {
                Job::Write { writes, done } => {
                    match writes.into_iter().try_for_each(|(tree, key, value)| tree.insert(key, value).map(|_| ())) {
                        Ok(()) => waiters.push(done),
                        Err(e) => {
                            let _ = done.send(Err(StoreError::Write(e)));
                        }
                    }
                }
                Job::Flush { done } => waiters.push(done),
                Job::Pause { paused, resume } => pause = Some((paused, resume)),
                Job::Stop => stop = true,
            }
        }
        if !waiters.is_empty() {
            counters.writes.fetch_add(waiters.len() as u64, Ordering::Relaxed);
            counters.flushes.fetch_add(1, Ordering::Relaxed);
            let flushed = db.flush().map(|_| ()).map_err(Arc::new);
            if let Err(e) = &flushed {
                tracing::error!(error = %e, "store flush failed");
            }
            for done in waiters {
                let _ = done.send(flushed.clone().map_err(StoreError::Flush));
            }
        }
        if let Some((paused, resume)) = pause {
            let _ = paused.send(());
            // Returns when the guard sends or is dropped.
            let _ = resume.recv();
        }
        if stop {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        (dir, store)
    }

    /// The raw database, as an older or newer pagesync would leave it.
    fn raw(path: &std::path::Path, setup: impl FnOnce(&sled::Db)) {
        let db = sled::open(path).unwrap();
        setup(&db);
        db.flush().unwrap();
    }

    fn format_of(store: &Store) -> Option<Vec<u8>> {
        store.tree(trees::STORE_META).unwrap().get(FORMAT_KEY).unwrap().map(|v| v.to_vec())
    }

    #[test]
    fn a_new_store_records_the_current_format() {
        let (_dir, store) = open_temp();
        assert_eq!(format_of(&store), Some(FORMAT_VERSION.to_be_bytes().to_vec()));
    }

    #[test]
    fn a_store_from_before_the_version_record_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        raw(&path, |db| {
            db.open_tree(trees::PAGE_STATE).unwrap().insert(b"42", b"state").unwrap();
        });
        let store = Store::open(&StoreConfig::new(&path)).unwrap();
        assert_eq!(format_of(&store), Some(FORMAT_VERSION.to_be_bytes().to_vec()));
        assert_eq!(store.tree(trees::PAGE_STATE).unwrap().get(b"42").unwrap().as_deref(), Some(&b"state"[..]));
    }

    #[test]
    fn a_format_2_store_is_migrated_to_3_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        raw(&path, |db| {
            db.open_tree(trees::STORE_META).unwrap().insert(FORMAT_KEY, &2u32.to_be_bytes()).unwrap();
            db.open_tree(trees::PAGE_STATE).unwrap().insert(b"42", b"state").unwrap();
        });
        let store = Store::open(&StoreConfig::new(&path)).unwrap();
        // 3 is what a format-2 pagesync refuses: it cannot leave a saved index stale.
        assert_eq!(format_of(&store), Some(3u32.to_be_bytes().to_vec()));
        assert_eq!(store.tree(trees::PAGE_STATE).unwrap().get(b"42").unwrap().as_deref(), Some(&b"state"[..]));
    }

    #[test]
    fn a_newer_store_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let newer = (FORMAT_VERSION + 1).to_be_bytes();
        raw(&path, |db| {
            db.open_tree(trees::STORE_META).unwrap().insert(FORMAT_KEY, &newer).unwrap();
            db.open_tree(trees::PAGE_STATE).unwrap().insert(b"42", b"state").unwrap();
        });
        match Store::open(&StoreConfig::new(&path)) {
            Err(e @ StoreError::NewerFormat { found, supported, .. }) => {
                assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
                assert!(e.to_string().contains("newer than this pagesync reads"), "{e}");
            }
            other => panic!("expected NewerFormat, got {other:?}"),
        }
        raw(&path, |db| {
            let meta = db.open_tree(trees::STORE_META).unwrap();
            assert_eq!(meta.get(FORMAT_KEY).unwrap().as_deref(), Some(&newer[..]));
        });
    }

    #[test]
    fn a_damaged_version_record_is_an_error_not_a_guess() {
        for bad in [&b"\x00\x02"[..], &0u32.to_be_bytes()[..]] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            raw(&path, |db| {
                db.open_tree(trees::STORE_META).unwrap().insert(FORMAT_KEY, bad).unwrap();
            });
            assert!(matches!(Store::open(&StoreConfig::new(&path)), Err(StoreError::Corrupt { .. })));
        }
    }

    #[tokio::test]
    async fn committed_writes_are_readable_and_survive_reopen() {
        let (dir, store) = open_temp();
        let tree = store.tree(trees::INBOX).unwrap();
        store.commit(&tree, b"k".to_vec(), b"v".to_vec()).await.unwrap();
        assert_eq!(tree.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        drop(tree);
        store.close().unwrap();
        drop(store);
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        let tree = store.tree(trees::INBOX).unwrap();
        assert_eq!(tree.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_commits_all_complete() {
        let (_dir, store) = open_temp();
        let tree = store.tree(trees::INBOX).unwrap();
        let mut tasks = Vec::new();
        for i in 0u32..500 {
            let s = store.clone();
            let t = tree.clone();
            tasks.push(tokio::spawn(async move { s.commit(&t, i.to_be_bytes().to_vec(), vec![1]).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(tree.len(), 500);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_flushes() {
        let (_dir, store) = open_temp();
        let tree = store.tree(trees::INBOX).unwrap();
        // Keep the writer busy with one large write (tens of milliseconds), then queue
        // 1000 writes behind it, as 1000 concurrent requests would: they must be
        // taken together, not flushed one by one.
        let big = store.commit(&tree, b"big".to_vec(), vec![7; 256 * 1024]);
        let pending: Vec<_> = (0u32..1000).map(|i| store.commit(&tree, i.to_be_bytes().to_vec(), vec![1])).collect();
        big.await.unwrap();
        for p in pending {
            p.await.unwrap();
        }
        let (flushes, writes) = store.commit_stats();
        assert_eq!(writes, 1001);
        assert!(flushes <= 3, "1000 queued writes took {flushes} flushes");
    }

    #[tokio::test]
    async fn durable_passes_a_write_through_the_flush_and_a_failure_straight_back() {
        let (_dir, store) = open_temp();
        let (flushes, _) = store.commit_stats();
        assert_eq!(store.durable(Ok::<_, StoreError>(7)).await.unwrap(), 7);
        assert_eq!(store.commit_stats().0, flushes + 1, "the reply waited for a flush");
        let failed = store.durable(Err::<(), _>(StoreError::Closed)).await;
        assert!(matches!(failed, Err(StoreError::Closed)), "{failed:?}");
    }

    #[tokio::test]
    async fn commits_after_close_fail_cleanly() {
        let (_dir, store) = open_temp();
        let tree = store.tree(trees::INBOX).unwrap();
        store.close().unwrap();
        let err = store.commit(&tree, b"k".to_vec(), b"v".to_vec()).await.unwrap_err();
        assert!(matches!(err, StoreError::Closed), "{err:?}");
    }

    #[test]
    fn a_locked_database_gives_a_clear_error() {
        let (dir, _store) = open_temp();
        let err = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cannot open the store"), "{text}");
        assert!(text.contains("docs/operations.md"), "{text}");
    }
}
