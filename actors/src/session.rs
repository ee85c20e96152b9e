//! SessionActor: owns who the merchant is.
//!
//! Records:
//! - `sessions`: SHA-256 of the session id -> user, shop, expiry (the id itself is
//!   never stored).
//! - `shops`: shop domain -> user UUID, stable across reinstalls.
//! - `shop_installs`: shop domain -> unix milliseconds of its latest completed install
//!   (a Shopify `app/uninstalled` triggered before it changes nothing).
//! - `shopify_states`: nonces of Shopify `state` values already used -> their expiry.
//!   States are signed, not stored, when issued (`src/state.rs`), so `/shopify/login`
//!   writes nothing; only a callback that Shopify signed can add a record here, and a
//!   record lives only until the state would have expired anyway.
//! - `shopify_webhooks`: SHA-256 of each handled `X-Shopify-Webhook-Id` -> expiry, kept
//!   [`WEBHOOK_ID_TTL`] so that a redelivery changes nothing.
//! - `facebook_nonces`: the nonces inside signed Facebook `state` values, so each can be
//!   used once.
//! - `deletions`: Facebook data-deletion confirmation codes and their status.
//!
//! Indexes, so that no request walks a whole tree:
//! - `shops_by_user`: user UUID -> shop (answers [`ShopOfUser`]).
//! - `shop_sessions`: `shop/` + session key -> nothing (answers [`ForgetShop`]).
//! - `session_expiries`: big-endian expiry seconds + kind byte + record key -> nothing;
//!   the sweep range-scans it up to now instead of parsing every record.
//!
//! An index entry is written before its record and removed after it, so a crash in
//! between leaves at most an extra index entry (checked against the record when read),
//! never a record that the index misses: a session the index missed would survive its
//! shop's uninstall. A store from before the indexes has them built once, when the actor
//! is created (`session_meta` remembers the version built).
//!
//! No network calls: every message is a few sled operations. Expired records are swept
//! once a minute, at most [`SWEEP_BATCH`] at a time. Session ids carry 256 random bits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{ShopDomain, UserId};
use crate::secret::Secret;
use crate::store::{Store, StoreError, trees};

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `session::<Message>` keeps working for callers.
pub use crate::messages::session::*;
use crate::messages::{Ping, Shutdown};

/// How long a Shopify `state` or a Facebook nonce stays usable.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// How long a handled Shopify webhook id is remembered. Shopify retries a delivery for
/// about 4 hours; the contract (docs/contract.md §4) asks for at least 24 h, and a day more costs little.
pub const WEBHOOK_ID_TTL: Duration = Duration::from_secs(48 * 3600);
/// How often expired records are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// At most this many expired records per sweep, so that a sweep after a burst never
/// holds the mailbox for long; the rest goes at the next one.
pub const SWEEP_BATCH: usize = 10_000;
/// Version of the index layout, in `session_meta` under [`INDEX_VERSION_KEY`].
const INDEX_VERSION: u64 = 1;
const INDEX_VERSION_KEY: &[u8] = b"index_version";

/// The kind byte of a `session_expiries` key: which tree the record lives in.
mod kind {
    pub const SESSION: u8 = b's';
    pub const USED_STATE: u8 = b'u';
    pub const FACEBOOK_NONCE: u8 = b'f';
    pub const WEBHOOK: u8 = b'w';
}

#[derive(Serialize, Deserialize)]
struct Nonce {
    /// Shop domain or user UUID the nonce is bound to.
    bound_to: String,
    expires_at: u64,
}

/// See the module docs.
pub struct SessionActor {
    store: Store,
    sessions: sled::Tree,
    shopify_states: sled::Tree,
    shopify_webhooks: sled::Tree,
    facebook_nonces: sled::Tree,
    shops: sled::Tree,
    shop_installs: sled::Tree,
    deletions: sled::Tree,
    /// Index: user UUID -> shop.
    shops_by_user: sled::Tree,
    /// Index: `shop/` + session key.
    shop_sessions: sled::Tree,
    /// Index: expiry + kind + record key.
    expiries: sled::Tree,
    /// Which index layout has been built.
    meta: sled::Tree,
    /// `PAGESYNC_SESSION_TTL`.
    ttl: Duration,
}

impl SessionActor {
    /// Opens the trees and, for a store from before the indexes, builds them (one scan).
    pub fn new(store: Store, ttl: Duration) -> Result<Self, StoreError> {
        let actor = SessionActor {
            sessions: store.tree(trees::SESSIONS)?,
            shopify_states: store.tree(trees::SHOPIFY_STATES)?,
            shopify_webhooks: store.tree(trees::SHOPIFY_WEBHOOKS)?,
            facebook_nonces: store.tree(trees::FACEBOOK_NONCES)?,
            shops: store.tree(trees::SHOPS)?,
            shop_installs: store.tree(trees::SHOP_INSTALLS)?,
            deletions: store.tree(trees::DELETIONS)?,
            shops_by_user: store.tree(trees::SHOPS_BY_USER)?,
            shop_sessions: store.tree(trees::SHOP_SESSIONS)?,
            expiries: store.tree(trees::SESSION_EXPIRIES)?,
            meta: store.tree(trees::SESSION_META)?,
            store,
            ttl,
        };
        actor.build_indexes()?;
        Ok(actor)
    }

    /// Builds every index from the records, once per store. Safe to redo after a
    /// crash half-way: the version is written last, and the build starts from empty.
    fn build_indexes(&self) -> Result<(), StoreError> {
        if self.meta.get(INDEX_VERSION_KEY)?.as_deref() == Some(&INDEX_VERSION.to_be_bytes()[..]) {
            return Ok(());
        }
        tracing::info!("building the session indexes (once, for a store from before them)");
        self.shops_by_user.clear()?;
        self.shop_sessions.clear()?;
        self.expiries.clear()?;
        // Before, `shopify_states` held every state `/shopify/login` issued. The callback
        // now takes only signed states, so none of those can ever be used: drop them.
        self.shopify_states.clear()?;
        for item in self.shops.iter() {
            let (shop, user) = item?;
            self.shops_by_user.insert(user, shop)?;
        }
        for item in self.sessions.iter() {
            let (key, value) = item?;
            match serde_json::from_slice::<SessionInfo>(&value) {
                Ok(info) => self.index_session(&key, &info)?,
                Err(_) => {
                    self.sessions.remove(key)?;
                }
            }
        }
        for item in self.facebook_nonces.iter() {
            let (key, value) = item?;
            match be_u64(&value).or_else(|| serde_json::from_slice::<Nonce>(&value).ok().map(|n| n.expires_at)) {
                Some(expires_at) => {
                    self.expiries.insert(expiry_key(expires_at, kind::FACEBOOK_NONCE, &key), &[])?;
                }
                None => {
                    self.facebook_nonces.remove(key)?;
                }
            }
        }
        self.meta.insert(INDEX_VERSION_KEY, &INDEX_VERSION.to_be_bytes())?;
        Ok(())
    }

    fn session_key(id: &Secret) -> Vec<u8> {
        Sha256::digest(id.expose().as_bytes()).to_vec()
    }

    fn shop_session_key(shop: &ShopDomain, session_key: &[u8]) -> Vec<u8> {
        let mut key = shop_prefix(shop);
        key.extend_from_slice(session_key);
        key
    }

    fn index_session(&self, key: &[u8], info: &SessionInfo) -> Result<(), StoreError> {
        self.shop_sessions.insert(Self::shop_session_key(&info.shop, key), &[])?;
        self.expiries.insert(expiry_key(info.expires_at, kind::SESSION, key), &[])?;
        Ok(())
    }

    /// Stores a session, its index entries first.
    fn put_session(&self, key: &[u8], info: &SessionInfo) -> Result<(), StoreError> {
        self.index_session(key, info)?;
        self.sessions.insert(key, to_json(info)?)?;
        Ok(())
    }

    /// Removes a session, then its index entries.
    fn drop_session(&self, key: &[u8]) -> Result<(), StoreError> {
        if let Some(raw) = self.sessions.remove(key)?
            && let Ok(info) = serde_json::from_slice::<SessionInfo>(&raw)
        {
            self.shop_sessions.remove(Self::shop_session_key(&info.shop, key))?;
            self.expiries.remove(expiry_key(info.expires_at, kind::SESSION, key))?;
        }
        Ok(())
    }

    fn new_session(&self, user: &UserId, shop: &ShopDomain) -> Result<Secret, StoreError> {
        let id = Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
        let info = SessionInfo {
            user: user.clone(),
            shop: shop.clone(),
            expires_at: now().saturating_add(self.ttl.as_secs()),
        };
        self.put_session(&Self::session_key(&id), &info)?;
        Ok(id)
    }

    /// Records that the signed state with this nonce was used, in `tree` (Shopify's or
    /// Facebook's used states); refuses a second use. States are signed, not stored,
    /// when issued: only used ones are remembered, until they expire.
    fn use_once(&self, tree: &sled::Tree, kind: u8, nonce: &str, expires_at: u64, now: u64) -> Result<(), StateError> {
        if expires_at < now {
            return Err(StateError::Expired);
        }
        let key = nonce.as_bytes();
        self.expiries.insert(expiry_key(expires_at, kind, key), &[]).map_err(|_| StateError::Store)?;
        match tree.compare_and_swap(key, None as Option<&[u8]>, Some(&expires_at.to_be_bytes()[..])) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StateError::Used),
            Err(_) => Err(StateError::Store),
        }
    }

    /// Records that the Shopify state with this nonce was used; refuses a second use.
    fn use_shopify_state(&self, nonce: &str, expires_at: u64, now: u64) -> Result<(), StateError> {
        self.use_once(&self.shopify_states, kind::USED_STATE, nonce, expires_at, now)
    }

    fn webhook_key(id: &str) -> Vec<u8> {
        Sha256::digest(id.as_bytes()).to_vec()
    }

    fn webhook_handled(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let raw = self.shopify_webhooks.get(Self::webhook_key(id))?;
        Ok(raw.as_deref().and_then(be_u64).is_some_and(|expires_at| expires_at >= now))
    }

    fn remember_webhook(&self, id: &str, now: u64) -> Result<(), StoreError> {
        let key = Self::webhook_key(id);
        let expires_at = now.saturating_add(WEBHOOK_ID_TTL.as_secs());
        self.expiries.insert(expiry_key(expires_at, kind::WEBHOOK, &key), &[])?;
        self.shopify_webhooks.insert(key, &expires_at.to_be_bytes())?;
        Ok(())
    }

    fn shop_of_user(&self, user: &UserId) -> Result<Option<ShopDomain>, StoreError> {
        shop_of_user_in(&self.shops_by_user, &self.shops, user)
    }

    fn forget_shop(&self, shop: &ShopDomain, erase: bool) -> Result<Option<UserId>, StoreError> {
        let user = self
            .shops
            .get(shop.as_str())?
            .and_then(|raw| std::str::from_utf8(&raw).ok().and_then(|s| UserId::parse(s).ok()));
        let prefix = shop_prefix(shop);
        for item in self.shop_sessions.scan_prefix(&prefix) {
            let (key, _) = item?;
            self.drop_session(&key[prefix.len()..])?;
            // drop_session removed it when the record was there; a stale entry goes too.
            self.shop_sessions.remove(key)?;
        }
        if erase {
            self.shops.remove(shop.as_str())?;
            self.shop_installs.remove(shop.as_str())?;
            if let Some(user) = &user {
                self.shops_by_user.remove(user.as_str())?;
            }
        }
        Ok(user)
    }

    /// Removes what expired before `now`, going through the expiry index only.
    fn sweep_at(&self, now: u64) -> usize {
        let end = now.to_be_bytes();
        let due: Vec<sled::IVec> =
            self.expiries.range(..&end[..]).keys().filter_map(Result::ok).take(SWEEP_BATCH).collect();
        let mut removed = 0usize;
        for index_key in due {
            let Some((&kind, key)) = index_key.get(8..).and_then(<[u8]>::split_first) else {
                let _ = self.expiries.remove(&index_key);
                continue;
            };
            match self.expire(kind, key, now) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sweep stopped");
                    break;
                }
            }
            let _ = self.expiries.remove(&index_key);
        }
        removed
    }

    /// Removes one record if it is indeed expired (a record rewritten with a later
    /// expiry has its own index entry and stays).
    fn expire(&self, kind: u8, key: &[u8], now: u64) -> Result<bool, StoreError> {
        let tree = match kind {
            kind::SESSION => &self.sessions,
            kind::USED_STATE => &self.shopify_states,
            kind::FACEBOOK_NONCE => &self.facebook_nonces,
            kind::WEBHOOK => &self.shopify_webhooks,
            _ => return Ok(false),
        };
        let Some(value) = tree.get(key)? else { return Ok(false) };
        let expires_at = match kind {
            kind::SESSION => serde_json::from_slice::<SessionInfo>(&value).ok().map(|s| s.expires_at),
            // A used nonce holds its expiry; a store from before holds a `Nonce`.
            kind::FACEBOOK_NONCE => {
                be_u64(&value).or_else(|| serde_json::from_slice::<Nonce>(&value).ok().map(|n| n.expires_at))
            }
            _ => be_u64(&value),
        };
        if expires_at.is_some_and(|at| at >= now) {
            return Ok(false);
        }
        if kind == kind::SESSION {
            self.drop_session(key)?;
        } else {
            tree.remove(key)?;
        }
        Ok(true)
    }

    fn sweep(&self) {
        let removed = self.sweep_at(now());
        if removed > 0 {
            tracing::debug!(removed, "expired sessions, nonces, states and webhook ids swept");
        }
    }
}

/// `shop/`: the prefix of a shop's `shop_sessions` keys (a domain holds no `/`).
fn shop_prefix(shop: &ShopDomain) -> Vec<u8> {
    let mut key = Vec::with_capacity(shop.as_str().len() + 33);
    key.extend_from_slice(shop.as_str().as_bytes());
    key.push(b'/');
    key
}

/// A `session_expiries` key: big-endian so that byte order is time order.
fn expiry_key(expires_at: u64, kind: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.extend_from_slice(&expires_at.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(key);
    out
}

fn be_u64(raw: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(raw).ok().map(u64::from_be_bytes)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt { tree: "sessions", detail: e.to_string() })
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(SWEEP_EVERY, |act, _| act.sweep());
    }
}

impl SessionActor {
    /// Records a completed install, keeping the latest: two installs finishing out of
    /// order must not move it back.
    fn record_install(&self, shop: &ShopDomain, at_millis: u64) -> Result<(), StoreError> {
        self.shop_installs.fetch_and_update(shop.as_str(), |old| {
            let latest = old.and_then(be_u64).map_or(at_millis, |old| old.max(at_millis));
            Some(latest.to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    fn latest_install(&self, shop: &ShopDomain) -> Result<Option<u64>, StoreError> {
        Ok(self.shop_installs.get(shop.as_str())?.as_deref().and_then(be_u64))
    }

    fn user_of_shop(&self, shop: &ShopDomain) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .shops
            .get(shop.as_str())?
            .and_then(|raw| std::str::from_utf8(&raw).ok().and_then(|s| UserId::parse(s).ok())))
    }

    /// The shop's user UUID, made now when the shop has none; `true` when it was made
    /// (only then is there anything to flush).
    fn register_shop(&self, shop: &ShopDomain) -> Result<(UserId, bool), StoreError> {
        if let Some(user) = self.user_of_shop(shop)? {
            return Ok((user, false));
        }
        let user = UserId::random();
        // Index first (see the module docs).
        self.shops_by_user.insert(user.as_str(), shop.as_str())?;
        self.shops.insert(shop.as_str(), user.as_str())?;
        Ok((user, true))
    }

    /// The live session with this id; an expired or unreadable record is removed.
    fn check_session(&self, id: &Secret) -> Result<Option<SessionInfo>, StoreError> {
        let key = Self::session_key(id);
        let Some(raw) = self.sessions.get(&key)? else { return Ok(None) };
        match serde_json::from_slice::<SessionInfo>(&raw) {
            Ok(info) if info.expires_at >= now() => Ok(Some(info)),
            Ok(_) => {
                self.drop_session(&key)?;
                Ok(None)
            }
            Err(_) => {
                self.sessions.remove(&key)?;
                Ok(None)
            }
        }
    }

    /// Ends session `old` (if any) and opens a new one.
    fn rotate_session(&self, old: Option<&Secret>, user: &UserId, shop: &ShopDomain) -> Result<Secret, StoreError> {
        if let Some(old) = old {
            self.drop_session(&Self::session_key(old))?;
        }
        self.new_session(user, shop)
    }

    fn record_deletion(&self, code: &str, record: &DeletionRecord) -> Result<(), StoreError> {
        self.deletions.insert(code.as_bytes(), to_json(record)?)?;
        Ok(())
    }

    fn deletion_status(&self, code: &str) -> Result<Option<DeletionRecord>, StoreError> {
        match self.deletions.get(code.as_bytes())? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { tree: trees::DELETIONS, detail: e.to_string() }),
        }
    }
}

impl Handler<Ping> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

impl Handler<Shutdown> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<UseShopifyState> for SessionActor {
    type Result = Result<(), StateError>;
    fn handle(&mut self, msg: UseShopifyState, _: &mut Self::Context) -> Self::Result {
        self.use_shopify_state(&msg.nonce, msg.expires_at, now())
    }
}

impl Handler<ShopifyWebhookHandled> for SessionActor {
    type Result = Result<bool, StoreError>;
    fn handle(&mut self, msg: ShopifyWebhookHandled, _: &mut Self::Context) -> Self::Result {
        self.webhook_handled(&msg.id, now())
    }
}

/// Durable before the reply.
impl Handler<RememberShopifyWebhook> for SessionActor {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: RememberShopifyWebhook, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.remember_webhook(&msg.id, now())))
    }
}

impl Handler<RecordInstall> for SessionActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: RecordInstall, _: &mut Self::Context) -> Self::Result {
        self.record_install(&msg.shop, msg.at_millis)
    }
}

impl Handler<LatestInstall> for SessionActor {
    type Result = Result<Option<u64>, StoreError>;
    fn handle(&mut self, msg: LatestInstall, _: &mut Self::Context) -> Self::Result {
        self.latest_install(&msg.shop)
    }
}

/// A new binding is durable before the reply; a known shop answers at once.
impl Handler<RegisterShop> for SessionActor {
    type Result = ResponseFuture<Result<UserId, StoreError>>;
    fn handle(&mut self, msg: RegisterShop, _: &mut Self::Context) -> Self::Result {
        match self.register_shop(&msg.shop) {
            Ok((user, false)) => Box::pin(async move { Ok(user) }),
            registered => Box::pin(self.store.durable(registered.map(|(user, _)| user))),
        }
    }
}

/// Durable before the reply.
impl Handler<OpenSession> for SessionActor {
    type Result = ResponseFuture<Result<Secret, StoreError>>;
    fn handle(&mut self, msg: OpenSession, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.new_session(&msg.user, &msg.shop)))
    }
}

impl Handler<CheckSession> for SessionActor {
    type Result = Result<Option<SessionInfo>, StoreError>;
    fn handle(&mut self, msg: CheckSession, _: &mut Self::Context) -> Self::Result {
        self.check_session(&msg.id)
    }
}

/// Durable before the reply.
impl Handler<RotateSession> for SessionActor {
    type Result = ResponseFuture<Result<Secret, StoreError>>;
    fn handle(&mut self, msg: RotateSession, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.rotate_session(msg.old.as_ref(), &msg.user, &msg.shop)))
    }
}

impl Handler<ConsumeFacebookNonce> for SessionActor {
    type Result = Result<(), StateError>;
    fn handle(&mut self, msg: ConsumeFacebookNonce, _: &mut Self::Context) -> Self::Result {
        self.use_once(&self.facebook_nonces, kind::FACEBOOK_NONCE, &msg.nonce, msg.expires_at, now())
    }
}

impl Handler<ShopOfUser> for SessionActor {
    type Result = Result<Option<ShopDomain>, StoreError>;
    fn handle(&mut self, msg: ShopOfUser, _: &mut Self::Context) -> Self::Result {
        self.shop_of_user(&msg.user)
    }
}

/// Read on the blocking pool, not on the actors' thread: a list slice asks for up to
/// 1,000 owners, two point reads each, and the page writer acknowledging webhooks
/// shares that thread. The reads need no ordering with this actor's writes beyond the
/// messages before it: an owner's index entry is written before its shop record and
/// trusted only when the record agrees ([`shop_of_user_in`]).
impl Handler<ShopsOfUsers> for SessionActor {
    type Result = ResponseFuture<Result<Vec<Option<ShopDomain>>, StoreError>>;
    fn handle(&mut self, msg: ShopsOfUsers, _: &mut Self::Context) -> Self::Result {
        let (by_user, shops) = (self.shops_by_user.clone(), self.shops.clone());
        let read = tokio::task::spawn_blocking(move || {
            msg.users.iter().map(|user| shop_of_user_in(&by_user, &shops, user)).collect::<Result<Vec<_>, _>>()
        });
        Box::pin(async move { read.await.map_err(StoreError::Reader)? })
    }
}

/// The shop `user` was registered for, from the `shops_by_user` index checked against
/// the `shops` record. The index entry is written first: it is trusted only when the
/// record agrees.
fn shop_of_user_in(
    shops_by_user: &sled::Tree,
    shops: &sled::Tree,
    user: &UserId,
) -> Result<Option<ShopDomain>, StoreError> {
    let Some(raw) = shops_by_user.get(user.as_str())? else { return Ok(None) };
    let Some(shop) = std::str::from_utf8(&raw).ok().and_then(|s| ShopDomain::parse(s).ok()) else {
        return Ok(None);
    };
    let bound = shops.get(shop.as_str())?;
    Ok((bound.as_deref() == Some(user.as_str().as_bytes())).then_some(shop))
}

impl Handler<UserOfShop> for SessionActor {
    type Result = Result<Option<UserId>, StoreError>;
    fn handle(&mut self, msg: UserOfShop, _: &mut Self::Context) -> Self::Result {
        self.user_of_shop(&msg.shop)
    }
}

/// Durable before the reply.
impl Handler<ForgetShop> for SessionActor {
    type Result = ResponseFuture<Result<Option<UserId>, StoreError>>;
    fn handle(&mut self, msg: ForgetShop, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.forget_shop(&msg.shop, msg.erase)))
    }
}

/// Durable before the reply.
impl Handler<RecordDeletion> for SessionActor {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: RecordDeletion, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.record_deletion(&msg.code, &msg.record)))
    }
}

impl Handler<DeletionStatus> for SessionActor {
    type Result = Result<Option<DeletionRecord>, StoreError>;
    fn handle(&mut self, msg: DeletionStatus, _: &mut Self::Context) -> Self::Result {
        self.deletion_status(&msg.code)
    }
}

#[cfg(test)]
#[path = "session/tests.rs"]
mod tests;
