//! Seeding a data dir for the scale benchmark (`benches/scale.rs`) and its scaled-down
//! behaviour test (`tests/api/scale.rs`); both include this file with `#[path]`, so it
//! is compiled into benchmarks and tests only, never into the daemon.
//!
//! What it writes, before any daemon runs on the data dir:
//! - the key check record (`verify_key` on the empty store, as `serve` does at its
//!   first start), so the daemon accepts the store with the same key at once;
//! - `shops` shops, each registered through the SessionActor (`RegisterShop`, which
//!   gives the shop its user UUID);
//! - `pages` Pages with sealed tokens, through the TokenVaultActor: one `ConnectPages`
//!   per shop (the message a real Facebook connect sends, one transaction per shop),
//!   so a 100,000-Page store costs 10,000 transactions instead of 100,000. Shop 0 gets
//!   the first `big_shop_pages` Pages (the dashboard the benchmark loads); the rest
//!   are dealt round-robin to the other shops;
//! - `sessions` live sessions, through the SessionActor (`OpenSession`), dealt
//!   round-robin over the shops; the first one is shop 0's and is handed back as the
//!   dashboard's cookie;
//! - one consumer API key with `pages:read`, through the ApiKeyActor;
//! - `inbox` pending inbox records. These are written straight into the `inbox` tree
//!   in big sled batches, in the format the PageWriterActor replays at start (key: the
//!   sequence number, big-endian u64; value: the delivery's Page ids, comma-separated).
//!   The writer has no message that stores a delivery without also scheduling its
//!   refresh, and a million `AcceptDelivery`s would make the seeding itself refresh
//!   Pages against a Graph that is not there yet; the replay at start is what is
//!   measured, and the behaviour test checks that every seeded record is replayed.
//!
//! Then every actor is stopped and the store closed, which frees sled's lock.

use std::path::Path;
use std::time::{Duration, Instant};

use actix::Actor as _;
use anyhow::{Context as _, anyhow};
use futures_util::StreamExt as _;
use pagesync_actors::api_keys::{ApiKeyActor, CreateApiKey, KeyName, Scope};
use pagesync_actors::messages::{ConnectPages, OpenSession, RegisterShop, Shutdown};
use pagesync_actors::store::trees;
use pagesync_actors::{
    EncryptionKey, FacebookUserId, PageId, Sealer, Secret, SessionActor, ShopDomain, Store, StoreConfig,
    TokenVaultActor, UserId,
};

/// Page `i` has the id `PAGE_BASE + i` (15 digits, like real Page ids).
pub const PAGE_BASE: u64 = 104_857_600_000_000;
/// The Facebook user who connected shop `s`'s Pages is `FB_USER_BASE + s`.
const FB_USER_BASE: u64 = 100_000_000_000_000;
/// Messages in flight to one actor while seeding: enough for the store's group commit
/// to share each flush among many of them.
const IN_FLIGHT: usize = 256;
/// Inbox records per sled batch.
const INBOX_BATCH: u64 = 100_000;
/// How long sessions live (the daemon's default `PAGESYNC_SESSION_TTL`).
const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What to seed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shops: usize,
    pub pages: usize,
    /// Pages of shop 0 (the big shop whose dashboard is loaded); at most `pages`.
    pub big_shop_pages: usize,
    pub sessions: usize,
    pub inbox: u64,
}

/// What was seeded: what the harness needs to talk to the daemon as those merchants.
pub struct Seeded {
    /// Every shop's domain, by index.
    pub shops: Vec<String>,
    /// Shop 0's session id: the `session_id` cookie of the big shop's dashboard.
    pub big_shop_cookie: String,
    /// A consumer API key with `pages:read`.
    pub api_key: String,
    /// How long each step took, for the report.
    pub timings: Vec<(&'static str, Duration)>,
}

/// The id of Page `i`.
pub fn page_id(i: usize) -> String {
    (PAGE_BASE + i as u64).to_string()
}

/// The Page token seeded for `page`; the emulator must be told the same.
pub fn page_token(page: &str) -> String {
    format!("scale-page-token-{page}")
}

/// The domain of shop `s`.
pub fn shop_domain(s: usize) -> String {
    format!("scale-shop-{s:05}.myshopify.com")
}

/// The shop that owns Page `i` under `plan`.
pub fn owner_of(plan: &Plan, i: usize) -> usize {
    let big = plan.big_shop_pages.min(plan.pages);
    if i < big || plan.shops <= 1 { 0 } else { 1 + (i - big) % (plan.shops - 1) }
}

/// Tells the emulator every seeded Page and its token, so that the daemon's Graph
/// GETs (and the poll's `debug_token`) succeed.
pub fn register_pages(emulator: &pagesync::emulator::Emulator, plan: &Plan) {
    for i in 0..plan.pages {
        let page = page_id(i);
        emulator.add_page(&page, &page_token(&page), &format!("Scale Page {i}"));
    }
}

/// Seeds the store in `db` (created if missing) with `key`; see the module docs. Runs
/// on the caller's actix System (the actors start on its arbiter).
pub async fn seed(db: &Path, key: &EncryptionKey, plan: &Plan) -> anyhow::Result<Seeded> {
    anyhow::ensure!(plan.shops > 0, "seed at least one shop");
    let mut timings = Vec::new();
    let sealer = Sealer::new(key);
    let store = Store::open(&StoreConfig::new(db)).context("cannot open the store")?;
    pagesync_actors::verify_key(&store, &sealer).context("writing the key check record")?;
    let sessions = SessionActor::new(store.clone(), SESSION_TTL).context("cannot start the session actor")?.start();
    let vault = TokenVaultActor::new(store.clone(), sealer).context("cannot start the token vault")?.start();
    let api_keys = ApiKeyActor::new(store.clone()).context("cannot start the API key actor")?.start();

    // Shops and their user UUIDs.
    let started = Instant::now();
    let shops: Vec<String> = (0..plan.shops).map(shop_domain).collect();
    let users: Vec<(ShopDomain, UserId)> = futures_util::stream::iter(shops.iter().cloned())
        .map(|shop| {
            let sessions = sessions.clone();
            async move {
                let shop = ShopDomain::parse(&shop).map_err(|e| anyhow!("bad shop domain {shop}: {e}"))?;
                let user = sessions
                    .send(RegisterShop { shop: shop.clone() })
                    .await
                    .context("session actor mailbox")?
                    .context("registering a shop")?;
                anyhow::Ok((shop, user))
            }
        })
        .buffered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    timings.push(("shops (RegisterShop)", started.elapsed()));

    // Pages: one ConnectPages per shop.
    let started = Instant::now();
    let mut per_shop: Vec<Vec<(PageId, Secret)>> = vec![Vec::new(); plan.shops];
    for i in 0..plan.pages {
        let page = page_id(i);
        let id = PageId::parse(&page).map_err(|e| anyhow!("bad Page id {page}: {e}"))?;
        per_shop[owner_of(plan, i)].push((id, Secret::new(page_token(&page))));
    }
    let connects = per_shop.into_iter().enumerate().filter(|(_, pages)| !pages.is_empty()).map(|(s, pages)| {
        let fb_user = (FB_USER_BASE + s as u64).to_string();
        let owner = users[s].1.clone();
        (fb_user, owner, pages, s)
    });
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(connects)
        .map(|(fb_user, owner, pages, s)| {
            let vault = vault.clone();
            async move {
                let fb_user =
                    FacebookUserId::parse(&fb_user).map_err(|e| anyhow!("bad Facebook user {fb_user}: {e}"))?;
                let msg =
                    ConnectPages { owner, fb_user, user_token: Secret::new(format!("scale-user-token-{s}")), pages };
                vault.send(msg).await.context("token vault mailbox")?.context("storing a shop's Pages")
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    timings.push(("Pages (ConnectPages, one per shop)", started.elapsed()));

    // Sessions, round-robin over the shops; the first is shop 0's.
    let started = Instant::now();
    let opened: Vec<anyhow::Result<Secret>> = futures_util::stream::iter(0..plan.sessions)
        .map(|j| {
            let (shop, user) = users[j % users.len()].clone();
            let sessions = sessions.clone();
            async move {
                sessions
                    .send(OpenSession { user, shop })
                    .await
                    .context("session actor mailbox")?
                    .context("opening a session")
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let mut opened = opened.into_iter();
    let big_shop_cookie = match opened.next() {
        Some(first) => first?.expose().to_owned(),
        None => String::new(),
    };
    opened.try_for_each(|r| r.map(drop))?;
    timings.push(("sessions (OpenSession)", started.elapsed()));

    // The consumer API key.
    let name = KeyName::parse("scale-bench").map_err(|e| anyhow!("{e}"))?;
    let created = api_keys
        .send(CreateApiKey { name, scopes: vec![Scope::PagesRead] })
        .await
        .context("API key actor mailbox")?
        .context("creating the API key")?;
    let api_key = created.key.expose().to_owned();

    // Pending inbox records, in big batches (see the module docs for why not through
    // the writer).
    let started = Instant::now();
    let inbox = store.tree(trees::INBOX).context("opening the inbox")?;
    let pages = plan.pages.max(1);
    let mut seq = 1u64;
    while seq <= plan.inbox {
        let end = (seq + INBOX_BATCH).min(plan.inbox + 1);
        let mut batch = sled::Batch::default();
        for s in seq..end {
            batch.insert(&s.to_be_bytes(), page_id((s - 1) as usize % pages).as_bytes());
        }
        inbox.apply_batch(batch).context("writing inbox records")?;
        seq = end;
    }
    timings.push(("inbox records (sled batches)", started.elapsed()));

    sessions.send(Shutdown).await.context("stopping the session actor")?;
    vault.send(Shutdown).await.context("stopping the token vault")?;
    api_keys.send(Shutdown).await.context("stopping the API key actor")?;
    drop((sessions, vault, api_keys, inbox));
    let started = Instant::now();
    tokio::task::spawn_blocking(move || store.close())
        .await
        .context("store closer panicked")?
        .context("closing the store")?;
    timings.push(("flush and close", started.elapsed()));
    Ok(Seeded { shops, big_shop_cookie, api_key, timings })
}
