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

/// How long a Shopify `state` or a Facebook nonce stays usable.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// How long a handled Shopify webhook id is remembered. Shopify retries a delivery for
/// about 4 hours; the SPEC asks for at least 24 h, and a day more costs little.
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

/// Why a `state` was refused. All of them answer 400; the kind goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state unknown or already used")]
    Unknown,
    #[error("state already used")]
    Used,
    #[error("state expired")]
    Expired,
    #[error("state was issued for another shop or user")]
    Mismatch,
    #[error("store error")]
    Store,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: UserId,
    pub shop: ShopDomain,
    /// Unix seconds.
    pub expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct Nonce {
    /// Shop domain or user UUID the nonce is bound to.
    bound_to: String,
    expires_at: u64,
}

/// A Facebook data-deletion request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRecord {
    pub status: String,
    pub pages: usize,
    pub completed_at: u64,
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
        let Some(raw) = self.shops_by_user.get(user.as_str())? else { return Ok(None) };
        let Some(shop) = std::str::from_utf8(&raw).ok().and_then(|s| ShopDomain::parse(s).ok()) else {
            return Ok(None);
        };
        // The index entry is written first: trust it only when the record agrees.
        let bound = self.shops.get(shop.as_str())?;
        Ok((bound.as_deref() == Some(user.as_str().as_bytes())).then_some(shop))
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

/// Marks the Shopify `state` with this nonce as used (after every other check of the
/// callback passed, Shopify's `hmac` first); a second use is refused. Remembered until
/// `expires_at`, the state's own expiry.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StateError>")]
pub struct UseShopifyState {
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Whether a Shopify delivery with this `X-Shopify-Webhook-Id` was already handled.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct ShopifyWebhookHandled {
    pub id: String,
}

/// Remembers a handled `X-Shopify-Webhook-Id` for [`WEBHOOK_ID_TTL`]; durable before
/// the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RememberShopifyWebhook {
    pub id: String,
}

/// Records a completed install of `shop` at `at_millis` (unix milliseconds); the
/// latest one is kept. Made durable by the next flush (the callback's `OpenSession`).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordInstall {
    pub shop: ShopDomain,
    pub at_millis: u64,
}

/// When `shop` was last installed (unix milliseconds), if pagesync saw it.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<u64>, StoreError>")]
pub struct LatestInstall {
    pub shop: ShopDomain,
}

/// The shop's user UUID, made on its first install and kept for every later one.
#[derive(Debug, Message)]
#[rtype(result = "Result<UserId, StoreError>")]
pub struct RegisterShop {
    pub shop: ShopDomain,
}

/// Opens a session for `user`; the id is durable before the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<Secret, StoreError>")]
pub struct OpenSession {
    pub user: UserId,
    pub shop: ShopDomain,
}

/// The live session with this id, if any (an expired one is removed).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<SessionInfo>, StoreError>")]
pub struct CheckSession {
    pub id: Secret,
}

/// Ends session `old` (if it exists) and opens a new one for the same merchant.
#[derive(Debug, Message)]
#[rtype(result = "Result<Secret, StoreError>")]
pub struct RotateSession {
    pub old: Option<Secret>,
    pub user: UserId,
    pub shop: ShopDomain,
}

/// Uses up the nonce of a signed Facebook `state` (its signature binds the user):
/// remembered until `expires_at`, a second use is refused.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StateError>")]
pub struct ConsumeFacebookNonce {
    pub nonce: String,
    /// Unix seconds: the state's own expiry.
    pub expires_at: u64,
}

/// The shop whose user UUID this is, if any (one index lookup).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<ShopDomain>, StoreError>")]
pub struct ShopOfUser {
    pub user: UserId,
}

/// The user UUID of a shop pagesync knows, if any (one point read of `shops`; never
/// creates one, unlike [`RegisterShop`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<UserId>, StoreError>")]
pub struct UserOfShop {
    pub shop: ShopDomain,
}

/// Forgets a shop: ends every session of its user (through the `shop_sessions` index);
/// with `erase`, also forgets the shop -> UUID binding (so a later install gets a new
/// UUID) and its install time. Returns the user.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<UserId>, StoreError>")]
pub struct ForgetShop {
    pub shop: ShopDomain,
    pub erase: bool,
}

/// Records a finished Facebook data-deletion request under its confirmation code.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordDeletion {
    pub code: String,
    pub record: DeletionRecord,
}

/// The status of a data-deletion request.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<DeletionRecord>, StoreError>")]
pub struct DeletionStatus {
    pub code: String,
}

impl Handler<crate::messages::Ping> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: crate::messages::Ping, _: &mut Self::Context) {}
}

impl Handler<crate::messages::Shutdown> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: crate::messages::Shutdown, ctx: &mut Self::Context) {
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

impl Handler<RememberShopifyWebhook> for SessionActor {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: RememberShopifyWebhook, _: &mut Self::Context) -> Self::Result {
        let stored = self.remember_webhook(&msg.id, now());
        let flush = self.store.flush();
        Box::pin(async move {
            stored?;
            flush.await
        })
    }
}

impl Handler<RecordInstall> for SessionActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: RecordInstall, _: &mut Self::Context) -> Self::Result {
        // Keep the latest: two installs finishing out of order must not move it back.
        self.shop_installs.fetch_and_update(msg.shop.as_str(), |old| {
            let latest = old.and_then(be_u64).map_or(msg.at_millis, |old| old.max(msg.at_millis));
            Some(latest.to_be_bytes().to_vec())
        })?;
        Ok(())
    }
}

impl Handler<LatestInstall> for SessionActor {
    type Result = Result<Option<u64>, StoreError>;
    fn handle(&mut self, msg: LatestInstall, _: &mut Self::Context) -> Self::Result {
        Ok(self.shop_installs.get(msg.shop.as_str())?.as_deref().and_then(be_u64))
    }
}

impl Handler<RegisterShop> for SessionActor {
    type Result = ResponseFuture<Result<UserId, StoreError>>;
    fn handle(&mut self, msg: RegisterShop, _: &mut Self::Context) -> Self::Result {
        let existing = self
            .shops
            .get(msg.shop.as_str())
            .map(|v| v.and_then(|raw| std::str::from_utf8(&raw).ok().and_then(|s| UserId::parse(s).ok())));
        let result = match existing {
            Err(e) => Err(StoreError::from(e)),
            Ok(Some(user)) => Ok((user, false)),
            Ok(None) => {
                let user = UserId::random();
                // Index first (see the module docs).
                self.shops_by_user
                    .insert(user.as_str(), msg.shop.as_str())
                    .and_then(|_| self.shops.insert(msg.shop.as_str(), user.as_str()))
                    .map(|_| (user, true))
                    .map_err(StoreError::from)
            }
        };
        let flush = self.store.flush();
        Box::pin(async move {
            let (user, created) = result?;
            if created {
                flush.await?;
            }
            Ok(user)
        })
    }
}

impl Handler<OpenSession> for SessionActor {
    type Result = ResponseFuture<Result<Secret, StoreError>>;
    fn handle(&mut self, msg: OpenSession, _: &mut Self::Context) -> Self::Result {
        let id = self.new_session(&msg.user, &msg.shop);
        let flush = self.store.flush();
        Box::pin(async move {
            let id = id?;
            flush.await?;
            Ok(id)
        })
    }
}

impl Handler<CheckSession> for SessionActor {
    type Result = Result<Option<SessionInfo>, StoreError>;
    fn handle(&mut self, msg: CheckSession, _: &mut Self::Context) -> Self::Result {
        let key = Self::session_key(&msg.id);
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
}

impl Handler<RotateSession> for SessionActor {
    type Result = ResponseFuture<Result<Secret, StoreError>>;
    fn handle(&mut self, msg: RotateSession, _: &mut Self::Context) -> Self::Result {
        let removed = match &msg.old {
            Some(old) => self.drop_session(&Self::session_key(old)),
            None => Ok(()),
        };
        let id = removed.and_then(|()| self.new_session(&msg.user, &msg.shop));
        let flush = self.store.flush();
        Box::pin(async move {
            let id = id?;
            flush.await?;
            Ok(id)
        })
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

impl Handler<UserOfShop> for SessionActor {
    type Result = Result<Option<UserId>, StoreError>;
    fn handle(&mut self, msg: UserOfShop, _: &mut Self::Context) -> Self::Result {
        Ok(self
            .shops
            .get(msg.shop.as_str())?
            .and_then(|raw| std::str::from_utf8(&raw).ok().and_then(|s| UserId::parse(s).ok())))
    }
}

impl Handler<ForgetShop> for SessionActor {
    type Result = ResponseFuture<Result<Option<UserId>, StoreError>>;
    fn handle(&mut self, msg: ForgetShop, _: &mut Self::Context) -> Self::Result {
        let result = self.forget_shop(&msg.shop, msg.erase);
        let flush = self.store.flush();
        Box::pin(async move {
            let user = result?;
            flush.await?;
            Ok(user)
        })
    }
}

impl Handler<RecordDeletion> for SessionActor {
    type Result = ResponseFuture<Result<(), StoreError>>;
    fn handle(&mut self, msg: RecordDeletion, _: &mut Self::Context) -> Self::Result {
        let stored =
            to_json(&msg.record).and_then(|v| self.deletions.insert(msg.code.as_bytes(), v).map_err(Into::into));
        let flush = self.store.flush();
        Box::pin(async move {
            stored?;
            flush.await
        })
    }
}

impl Handler<DeletionStatus> for SessionActor {
    type Result = Result<Option<DeletionRecord>, StoreError>;
    fn handle(&mut self, msg: DeletionStatus, _: &mut Self::Context) -> Self::Result {
        match self.deletions.get(msg.code.as_bytes())? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { tree: trees::DELETIONS, detail: e.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn actor(ttl: Duration) -> (tempfile::TempDir, Addr<SessionActor>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        (dir, SessionActor::new(store, ttl).unwrap().start())
    }

    fn shop(s: &str) -> ShopDomain {
        ShopDomain::parse(s).unwrap()
    }

    #[actix::test]
    async fn a_shopify_state_can_be_used_once() {
        let (_d, a) = actor(Duration::from_secs(60));
        let expires_at = now() + 600;
        let first = a.send(UseShopifyState { nonce: "00ff".into(), expires_at }).await.unwrap();
        assert_eq!(first, Ok(()));
        let again = a.send(UseShopifyState { nonce: "00ff".into(), expires_at }).await.unwrap();
        assert_eq!(again, Err(StateError::Used));
        let other = a.send(UseShopifyState { nonce: "01ff".into(), expires_at }).await.unwrap();
        assert_eq!(other, Ok(()));
        let late = a.send(UseShopifyState { nonce: "02ff".into(), expires_at: now() - 1 }).await.unwrap();
        assert_eq!(late, Err(StateError::Expired));
    }

    #[actix::test]
    async fn handled_webhook_ids_and_install_times_are_remembered() {
        let (_d, a) = actor(Duration::from_secs(60));
        assert!(!a.send(ShopifyWebhookHandled { id: "w1".into() }).await.unwrap().unwrap());
        a.send(RememberShopifyWebhook { id: "w1".into() }).await.unwrap().unwrap();
        assert!(a.send(ShopifyWebhookHandled { id: "w1".into() }).await.unwrap().unwrap());
        assert!(!a.send(ShopifyWebhookHandled { id: "w2".into() }).await.unwrap().unwrap());

        let s = shop("a.myshopify.com");
        assert_eq!(a.send(LatestInstall { shop: s.clone() }).await.unwrap().unwrap(), None);
        a.send(RecordInstall { shop: s.clone(), at_millis: 5_000 }).await.unwrap().unwrap();
        a.send(RecordInstall { shop: s.clone(), at_millis: 3_000 }).await.unwrap().unwrap();
        assert_eq!(a.send(LatestInstall { shop: s.clone() }).await.unwrap().unwrap(), Some(5_000), "latest kept");
        a.send(ForgetShop { shop: s.clone(), erase: true }).await.unwrap().unwrap();
        assert_eq!(a.send(LatestInstall { shop: s }).await.unwrap().unwrap(), None, "erased with the shop");
    }

    #[actix::test]
    async fn a_shop_keeps_its_uuid_until_erased() {
        let (_d, a) = actor(Duration::from_secs(60));
        let s = shop("a.myshopify.com");
        let first = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
        let second = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
        assert_eq!(first, second);
        assert_eq!(a.send(ForgetShop { shop: s.clone(), erase: false }).await.unwrap().unwrap(), Some(first.clone()));
        assert_eq!(a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap(), first);
        a.send(ForgetShop { shop: s.clone(), erase: true }).await.unwrap().unwrap();
        assert_ne!(a.send(RegisterShop { shop: s }).await.unwrap().unwrap(), first);
    }

    #[actix::test]
    async fn sessions_rotate_and_end_with_their_shop() {
        let (_d, a) = actor(Duration::from_secs(60));
        let s = shop("a.myshopify.com");
        let user = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
        let id = a.send(OpenSession { user: user.clone(), shop: s.clone() }).await.unwrap().unwrap();
        assert!(id.expose().len() >= 43, "256 bits, base64url");
        let info = a.send(CheckSession { id: id.clone() }).await.unwrap().unwrap().unwrap();
        assert_eq!(info.user, user);
        let new = a
            .send(RotateSession { old: Some(id.clone()), user: user.clone(), shop: s.clone() })
            .await
            .unwrap()
            .unwrap();
        assert!(a.send(CheckSession { id }).await.unwrap().unwrap().is_none(), "old id is dead");
        assert!(a.send(CheckSession { id: new.clone() }).await.unwrap().unwrap().is_some());
        a.send(ForgetShop { shop: s, erase: false }).await.unwrap().unwrap();
        assert!(a.send(CheckSession { id: new }).await.unwrap().unwrap().is_none());
    }

    #[actix::test]
    async fn expired_sessions_are_refused() {
        let (_d, a) = actor(Duration::ZERO);
        let s = shop("a.myshopify.com");
        let user = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
        let id = a.send(OpenSession { user, shop: s }).await.unwrap().unwrap();
        // A zero TTL expires at the next second boundary.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            if a.send(CheckSession { id: id.clone() }).await.unwrap().unwrap().is_none() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "session never expired");
            actix::clock::sleep(Duration::from_millis(50)).await;
        }
    }

    fn keys(store: &Store, tree: &'static str) -> Vec<Vec<u8>> {
        store.tree(tree).unwrap().iter().keys().map(|k| k.unwrap().to_vec()).collect()
    }

    #[actix::test]
    async fn shop_of_user_and_forget_shop_go_through_the_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        let a = SessionActor::new(store.clone(), Duration::from_secs(60)).unwrap().start();
        let (sa, sb) = (shop("a.myshopify.com"), shop("b.myshopify.com"));
        let ua = a.send(RegisterShop { shop: sa.clone() }).await.unwrap().unwrap();
        let ub = a.send(RegisterShop { shop: sb.clone() }).await.unwrap().unwrap();
        let ida = a.send(OpenSession { user: ua.clone(), shop: sa.clone() }).await.unwrap().unwrap();
        let ida2 = a.send(OpenSession { user: ua.clone(), shop: sa.clone() }).await.unwrap().unwrap();
        let idb = a.send(OpenSession { user: ub.clone(), shop: sb.clone() }).await.unwrap().unwrap();

        assert_eq!(a.send(ShopOfUser { user: ua.clone() }).await.unwrap().unwrap(), Some(sa.clone()));
        assert_eq!(a.send(ShopOfUser { user: ub.clone() }).await.unwrap().unwrap(), Some(sb.clone()));
        assert_eq!(a.send(ShopOfUser { user: UserId::random() }).await.unwrap().unwrap(), None);
        assert_eq!(a.send(UserOfShop { shop: sb.clone() }).await.unwrap().unwrap(), Some(ub.clone()));
        assert_eq!(a.send(UserOfShop { shop: shop("c.myshopify.com") }).await.unwrap().unwrap(), None);
        let indexed: Vec<Vec<u8>> =
            keys(&store, trees::SHOP_SESSIONS).into_iter().filter(|k| k.starts_with(b"a.myshopify.com/")).collect();
        assert_eq!(indexed.len(), 2, "a's two sessions are in its index");

        // The answer comes from the index: without its entry the shop is not found,
        // although `shops` still binds it.
        store.tree(trees::SHOPS_BY_USER).unwrap().remove(ub.as_str()).unwrap();
        assert_eq!(a.send(ShopOfUser { user: ub.clone() }).await.unwrap().unwrap(), None);

        assert_eq!(a.send(ForgetShop { shop: sa.clone(), erase: true }).await.unwrap().unwrap(), Some(ua.clone()));
        for id in [ida, ida2] {
            assert!(a.send(CheckSession { id }).await.unwrap().unwrap().is_none(), "a's sessions end");
        }
        assert!(a.send(CheckSession { id: idb }).await.unwrap().unwrap().is_some(), "b's session lives");
        assert_eq!(a.send(ShopOfUser { user: ua }).await.unwrap().unwrap(), None);
        let left = keys(&store, trees::SHOP_SESSIONS);
        assert_eq!(left.len(), 1, "only b's entry is left");
        assert!(left[0].starts_with(b"b.myshopify.com/"));
    }

    #[actix::test]
    async fn a_store_from_before_the_indexes_gets_them_built_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        // The old layout: records only, no index, no version.
        let (sa, sb) = (shop("a.myshopify.com"), shop("b.myshopify.com"));
        let (ua, ub) = (UserId::random(), UserId::random());
        store.tree(trees::SHOPS).unwrap().insert(sa.as_str(), ua.as_str()).unwrap();
        store.tree(trees::SHOPS).unwrap().insert(sb.as_str(), ub.as_str()).unwrap();
        let sessions = store.tree(trees::SESSIONS).unwrap();
        let live = now() + 3600;
        let ids: Vec<Secret> = ["old-a-1", "old-a-2", "old-b"].into_iter().map(Secret::new).collect();
        for (id, user, shop) in [(&ids[0], &ua, &sa), (&ids[1], &ua, &sa), (&ids[2], &ub, &sb)] {
            let info = SessionInfo { user: user.clone(), shop: shop.clone(), expires_at: live };
            sessions.insert(SessionActor::session_key(id), serde_json::to_vec(&info).unwrap()).unwrap();
        }
        let expired = SessionInfo { user: ub.clone(), shop: sb.clone(), expires_at: 10 };
        sessions
            .insert(SessionActor::session_key(&Secret::new("old-expired")), serde_json::to_vec(&expired).unwrap())
            .unwrap();
        sessions.insert(b"garbage", b"not json").unwrap();
        let old_state = serde_json::json!({"bound_to": sa.as_str(), "expires_at": live}).to_string();
        store.tree(trees::SHOPIFY_STATES).unwrap().insert(b"0123abcd", old_state.as_bytes()).unwrap();

        let actor = SessionActor::new(store.clone(), Duration::from_secs(60)).unwrap();
        assert_eq!(keys(&store, trees::SHOPS_BY_USER).len(), 2);
        assert_eq!(keys(&store, trees::SHOP_SESSIONS).len(), 4, "every readable session is indexed");
        assert!(keys(&store, trees::SHOPIFY_STATES).is_empty(), "issued-but-unused states of the old layout go");
        assert!(!keys(&store, trees::SESSIONS).contains(&b"garbage".to_vec()));
        // The old expired session goes with the first sweep, through the index.
        assert_eq!(actor.sweep_at(now()), 1);
        assert_eq!(keys(&store, trees::SESSIONS).len(), 3);

        let a = actor.start();
        assert_eq!(a.send(ShopOfUser { user: ua.clone() }).await.unwrap().unwrap(), Some(sa.clone()));
        assert_eq!(a.send(ShopOfUser { user: ub.clone() }).await.unwrap().unwrap(), Some(sb.clone()));
        a.send(ForgetShop { shop: sa.clone(), erase: false }).await.unwrap().unwrap();
        assert!(a.send(CheckSession { id: ids[0].clone() }).await.unwrap().unwrap().is_none());
        assert!(a.send(CheckSession { id: ids[1].clone() }).await.unwrap().unwrap().is_none());
        assert!(a.send(CheckSession { id: ids[2].clone() }).await.unwrap().unwrap().is_some());
        a.send(crate::messages::Shutdown).await.unwrap();

        // Built once: a second start leaves an index entry it did not write alone.
        store.tree(trees::SHOPS_BY_USER).unwrap().insert(b"marker", b"x").unwrap();
        SessionActor::new(store.clone(), Duration::from_secs(60)).unwrap();
        assert!(keys(&store, trees::SHOPS_BY_USER).contains(&b"marker".to_vec()), "the index was rebuilt");
    }

    #[actix::test]
    async fn the_sweep_removes_exactly_what_expired_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        let actor = SessionActor::new(store.clone(), Duration::from_secs(100)).unwrap();
        let s = shop("a.myshopify.com");
        let user = UserId::random();
        let t = now();
        actor.new_session(&user, &s).unwrap(); // expires at t + 100
        actor.use_shopify_state("aa", t + 50, t).unwrap();
        actor.use_shopify_state("bb", t + 500, t).unwrap();
        actor.remember_webhook("w", t).unwrap(); // expires at t + 48 h
        actor.use_once(&actor.facebook_nonces, kind::FACEBOOK_NONCE, "cc", t + 600, t).unwrap();
        let again = actor.use_once(&actor.facebook_nonces, kind::FACEBOOK_NONCE, "cc", t + 600, t);
        assert_eq!(again, Err(StateError::Used), "a Facebook nonce is single use");

        assert_eq!(actor.sweep_at(t), 0, "nothing has expired yet");
        assert_eq!(actor.sweep_at(t + 60), 1, "the first used state");
        assert_eq!(keys(&store, trees::SHOPIFY_STATES), vec![b"bb".to_vec()]);
        assert_eq!(actor.sweep_at(t + 200), 1, "the session");
        assert!(keys(&store, trees::SESSIONS).is_empty());
        assert!(keys(&store, trees::SHOP_SESSIONS).is_empty(), "with its index entry");
        assert_eq!(actor.sweep_at(t + 1000), 2, "the second state and the Facebook nonce");
        assert_eq!(actor.sweep_at(t + WEBHOOK_ID_TTL.as_secs() + 1), 1, "the webhook id");
        assert!(keys(&store, trees::SHOPIFY_WEBHOOKS).is_empty());
        assert!(keys(&store, trees::SESSION_EXPIRIES).is_empty(), "the index is empty again");
    }
}
