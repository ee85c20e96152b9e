//! SessionActor's messages and replies: who the merchant is (shops, sessions), which
//! signed `state` values were used, handled Shopify webhooks and data deletions.

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::ids::{ShopDomain, UserId};
use crate::secret::Secret;
use crate::store::StoreError;

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

/// A Facebook data-deletion request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRecord {
    pub status: String,
    pub pages: usize,
    pub completed_at: u64,
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

/// Remembers a handled `X-Shopify-Webhook-Id` for [`WEBHOOK_ID_TTL`](crate::session::WEBHOOK_ID_TTL); durable before
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

/// [`ShopOfUser`] for several users at once, in the order asked (an `/api/v1/pages`
/// slice names each owner once).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Option<ShopDomain>>, StoreError>")]
pub struct ShopsOfUsers {
    pub users: Vec<UserId>,
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
