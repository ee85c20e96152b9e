//! TokenVaultActor's messages and replies: Page, user and shop tokens and who owns
//! which Page. Tokens travel only as [`Secret`].

use actix::Message;

use crate::ids::{FacebookUserId, PageId, ShopDomain, UserId};
use crate::seal::SealError;
use crate::secret::Secret;
use crate::store::StoreError;

/// What the vault can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored token could not be opened: {0}")]
    Seal(#[from] SealError),
}

/// Seal and store a Page's token and bind the Page to its owner. A Page that moves to
/// another merchant is re-bound (one owner per Page). Durable before the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), VaultError>")]
pub struct StorePageToken {
    pub page: PageId,
    pub owner: UserId,
    pub token: Secret,
}

/// The Page's token and owner, or `None` for a Page nobody connected.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<PageCredentials>, VaultError>")]
pub struct GetPageToken {
    pub page: PageId,
}

/// A Page's opened token and its owner.
#[derive(Debug, Clone)]
pub struct PageCredentials {
    pub owner: UserId,
    pub token: Secret,
}

/// Forget a Page's token and owner. Idempotent.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), VaultError>")]
pub struct ForgetPage {
    pub page: PageId,
}

/// Stores what a Facebook connect brought: the long-lived user token and every Page
/// token, each Page bound to `owner` and remembered as granted by `fb_user`, with the
/// connect's time, all in one transaction. Pages that belonged to another merchant
/// are re-bound. Durable before the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), VaultError>")]
pub struct ConnectPages {
    pub owner: UserId,
    pub fb_user: FacebookUserId,
    pub user_token: Secret,
    pub pages: Vec<(PageId, Secret)>,
}

/// A shop's Shopify access token (and, for expiring offline tokens, the refresh token).
#[derive(Debug, Clone)]
pub struct ShopToken {
    pub access_token: Secret,
    pub scope: String,
    pub refresh_token: Option<Secret>,
    /// Unix seconds when the access token expires; `None` for non-expiring tokens.
    pub expires_at: Option<u64>,
    /// Unix seconds when the refresh token expires.
    pub refresh_expires_at: Option<u64>,
}

/// Seals and stores a shop's token. Durable before the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), VaultError>")]
pub struct StoreShopToken {
    pub shop: ShopDomain,
    pub token: ShopToken,
}

/// Whether a shop has a stored token (its tokens are never handed out here).
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, VaultError>")]
pub struct HasShopToken {
    pub shop: ShopDomain,
}

/// A shop's opened Shopify token, or `None` when none is stored (the consumer API's
/// `GET /api/v1/shops/{shop}/token`).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<ShopToken>, VaultError>")]
pub struct GetShopToken {
    pub shop: ShopDomain,
}

/// A Page's owner, or `None` for a Page nobody connected (one point read; no token is
/// opened). Ownership outlives the token: a `disconnected` Page still has its owner.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<UserId>, VaultError>")]
pub struct OwnerOfPage {
    pub page: PageId,
}

/// Forgets a shop's Shopify token. Idempotent.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), VaultError>")]
pub struct ForgetShopToken {
    pub shop: ShopDomain,
}

/// Forgets everything of a merchant: its Facebook user token and every Page it owns
/// (tokens, ownership, grantor). Returns those Pages. Idempotent.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<PageId>, VaultError>")]
pub struct ForgetOwner {
    pub owner: UserId,
}

/// Forgets the tokens a Facebook user granted (deauthorize, data deletion): the Page
/// tokens of the Pages they granted and any user token of theirs, in one transaction.
/// Ownership stays, so the merchant still sees the Pages (disconnected). A request
/// issued before the user's latest connect (a replayed removal) changes nothing.
#[derive(Debug, Message)]
#[rtype(result = "Result<Removal, VaultError>")]
pub struct ForgetFacebookUser {
    pub fb_user: FacebookUserId,
    /// The removal request's `issued_at` (unix seconds), when it carried one.
    pub issued_at: Option<u64>,
}

/// What `ForgetFacebookUser` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The user's tokens are gone; these are the Pages whose tokens they granted.
    Forgotten(Vec<PageId>),
    /// The request was issued before the user's latest connect (unix seconds): nothing
    /// was changed.
    Superseded { connected_at: u64 },
}

/// The Pages a merchant owns, in id order.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<PageId>, VaultError>")]
pub struct PagesOfOwner {
    pub owner: UserId,
}

/// Every connected Page with its owner, in Page id order.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(PageId, UserId)>, VaultError>")]
pub struct ListPages;

/// One slice of the Page list, for paginated answers: at most `limit` Pages (every
/// owner's, or `owner`'s) whose id sorts after `after`, in the store's key order (the
/// ids' bytes). Reads `limit + 1` Pages' records (and any malformed record among them,
/// skipped), whatever the store holds.
#[derive(Debug, Message)]
#[rtype(result = "Result<PageSlice, VaultError>")]
pub struct ListPagesFrom {
    pub owner: Option<UserId>,
    pub after: Option<PageId>,
    pub limit: usize,
}

/// What [`ListPagesFrom`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSlice {
    pub pages: Vec<(PageId, UserId)>,
    /// The cursor of the next slice (the last id here) when more Pages follow.
    pub next: Option<PageId>,
}

/// Counts connected Pages without listing them: at most `limit` Pages whose id sorts
/// after `after`, in the order of [`ListPagesFrom`]. Reads at most `limit + 1` keys and
/// no owner, token or Page file, so the poller can count 100,000 Pages in a few
/// bounded steps on the vault's thread and find where to resume.
#[derive(Debug, Message)]
#[rtype(result = "Result<PageCount, VaultError>")]
pub struct CountPages {
    pub after: Option<PageId>,
    pub limit: usize,
}

/// What [`CountPages`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageCount {
    /// Pages counted, at most the `limit` asked for.
    pub pages: usize,
    /// The last Page counted, when more Pages follow it: the cursor to count (or list)
    /// on from.
    pub next: Option<PageId>,
}
