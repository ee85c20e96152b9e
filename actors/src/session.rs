//! SessionActor: owns who the merchant is.
//!
//! Trees: `sessions` (SHA-256 of the session id -> user, shop, expiry: the id itself
//! is never stored), `shopify_states` (single-use OAuth `state` nonces bound to a
//! shop), `facebook_nonces` (the nonces inside signed Facebook `state` values, so each
//! can be used once), `shops` (shop domain -> user UUID, stable across reinstalls) and
//! `deletions` (Facebook data-deletion confirmation codes and their status).
//!
//! No network calls: every message is a few sled operations. Expired sessions and
//! nonces are swept once a minute. Session ids carry 256 random bits.

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
/// How often expired records are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Why a `state` was refused. All of them answer 400; the kind goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state unknown or already used")]
    Unknown,
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
    facebook_nonces: sled::Tree,
    shops: sled::Tree,
    deletions: sled::Tree,
    /// `PAGESYNC_SESSION_TTL`.
    ttl: Duration,
}

impl SessionActor {
    pub fn new(store: Store, ttl: Duration) -> Result<Self, StoreError> {
        Ok(SessionActor {
            sessions: store.tree(trees::SESSIONS)?,
            shopify_states: store.tree(trees::SHOPIFY_STATES)?,
            facebook_nonces: store.tree(trees::FACEBOOK_NONCES)?,
            shops: store.tree(trees::SHOPS)?,
            deletions: store.tree(trees::DELETIONS)?,
            store,
            ttl,
        })
    }

    fn session_key(id: &Secret) -> Vec<u8> {
        Sha256::digest(id.expose().as_bytes()).to_vec()
    }

    fn new_session(&self, user: &UserId, shop: &ShopDomain) -> Result<Secret, StoreError> {
        let id = Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
        let info = SessionInfo { user: user.clone(), shop: shop.clone(), expires_at: now() + self.ttl.as_secs() };
        self.sessions.insert(Self::session_key(&id), to_json(&info)?)?;
        Ok(id)
    }

    fn issue_nonce(tree: &sled::Tree, bound_to: &str) -> Result<String, StoreError> {
        let nonce = crate::hex(&rand::random::<[u8; 16]>());
        let record = Nonce { bound_to: bound_to.to_owned(), expires_at: now() + STATE_TTL.as_secs() };
        tree.insert(nonce.as_bytes(), to_json(&record)?)?;
        Ok(nonce)
    }

    /// Removes the nonce whatever happens (single use), then checks it.
    fn consume_nonce(tree: &sled::Tree, nonce: &str, bound_to: &str) -> Result<(), StateError> {
        let raw = tree.remove(nonce.as_bytes()).map_err(|_| StateError::Store)?.ok_or(StateError::Unknown)?;
        let record: Nonce = serde_json::from_slice(&raw).map_err(|_| StateError::Unknown)?;
        if record.expires_at < now() {
            return Err(StateError::Expired);
        }
        if record.bound_to != bound_to {
            return Err(StateError::Mismatch);
        }
        Ok(())
    }

    fn sweep(&self) {
        let now = now();
        let mut removed = 0usize;
        for tree in [&self.sessions, &self.shopify_states, &self.facebook_nonces] {
            for item in tree.iter() {
                let Ok((key, value)) = item else { continue };
                #[derive(Deserialize)]
                struct Expiry {
                    expires_at: u64,
                }
                let expired = serde_json::from_slice::<Expiry>(&value).map(|e| e.expires_at < now).unwrap_or(true);
                if expired && tree.remove(key).is_ok() {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::debug!(removed, "expired sessions and nonces swept");
        }
    }
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

/// A new single-use Shopify `state` bound to `shop`.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, StoreError>")]
pub struct IssueShopifyState {
    pub shop: ShopDomain,
}

/// Uses up a Shopify `state`; it must have been issued for `shop` and not expired.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StateError>")]
pub struct ConsumeShopifyState {
    pub shop: ShopDomain,
    pub state: String,
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

/// A nonce for a Facebook `state`, bound to `user`.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, StoreError>")]
pub struct IssueFacebookNonce {
    pub user: UserId,
}

/// Uses up a Facebook nonce.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StateError>")]
pub struct ConsumeFacebookNonce {
    pub user: UserId,
    pub nonce: String,
}

/// The shop whose user UUID this is, if any.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<ShopDomain>, StoreError>")]
pub struct ShopOfUser {
    pub user: UserId,
}

/// Forgets a shop: ends every session of its user; with `erase`, also forgets the
/// shop -> UUID binding (so a later install gets a new UUID). Returns the user.
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

impl Handler<IssueShopifyState> for SessionActor {
    type Result = Result<String, StoreError>;
    fn handle(&mut self, msg: IssueShopifyState, _: &mut Self::Context) -> Self::Result {
        Self::issue_nonce(&self.shopify_states, msg.shop.as_str())
    }
}

impl Handler<ConsumeShopifyState> for SessionActor {
    type Result = Result<(), StateError>;
    fn handle(&mut self, msg: ConsumeShopifyState, _: &mut Self::Context) -> Self::Result {
        Self::consume_nonce(&self.shopify_states, &msg.state, msg.shop.as_str())
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
                self.shops.insert(msg.shop.as_str(), user.as_str()).map(|_| (user, true)).map_err(StoreError::from)
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
            _ => {
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
            Some(old) => self.sessions.remove(Self::session_key(old)).map(|_| ()).map_err(StoreError::from),
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

impl Handler<IssueFacebookNonce> for SessionActor {
    type Result = Result<String, StoreError>;
    fn handle(&mut self, msg: IssueFacebookNonce, _: &mut Self::Context) -> Self::Result {
        Self::issue_nonce(&self.facebook_nonces, msg.user.as_str())
    }
}

impl Handler<ConsumeFacebookNonce> for SessionActor {
    type Result = Result<(), StateError>;
    fn handle(&mut self, msg: ConsumeFacebookNonce, _: &mut Self::Context) -> Self::Result {
        Self::consume_nonce(&self.facebook_nonces, &msg.nonce, msg.user.as_str())
    }
}

impl Handler<ShopOfUser> for SessionActor {
    type Result = Result<Option<ShopDomain>, StoreError>;
    fn handle(&mut self, msg: ShopOfUser, _: &mut Self::Context) -> Self::Result {
        for item in self.shops.iter() {
            let (k, v) = item?;
            if v.as_ref() == msg.user.as_str().as_bytes() {
                return Ok(std::str::from_utf8(&k).ok().and_then(|s| ShopDomain::parse(s).ok()));
            }
        }
        Ok(None)
    }
}

impl Handler<ForgetShop> for SessionActor {
    type Result = ResponseFuture<Result<Option<UserId>, StoreError>>;
    fn handle(&mut self, msg: ForgetShop, _: &mut Self::Context) -> Self::Result {
        let result = (|| {
            let user = self
                .shops
                .get(msg.shop.as_str())?
                .and_then(|raw| std::str::from_utf8(&raw).ok().and_then(|s| UserId::parse(s).ok()));
            // End every session of the shop (sessions are keyed by hash: scan).
            for item in self.sessions.iter() {
                let (key, value) = item?;
                if serde_json::from_slice::<SessionInfo>(&value).map(|s| s.shop == msg.shop).unwrap_or(false) {
                    self.sessions.remove(key)?;
                }
            }
            if msg.erase {
                self.shops.remove(msg.shop.as_str())?;
            }
            Ok::<_, StoreError>(user)
        })();
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
    async fn shopify_states_are_single_use_and_bound_to_their_shop() {
        let (_d, a) = actor(Duration::from_secs(60));
        let state = a.send(IssueShopifyState { shop: shop("a.myshopify.com") }).await.unwrap().unwrap();
        let wrong = a.send(ConsumeShopifyState { shop: shop("b.myshopify.com"), state: state.clone() }).await.unwrap();
        assert_eq!(wrong, Err(StateError::Mismatch));
        let again = a.send(ConsumeShopifyState { shop: shop("a.myshopify.com"), state }).await.unwrap();
        assert_eq!(again, Err(StateError::Unknown), "a state tried once is spent");
        let fresh = a.send(IssueShopifyState { shop: shop("a.myshopify.com") }).await.unwrap().unwrap();
        assert_eq!(a.send(ConsumeShopifyState { shop: shop("a.myshopify.com"), state: fresh }).await.unwrap(), Ok(()));
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
}
