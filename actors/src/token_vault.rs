//! TokenVaultActor: owns the Page tokens and which merchant each Page belongs to.
//!
//! Trees: `page_tokens` (Page id -> token sealed with AES-256-GCM, the record key
//! `page_token/<id>` as associated data), `page_owner` (Page id -> user UUID),
//! `page_grantor` (Page id -> the Facebook user who granted its token),
//! `user_tokens` (user UUID -> sealed long-lived Facebook user token),
//! `shop_tokens` (shop -> sealed Shopify token), `facebook_users` (Facebook user id ->
//! unix second of their latest connect, so a replayed removal callback older than a
//! reconnect changes nothing) and `vault_index`, which lets every lookup the request
//! path makes read only its own rows instead of scanning a tree:
//!
//! | key | means |
//! | --- | --- |
//! | `o/<owner>/<page>` | the merchant owns the Page (dashboard, uninstall) |
//! | `g/<fb user>/<page>` | the Facebook user granted the Page's token (removal callbacks) |
//! | `u/<fb user>/<owner>` | the Facebook user's token is the merchant's user token |
//! | `!built` | the index covers every record (a store from before it is indexed once at start) |
//!
//! Nothing else reads or writes these trees. Every change that touches more than one
//! record (a connect: user token, Page tokens, owners, grantors, index) is one sled
//! transaction, so a crash leaves all of it or none. Tokens leave the vault only as
//! [`Secret`]s, in replies to the actor that makes the Graph call.
//!
//! The vault makes no network calls: every message is a few sled point operations or
//! prefix scans of its own rows plus an AES-GCM seal or open (microseconds), so it
//! answers from its own mailbox directly. Writes that must be durable (a token arriving
//! from OAuth) wait for the store's group commit without holding the mailbox.

use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::ids::{FacebookUserId, PageId, UserId};
use crate::messages::{Ping, Shutdown};
use crate::seal::Sealer;
use crate::secret::Secret;
use crate::store::{Store, StoreError, trees};

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `token_vault::<Message>` keeps working for callers.
pub use crate::messages::vault::*;

mod keys;
mod lists;
pub use keys::{KeyCheckError, reseal_all, verify_key};

/// See the module docs.
pub struct TokenVaultActor {
    /// Used for group-committed flushes after token writes.
    store: Store,
    /// Seals tokens before they touch the tree; opens them on the way out.
    sealer: Sealer,
    trees: VaultTrees,
}

/// The vault's trees, opened once.
#[derive(Clone)]
struct VaultTrees {
    /// Page id -> sealed token.
    tokens: sled::Tree,
    /// Page id -> owner UUID.
    owners: sled::Tree,
    /// Page id -> Facebook user id that granted the token.
    grantors: sled::Tree,
    /// User UUID -> sealed `{fb_user, token}`.
    user_tokens: sled::Tree,
    /// Shop -> sealed Shopify token JSON.
    shop_tokens: sled::Tree,
    /// Facebook user id -> big-endian unix seconds of their latest connect.
    fb_users: sled::Tree,
    /// See the module docs.
    index: sled::Tree,
}

/// The same trees inside a transaction.
struct Txn<'a> {
    tokens: &'a TransactionalTree,
    owners: &'a TransactionalTree,
    grantors: &'a TransactionalTree,
    user_tokens: &'a TransactionalTree,
    fb_users: &'a TransactionalTree,
    index: &'a TransactionalTree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl VaultTrees {
    /// Runs `f` as one transaction over every tree but `shop_tokens`. `f` may run more
    /// than once (sled retries on conflict), so it must have no side effects.
    fn transact<T>(&self, f: impl Fn(&Txn<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        let VaultTrees { tokens, owners, grantors, user_tokens, fb_users, index, .. } = self;
        (tokens, owners, grantors, user_tokens, fb_users, index)
            .transaction(|(tokens, owners, grantors, user_tokens, fb_users, index)| {
                f(&Txn { tokens, owners, grantors, user_tokens, fb_users, index })
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(e) => e,
            })
    }

    /// The ids after `prefix` in the index (e.g. the Pages of `o/<owner>/`): a prefix
    /// scan that reads only those rows.
    fn indexed(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in self.index.scan_prefix(prefix.as_bytes()) {
            let (key, _) = item?;
            if let Some(rest) = key.get(prefix.len()..).and_then(|r| std::str::from_utf8(r).ok()) {
                out.push(rest.to_owned());
            }
        }
        Ok(out)
    }
}

fn owner_key(owner: &str, page: &str) -> String {
    format!("o/{owner}/{page}")
}

fn grantor_key(fb_user: &str, page: &str) -> String {
    format!("g/{fb_user}/{page}")
}

fn user_key(fb_user: &str, owner: &str) -> String {
    format!("u/{fb_user}/{owner}")
}

const INDEX_BUILT: &[u8] = b"!built";

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedUserToken {
    fb_user: String,
    token: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedShopToken {
    access_token: String,
    scope: String,
    refresh_token: Option<String>,
    expires_at: Option<u64>,
    refresh_expires_at: Option<u64>,
}

/// Binds `page` to `owner` inside a transaction: token, owner, grantor and the index
/// rows, removing the rows of a previous owner or grantor.
fn bind_page(
    t: &Txn<'_>,
    page: &str,
    owner: &str,
    sealed: &[u8],
    grantor: Option<&str>,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if let Some(previous) = t.owners.insert(page.as_bytes(), owner.as_bytes())?
        && previous.as_ref() != owner.as_bytes()
    {
        let previous = String::from_utf8_lossy(&previous);
        t.index.remove(owner_key(&previous, page).as_bytes())?;
    }
    t.index.insert(owner_key(owner, page).as_bytes(), &[])?;
    t.tokens.insert(page.as_bytes(), sealed)?;
    let previous_grantor = match grantor {
        Some(fb_user) => {
            t.index.insert(grantor_key(fb_user, page).as_bytes(), &[])?;
            t.grantors.insert(page.as_bytes(), fb_user.as_bytes())?
        }
        None => t.grantors.remove(page.as_bytes())?,
    };
    if let Some(previous) = previous_grantor
        && Some(previous.as_ref()) != grantor.map(str::as_bytes)
    {
        t.index.remove(grantor_key(&String::from_utf8_lossy(&previous), page).as_bytes())?;
    }
    Ok(())
}

/// Removes a Page's token and grantor inside a transaction; ownership stays.
fn drop_token(t: &Txn<'_>, page: &str) -> Result<(), ConflictableTransactionError<StoreError>> {
    t.tokens.remove(page.as_bytes())?;
    if let Some(grantor) = t.grantors.remove(page.as_bytes())? {
        t.index.remove(grantor_key(&String::from_utf8_lossy(&grantor), page).as_bytes())?;
    }
    Ok(())
}

/// Removes everything of a Page inside a transaction.
fn drop_page(t: &Txn<'_>, page: &str) -> Result<(), ConflictableTransactionError<StoreError>> {
    drop_token(t, page)?;
    if let Some(owner) = t.owners.remove(page.as_bytes())? {
        t.index.remove(owner_key(&String::from_utf8_lossy(&owner), page).as_bytes())?;
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl TokenVaultActor {
    /// Opens the vault's trees; a store from before the index gets it built here, once.
    pub fn new(store: Store, sealer: Sealer) -> Result<Self, StoreError> {
        let trees = VaultTrees {
            tokens: store.tree(trees::PAGE_TOKENS)?,
            owners: store.tree(trees::PAGE_OWNER)?,
            grantors: store.tree(trees::PAGE_GRANTOR)?,
            user_tokens: store.tree(trees::USER_TOKENS)?,
            shop_tokens: store.tree(trees::SHOP_TOKENS)?,
            fb_users: store.tree(trees::FACEBOOK_USERS)?,
            index: store.tree(trees::VAULT_INDEX)?,
        };
        let vault = TokenVaultActor { store, sealer, trees };
        if !vault.trees.index.contains_key(INDEX_BUILT)? {
            vault.build_index()?;
        }
        Ok(vault)
    }

    /// Indexes a store written before `vault_index` existed (one scan, at start only).
    fn build_index(&self) -> Result<(), StoreError> {
        let mut rows = sled::Batch::default();
        let mut count = 0usize;
        for item in self.trees.owners.iter() {
            let (page, owner) = item?;
            rows.insert(owner_key(&String::from_utf8_lossy(&owner), &String::from_utf8_lossy(&page)).as_bytes(), &[]);
            count += 1;
        }
        for item in self.trees.grantors.iter() {
            let (page, fb_user) = item?;
            rows.insert(
                grantor_key(&String::from_utf8_lossy(&fb_user), &String::from_utf8_lossy(&page)).as_bytes(),
                &[],
            );
        }
        for item in self.trees.user_tokens.iter() {
            let (owner, sealed) = item?;
            let owner = String::from_utf8_lossy(&owner).into_owned();
            match self.open_user_token(&owner, &sealed) {
                Some(record) => rows.insert(user_key(&record.fb_user, &owner).as_bytes(), &[]),
                None => tracing::warn!(owner, "a user token that does not open is left out of the index"),
            }
        }
        rows.insert(INDEX_BUILT, &[]);
        self.trees.index.apply_batch(rows)?;
        self.trees.index.flush()?;
        if count > 0 {
            tracing::info!(pages = count, "vault index built for a store from an earlier version");
        }
        Ok(())
    }

    fn record_key(page: &PageId) -> Vec<u8> {
        format!("page_token/{page}").into_bytes()
    }

    fn user_record_key(owner: &str) -> String {
        format!("user_token/{owner}")
    }

    fn open_user_token(&self, owner: &str, sealed: &[u8]) -> Option<SealedUserToken> {
        let plain = self.sealer.open(Self::user_record_key(owner).as_bytes(), sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }

    fn put(&self, msg: &StorePageToken) -> Result<(), VaultError> {
        let sealed = self.sealer.seal(&Self::record_key(&msg.page), msg.token.expose().as_bytes())?;
        self.trees.transact(|t| bind_page(t, msg.page.as_str(), msg.owner.as_str(), &sealed, None))?;
        Ok(())
    }

    /// Seals every token first, then writes the whole connect in one transaction.
    fn connect(&self, msg: &ConnectPages) -> Result<(), VaultError> {
        let owner = msg.owner.as_str();
        let fb_user = msg.fb_user.as_str();
        let user_record = serde_json::to_vec(&SealedUserToken {
            fb_user: fb_user.to_owned(),
            token: msg.user_token.expose().to_owned(),
        })
        .map_err(|e| StoreError::Corrupt { tree: trees::USER_TOKENS, detail: e.to_string() })?;
        let sealed_user = self.sealer.seal(Self::user_record_key(owner).as_bytes(), &user_record)?;
        let sealed_pages = msg
            .pages
            .iter()
            .map(|(page, token)| Ok((page, self.sealer.seal(&Self::record_key(page), token.expose().as_bytes())?)))
            .collect::<Result<Vec<_>, VaultError>>()?;
        let connected_at = now();
        self.trees.transact(|t| {
            t.user_tokens.insert(owner.as_bytes(), sealed_user.as_slice())?;
            t.index.insert(user_key(fb_user, owner).as_bytes(), &[])?;
            t.fb_users.insert(fb_user.as_bytes(), &connected_at.to_be_bytes())?;
            for (page, sealed) in &sealed_pages {
                bind_page(t, page.as_str(), owner, sealed, Some(fb_user))?;
            }
            Ok(())
        })?;
        for (page, _) in &sealed_pages {
            tracing::debug!(page_id = %page, owner, "Page bound");
        }
        Ok(())
    }

    fn pages_of(&self, owner: &UserId) -> Result<Vec<PageId>, StoreError> {
        Ok(self.trees.indexed(&format!("o/{owner}/"))?.iter().filter_map(|p| PageId::parse(p).ok()).collect())
    }

    /// `ForgetOwner`: the owner's Pages and user token, in one transaction.
    fn forget_owner(&self, owner: &UserId) -> Result<Vec<PageId>, StoreError> {
        let pages = self.pages_of(owner)?;
        self.trees.transact(|t| {
            for page in &pages {
                drop_page(t, page.as_str())?;
            }
            if let Some(sealed) = t.user_tokens.remove(owner.as_str().as_bytes())?
                && let Some(record) = self.open_user_token(owner.as_str(), &sealed)
            {
                t.index.remove(user_key(&record.fb_user, owner.as_str()).as_bytes())?;
            }
            Ok(())
        })?;
        Ok(pages)
    }

    /// `ForgetFacebookUser`: the tokens they granted and their user tokens, unless the
    /// request is older than their latest connect.
    fn forget_facebook_user(&self, fb_user: &FacebookUserId, issued_at: Option<u64>) -> Result<Removal, StoreError> {
        let fb = fb_user.as_str();
        let connected_at = self
            .trees
            .fb_users
            .get(fb.as_bytes())?
            .and_then(|raw| <[u8; 8]>::try_from(raw.as_ref()).ok())
            .map(u64::from_be_bytes);
        if let (Some(issued_at), Some(connected_at)) = (issued_at, connected_at)
            && issued_at < connected_at
        {
            return Ok(Removal::Superseded { connected_at });
        }
        let candidates: Vec<PageId> =
            self.trees.indexed(&format!("g/{fb}/"))?.iter().filter_map(|p| PageId::parse(p).ok()).collect();
        let owners = self.trees.indexed(&format!("u/{fb}/"))?;
        let pages = self.trees.transact(|t| {
            let mut pages = Vec::new();
            for page in &candidates {
                let key = page.as_str().as_bytes();
                let grantor = t.grantors.get(key)?;
                // The user's Pages: still granted by them, or left without a grantor by
                // their earlier deauthorize (so a data-deletion request that follows a
                // deauthorize still finds them). The `g/` row stays as that history; a
                // row whose Page someone else has granted since is stale and dropped.
                let theirs = grantor.as_ref().is_none_or(|g| g.as_ref() == fb.as_bytes());
                if theirs && t.owners.get(key)?.is_some() {
                    t.tokens.remove(key)?;
                    t.grantors.remove(key)?;
                    pages.push(page.clone());
                } else {
                    t.index.remove(grantor_key(fb, page.as_str()).as_bytes())?;
                }
            }
            for owner in &owners {
                let theirs = t
                    .user_tokens
                    .get(owner.as_bytes())?
                    .and_then(|sealed| self.open_user_token(owner, &sealed))
                    .is_some_and(|record| record.fb_user == fb);
                if theirs {
                    t.user_tokens.remove(owner.as_bytes())?;
                }
                t.index.remove(user_key(fb, owner).as_bytes())?;
            }
            Ok(pages)
        })?;
        Ok(Removal::Forgotten(pages))
    }

    fn get(&self, page: &PageId) -> Result<Option<PageCredentials>, VaultError> {
        let key = page.as_str().as_bytes();
        let (Some(sealed), Some(owner)) = (
            self.trees.tokens.get(key).map_err(StoreError::from)?,
            self.trees.owners.get(key).map_err(StoreError::from)?,
        ) else {
            return Ok(None);
        };
        let plain = self.sealer.open(&Self::record_key(page), &sealed)?;
        let token = String::from_utf8(plain).map_err(|_| StoreError::Corrupt {
            tree: trees::PAGE_TOKENS,
            detail: format!("token of Page {page} is not UTF-8"),
        })?;
        let owner = std::str::from_utf8(&owner).ok().and_then(|s| UserId::parse(s).ok()).ok_or_else(|| {
            StoreError::Corrupt { tree: trees::PAGE_OWNER, detail: format!("owner of Page {page} is not a UUID") }
        })?;
        Ok(Some(PageCredentials { owner, token: Secret::new(token) }))
    }

    /// Seals a shop's token (bound to the shop by the sealing's associated data) and
    /// stores it; the caller makes it durable.
    fn put_shop_token(&self, msg: &StoreShopToken) -> Result<(), VaultError> {
        let t = &msg.token;
        let record = SealedShopToken {
            access_token: t.access_token.expose().to_owned(),
            scope: t.scope.clone(),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose().to_owned()),
            expires_at: t.expires_at,
            refresh_expires_at: t.refresh_expires_at,
        };
        let plain = serde_json::to_vec(&record)
            .map_err(|e| VaultError::Store(StoreError::Corrupt { tree: trees::SHOP_TOKENS, detail: e.to_string() }))?;
        let key = format!("shop_token/{}", msg.shop);
        let sealed = self.sealer.seal(key.as_bytes(), &plain)?;
        self.trees.shop_tokens.insert(msg.shop.as_str(), sealed).map_err(|e| VaultError::Store(e.into()))?;
        Ok(())
    }
}

impl Actor for TokenVaultActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Token lookups come from refreshes (many at once under a burst); a deep
        // mailbox absorbs them, senders wait rather than fail.
        ctx.set_mailbox_capacity(1024);
    }
}

/// Answers at once.
impl Handler<Ping> for TokenVaultActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

/// Stops the actor; its trees stay as they are on disk.
impl Handler<Shutdown> for TokenVaultActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Seals, stores and flushes a Page token; replies once it is durable.
impl Handler<StorePageToken> for TokenVaultActor {
    type Result = ResponseFuture<Result<(), VaultError>>;

    fn handle(&mut self, msg: StorePageToken, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.put(&msg)))
    }
}

/// Opens a Page's token.
impl Handler<GetPageToken> for TokenVaultActor {
    type Result = Result<Option<PageCredentials>, VaultError>;

    fn handle(&mut self, msg: GetPageToken, _: &mut Self::Context) -> Self::Result {
        self.get(&msg.page)
    }
}

/// Removes a Page's token and owner.
impl Handler<ForgetPage> for TokenVaultActor {
    type Result = Result<(), VaultError>;

    fn handle(&mut self, msg: ForgetPage, _: &mut Self::Context) -> Self::Result {
        self.trees.transact(|t| drop_page(t, msg.page.as_str()))?;
        Ok(())
    }
}

/// Stores a Facebook connect's tokens.
impl Handler<ConnectPages> for TokenVaultActor {
    type Result = ResponseFuture<Result<(), VaultError>>;

    fn handle(&mut self, msg: ConnectPages, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.connect(&msg)))
    }
}

/// Seals and stores a Shopify token.
impl Handler<StoreShopToken> for TokenVaultActor {
    type Result = ResponseFuture<Result<(), VaultError>>;

    fn handle(&mut self, msg: StoreShopToken, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.put_shop_token(&msg)))
    }
}

/// Whether a shop token is stored.
impl Handler<HasShopToken> for TokenVaultActor {
    type Result = Result<bool, VaultError>;

    fn handle(&mut self, msg: HasShopToken, _: &mut Self::Context) -> Self::Result {
        Ok(self.trees.shop_tokens.contains_key(msg.shop.as_str()).map_err(StoreError::from)?)
    }
}

/// Opens a shop's token.
impl Handler<GetShopToken> for TokenVaultActor {
    type Result = Result<Option<ShopToken>, VaultError>;

    fn handle(&mut self, msg: GetShopToken, _: &mut Self::Context) -> Self::Result {
        let Some(sealed) = self.trees.shop_tokens.get(msg.shop.as_str()).map_err(StoreError::from)? else {
            return Ok(None);
        };
        let plain = self.sealer.open(format!("shop_token/{}", msg.shop).as_bytes(), &sealed)?;
        let record: SealedShopToken = serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            tree: trees::SHOP_TOKENS,
            detail: format!("token of shop {}: {e}", msg.shop),
        })?;
        Ok(Some(ShopToken {
            access_token: Secret::new(record.access_token),
            scope: record.scope,
            refresh_token: record.refresh_token.map(Secret::new),
            expires_at: record.expires_at,
            refresh_expires_at: record.refresh_expires_at,
        }))
    }
}

/// A Page's owner (no token opened).
impl Handler<OwnerOfPage> for TokenVaultActor {
    type Result = Result<Option<UserId>, VaultError>;

    fn handle(&mut self, msg: OwnerOfPage, _: &mut Self::Context) -> Self::Result {
        let Some(raw) = self.trees.owners.get(msg.page.as_str()).map_err(StoreError::from)? else {
            return Ok(None);
        };
        let owner = std::str::from_utf8(&raw).ok().and_then(|s| UserId::parse(s).ok()).ok_or_else(|| {
            StoreError::Corrupt { tree: trees::PAGE_OWNER, detail: format!("owner of Page {} is not a UUID", msg.page) }
        })?;
        Ok(Some(owner))
    }
}

/// Removes a shop's token.
impl Handler<ForgetShopToken> for TokenVaultActor {
    type Result = Result<(), VaultError>;

    fn handle(&mut self, msg: ForgetShopToken, _: &mut Self::Context) -> Self::Result {
        self.trees.shop_tokens.remove(msg.shop.as_str()).map_err(StoreError::from)?;
        Ok(())
    }
}

/// Removes a merchant's user token and Pages.
impl Handler<ForgetOwner> for TokenVaultActor {
    type Result = ResponseFuture<Result<Vec<PageId>, VaultError>>;

    fn handle(&mut self, msg: ForgetOwner, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.forget_owner(&msg.owner).map_err(VaultError::from)))
    }
}

/// Removes the tokens a Facebook user granted.
impl Handler<ForgetFacebookUser> for TokenVaultActor {
    type Result = ResponseFuture<Result<Removal, VaultError>>;

    fn handle(&mut self, msg: ForgetFacebookUser, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.forget_facebook_user(&msg.fb_user, msg.issued_at).map_err(VaultError::from)))
    }
}

/// Lists a merchant's Pages (a prefix scan of the owner's index rows).
impl Handler<PagesOfOwner> for TokenVaultActor {
    type Result = Result<Vec<PageId>, VaultError>;

    fn handle(&mut self, msg: PagesOfOwner, _: &mut Self::Context) -> Self::Result {
        Ok(self.pages_of(&msg.owner)?)
    }
}

#[cfg(test)]
#[path = "token_vault/tests.rs"]
mod tests;
