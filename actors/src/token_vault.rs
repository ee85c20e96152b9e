//! TokenVaultActor: owns the Page tokens and which merchant each Page belongs to.
//!
//! Trees: `page_tokens` (Page id -> token sealed with AES-256-GCM, the record key
//! `page_token/<id>` as associated data), `page_owner` (Page id -> user UUID),
//! `page_grantor` (Page id -> the Facebook user who granted its token),
//! `user_tokens` (user UUID -> sealed long-lived Facebook user token) and
//! `shop_tokens` (shop -> sealed Shopify token). Nothing else reads or writes them. Tokens leave the vault only as [`Secret`]s, in
//! replies to the actor that makes the Graph call.
//!
//! The vault makes no network calls: every message is a sled point operation plus an
//! AES-GCM seal or open (microseconds), so it answers from its own mailbox directly.
//! Writes that must be durable (a token arriving from OAuth) wait for the store's
//! group commit without holding the mailbox.

use actix::prelude::*;
use sled::Transactional as _;

use crate::ids::{PageId, UserId};
use crate::messages::*;
use crate::seal::Sealer;
use crate::secret::Secret;
use crate::store::{Store, StoreError, trees};

/// See the module docs.
pub struct TokenVaultActor {
    /// Used for group-committed flushes after token writes.
    store: Store,
    /// Seals tokens before they touch the tree; opens them on the way out.
    sealer: Sealer,
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
}

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

impl TokenVaultActor {
    pub fn new(store: Store, sealer: Sealer) -> Result<Self, StoreError> {
        Ok(TokenVaultActor {
            tokens: store.tree(trees::PAGE_TOKENS)?,
            owners: store.tree(trees::PAGE_OWNER)?,
            grantors: store.tree(trees::PAGE_GRANTOR)?,
            user_tokens: store.tree(trees::USER_TOKENS)?,
            shop_tokens: store.tree(trees::SHOP_TOKENS)?,
            store,
            sealer,
        })
    }

    fn record_key(page: &PageId) -> Vec<u8> {
        format!("page_token/{page}").into_bytes()
    }

    fn put(&self, msg: &StorePageToken) -> Result<(), VaultError> {
        let sealed = self.sealer.seal(&Self::record_key(&msg.page), msg.token.expose().as_bytes())?;
        let key = msg.page.as_str().as_bytes();
        (&self.tokens, &self.owners)
            .transaction(|(tokens, owners)| {
                tokens.insert(key, sealed.as_slice())?;
                owners.insert(key, msg.owner.as_str().as_bytes())?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                sled::transaction::TransactionError::Abort(()) => StoreError::Closed,
            })?;
        Ok(())
    }

    fn connect(&self, msg: &ConnectPages) -> Result<(), VaultError> {
        let user_record = serde_json::to_vec(&SealedUserToken {
            fb_user: msg.fb_user.to_string(),
            token: msg.user_token.expose().to_owned(),
        })
        .map_err(|e| StoreError::Corrupt { tree: trees::USER_TOKENS, detail: e.to_string() })?;
        let user_key = format!("user_token/{}", msg.owner);
        let sealed_user = self.sealer.seal(user_key.as_bytes(), &user_record)?;
        self.user_tokens.insert(msg.owner.as_str(), sealed_user).map_err(StoreError::from)?;
        for (page, token) in &msg.pages {
            let previous = self.owners.get(page.as_str()).map_err(StoreError::from)?;
            if let Some(prev) = previous.as_ref().filter(|p| p.as_ref() != msg.owner.as_str().as_bytes()) {
                tracing::info!(page_id = %page, from = %String::from_utf8_lossy(prev), to = %msg.owner, "Page re-bound to another merchant");
            }
            self.put(&StorePageToken { page: page.clone(), owner: msg.owner.clone(), token: token.clone() })?;
            self.grantors.insert(page.as_str(), msg.fb_user.as_str()).map_err(StoreError::from)?;
        }
        Ok(())
    }

    fn remove_page(&self, page: &[u8]) -> Result<(), StoreError> {
        self.tokens.remove(page)?;
        self.owners.remove(page)?;
        self.grantors.remove(page)?;
        Ok(())
    }

    fn pages_where(&self, tree: &sled::Tree, value: &[u8]) -> Result<Vec<PageId>, StoreError> {
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            if v.as_ref() == value
                && let Some(page) = std::str::from_utf8(&k).ok().and_then(|s| PageId::parse(s).ok())
            {
                out.push(page);
            }
        }
        Ok(out)
    }

    fn get(&self, page: &PageId) -> Result<Option<PageCredentials>, VaultError> {
        let key = page.as_str().as_bytes();
        let (Some(sealed), Some(owner)) =
            (self.tokens.get(key).map_err(StoreError::from)?, self.owners.get(key).map_err(StoreError::from)?)
        else {
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
        let stored = self.put(&msg);
        let flush = self.store.flush();
        Box::pin(async move {
            stored?;
            flush.await?;
            Ok(())
        })
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
        self.remove_page(msg.page.as_str().as_bytes())?;
        Ok(())
    }
}

/// Stores a Facebook connect's tokens.
impl Handler<ConnectPages> for TokenVaultActor {
    type Result = ResponseFuture<Result<(), VaultError>>;

    fn handle(&mut self, msg: ConnectPages, _: &mut Self::Context) -> Self::Result {
        let stored = self.connect(&msg);
        let flush = self.store.flush();
        Box::pin(async move {
            stored?;
            flush.await?;
            Ok(())
        })
    }
}

/// Seals and stores a Shopify token.
impl Handler<StoreShopToken> for TokenVaultActor {
    type Result = ResponseFuture<Result<(), VaultError>>;

    fn handle(&mut self, msg: StoreShopToken, _: &mut Self::Context) -> Self::Result {
        let t = &msg.token;
        let record = SealedShopToken {
            access_token: t.access_token.expose().to_owned(),
            scope: t.scope.clone(),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose().to_owned()),
            expires_at: t.expires_at,
            refresh_expires_at: t.refresh_expires_at,
        };
        let stored = serde_json::to_vec(&record)
            .map_err(|e| VaultError::Store(StoreError::Corrupt { tree: trees::SHOP_TOKENS, detail: e.to_string() }))
            .and_then(|plain| {
                let key = format!("shop_token/{}", msg.shop);
                Ok(self.sealer.seal(key.as_bytes(), &plain)?)
            })
            .and_then(|sealed| {
                self.shop_tokens.insert(msg.shop.as_str(), sealed).map_err(|e| VaultError::Store(e.into()))
            });
        let flush = self.store.flush();
        Box::pin(async move {
            stored?;
            flush.await?;
            Ok(())
        })
    }
}

/// Whether a shop token is stored.
impl Handler<HasShopToken> for TokenVaultActor {
    type Result = Result<bool, VaultError>;

    fn handle(&mut self, msg: HasShopToken, _: &mut Self::Context) -> Self::Result {
        Ok(self.shop_tokens.contains_key(msg.shop.as_str()).map_err(StoreError::from)?)
    }
}

/// Removes a shop's token.
impl Handler<ForgetShopToken> for TokenVaultActor {
    type Result = Result<(), VaultError>;

    fn handle(&mut self, msg: ForgetShopToken, _: &mut Self::Context) -> Self::Result {
        self.shop_tokens.remove(msg.shop.as_str()).map_err(StoreError::from)?;
        Ok(())
    }
}

/// Removes a merchant's user token and Pages.
impl Handler<ForgetOwner> for TokenVaultActor {
    type Result = ResponseFuture<Result<Vec<PageId>, VaultError>>;

    fn handle(&mut self, msg: ForgetOwner, _: &mut Self::Context) -> Self::Result {
        let result = (|| {
            let pages = self.pages_where(&self.owners, msg.owner.as_str().as_bytes())?;
            for page in &pages {
                self.remove_page(page.as_str().as_bytes())?;
            }
            self.user_tokens.remove(msg.owner.as_str())?;
            Ok::<_, StoreError>(pages)
        })();
        let flush = self.store.flush();
        Box::pin(async move {
            let pages = result?;
            flush.await?;
            Ok(pages)
        })
    }
}

/// Removes the tokens a Facebook user granted.
impl Handler<ForgetFacebookUser> for TokenVaultActor {
    type Result = ResponseFuture<Result<Vec<PageId>, VaultError>>;

    fn handle(&mut self, msg: ForgetFacebookUser, _: &mut Self::Context) -> Self::Result {
        let result = (|| {
            let pages = self.pages_where(&self.grantors, msg.fb_user.as_str().as_bytes())?;
            for page in &pages {
                self.tokens.remove(page.as_str())?;
                self.grantors.remove(page.as_str())?;
            }
            for item in self.user_tokens.iter() {
                let (owner, sealed) = item?;
                let key = format!("user_token/{}", String::from_utf8_lossy(&owner));
                let theirs = self
                    .sealer
                    .open(key.as_bytes(), &sealed)
                    .ok()
                    .and_then(|plain| serde_json::from_slice::<SealedUserToken>(&plain).ok())
                    .is_some_and(|t| t.fb_user == msg.fb_user.as_str());
                if theirs {
                    self.user_tokens.remove(owner)?;
                }
            }
            Ok::<_, StoreError>(pages)
        })();
        let flush = self.store.flush();
        Box::pin(async move {
            let pages = result?;
            flush.await?;
            Ok(pages)
        })
    }
}

/// Lists a merchant's Pages.
impl Handler<PagesOfOwner> for TokenVaultActor {
    type Result = Result<Vec<PageId>, VaultError>;

    fn handle(&mut self, msg: PagesOfOwner, _: &mut Self::Context) -> Self::Result {
        Ok(self.pages_where(&self.owners, msg.owner.as_str().as_bytes())?)
    }
}

/// Lists every Page with an owner.
impl Handler<ListPages> for TokenVaultActor {
    type Result = Result<Vec<(PageId, UserId)>, VaultError>;

    fn handle(&mut self, _: ListPages, _: &mut Self::Context) -> Self::Result {
        let mut out = Vec::new();
        for item in self.owners.iter() {
            let (k, v) = item.map_err(StoreError::from)?;
            let page = std::str::from_utf8(&k).ok().and_then(|s| PageId::parse(s).ok());
            let owner = std::str::from_utf8(&v).ok().and_then(|s| UserId::parse(s).ok());
            match (page, owner) {
                (Some(p), Some(o)) => out.push((p, o)),
                _ => tracing::warn!(tree = trees::PAGE_OWNER, "skipping a malformed record"),
            }
        }
        Ok(out)
    }
}

/// The sealed trees of the vault and the prefix of each record's associated data.
const SEALED_TREES: [(&str, &str); 3] =
    [(trees::PAGE_TOKENS, "page_token/"), (trees::USER_TOKENS, "user_token/"), (trees::SHOP_TOKENS, "shop_token/")];

/// Key rotation, run with no daemon on the store: opens every sealed record with
/// `from` and seals it again with `to`. Every record is opened before anything is
/// written, so a wrong `from` key changes nothing; the writes are one sled
/// transaction over the three trees, flushed before this returns, so a crash leaves
/// every record under the old key or every record under the new one. Returns how many
/// records were re-sealed.
pub fn reseal_all(store: &Store, from: &Sealer, to: &Sealer) -> Result<usize, VaultError> {
    let [pages, users, shops] = SEALED_TREES.map(|(name, _)| store.tree(name));
    let trees = [pages?, users?, shops?];
    let mut resealed: [Vec<(sled::IVec, Vec<u8>)>; 3] = Default::default();
    for ((tree, (_, prefix)), out) in trees.iter().zip(SEALED_TREES).zip(resealed.iter_mut()) {
        for entry in tree.iter() {
            let (key, sealed) = entry.map_err(StoreError::from)?;
            let mut record_key = prefix.as_bytes().to_vec();
            record_key.extend_from_slice(&key);
            let plain = from.open(&record_key, &sealed)?;
            out.push((key, to.seal(&record_key, &plain)?));
        }
    }
    let [pages, users, shops] = &trees;
    (pages, users, shops)
        .transaction(|(pages, users, shops)| {
            for (tree, records) in [pages, users, shops].into_iter().zip(&resealed) {
                for (key, sealed) in records {
                    tree.insert(key, sealed.as_slice())?;
                }
            }
            Ok(())
        })
        .map_err(|e: sled::transaction::TransactionError<()>| match e {
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
            sled::transaction::TransactionError::Abort(()) => StoreError::Closed,
        })?;
    pages.flush().map_err(StoreError::from)?;
    let count = resealed.iter().map(Vec::len).sum();
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{FacebookUserId, ShopDomain};
    use crate::seal::EncryptionKey;
    use crate::store::StoreConfig;

    fn vault() -> (tempfile::TempDir, Store, Addr<TokenVaultActor>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        let sealer = Sealer::new(&EncryptionKey::generate().unwrap());
        let addr = TokenVaultActor::new(store.clone(), sealer).unwrap().start();
        (dir, store, addr)
    }

    #[actix::test]
    async fn tokens_round_trip_and_are_sealed_on_disk() {
        let (_dir, store, vault) = vault();
        let page = PageId::parse("42").unwrap();
        let owner = UserId::random();
        vault
            .send(StorePageToken { page: page.clone(), owner: owner.clone(), token: Secret::new("EAAG-page-token") })
            .await
            .unwrap()
            .unwrap();
        let creds = vault.send(GetPageToken { page: page.clone() }).await.unwrap().unwrap().unwrap();
        assert_eq!(creds.token.expose(), "EAAG-page-token");
        assert_eq!(creds.owner, owner);
        let raw = store.tree(trees::PAGE_TOKENS).unwrap().get(b"42").unwrap().unwrap();
        assert!(!raw.windows(4).any(|w| w == b"EAAG"), "token stored in clear");
    }

    #[actix::test]
    async fn reseal_all_moves_every_record_to_the_new_key_or_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        let old = Sealer::new(&EncryptionKey::generate().unwrap());
        let new = Sealer::new(&EncryptionKey::generate().unwrap());
        let vault = TokenVaultActor::new(store.clone(), old.clone()).unwrap().start();
        let owner = UserId::random();
        let page = PageId::parse("42").unwrap();
        vault
            .send(ConnectPages {
                owner: owner.clone(),
                fb_user: FacebookUserId::parse("1001").unwrap(),
                user_token: Secret::new("EAAG-user"),
                pages: vec![(page.clone(), Secret::new("EAAG-page"))],
            })
            .await
            .unwrap()
            .unwrap();
        let shop = ShopDomain::parse("rotating.myshopify.com").unwrap();
        let token = ShopToken {
            access_token: Secret::new("shpat_x"),
            scope: "read_products".into(),
            refresh_token: None,
            expires_at: None,
            refresh_expires_at: None,
        };
        vault.send(StoreShopToken { shop: shop.clone(), token }).await.unwrap().unwrap();

        // A wrong "old" key: an error, and every record still opens with the real one.
        let stranger = Sealer::new(&EncryptionKey::generate().unwrap());
        assert!(matches!(reseal_all(&store, &stranger, &new), Err(VaultError::Seal(_))));
        assert_eq!(
            vault.send(GetPageToken { page: page.clone() }).await.unwrap().unwrap().unwrap().token.expose(),
            "EAAG-page"
        );

        assert_eq!(reseal_all(&store, &old, &new).unwrap(), 3);
        let open = |tree: &str, record: String, key: &[u8]| {
            let raw = store
                .tree(match tree {
                    "p" => trees::PAGE_TOKENS,
                    "u" => trees::USER_TOKENS,
                    _ => trees::SHOP_TOKENS,
                })
                .unwrap()
                .get(key)
                .unwrap()
                .unwrap();
            (new.open(record.as_bytes(), &raw), old.open(record.as_bytes(), &raw))
        };
        let (with_new, with_old) = open("p", "page_token/42".into(), b"42");
        assert_eq!(with_new.unwrap(), b"EAAG-page");
        assert!(with_old.is_err(), "the old key still opens a re-sealed record");
        let (with_new, _) = open("u", format!("user_token/{owner}"), owner.as_str().as_bytes());
        assert!(String::from_utf8(with_new.unwrap()).unwrap().contains("EAAG-user"));
        let (with_new, _) = open("s", format!("shop_token/{shop}"), shop.as_str().as_bytes());
        assert!(String::from_utf8(with_new.unwrap()).unwrap().contains("shpat_x"));
        // A vault on the new key reads the Page token.
        let vault = TokenVaultActor::new(store.clone(), new).unwrap().start();
        assert_eq!(vault.send(GetPageToken { page }).await.unwrap().unwrap().unwrap().token.expose(), "EAAG-page");
    }

    #[actix::test]
    async fn a_page_moving_to_another_owner_is_rebound_not_duplicated() {
        let (_dir, _store, vault) = vault();
        let page = PageId::parse("42").unwrap();
        let (a, b) = (UserId::random(), UserId::random());
        for (owner, token) in [(&a, "t1"), (&b, "t2")] {
            vault
                .send(StorePageToken { page: page.clone(), owner: owner.clone(), token: Secret::new(token) })
                .await
                .unwrap()
                .unwrap();
        }
        let pages = vault.send(ListPages).await.unwrap().unwrap();
        assert_eq!(pages, vec![(page.clone(), b.clone())]);
        let creds = vault.send(GetPageToken { page }).await.unwrap().unwrap().unwrap();
        assert_eq!(creds.token.expose(), "t2");
    }

    #[actix::test]
    async fn a_tampered_token_record_is_an_error_not_a_wrong_token() {
        let (_dir, store, vault) = vault();
        let page = PageId::parse("42").unwrap();
        vault
            .send(StorePageToken { page: page.clone(), owner: UserId::random(), token: Secret::new("t") })
            .await
            .unwrap()
            .unwrap();
        let tree = store.tree(trees::PAGE_TOKENS).unwrap();
        let mut raw = tree.get(b"42").unwrap().unwrap().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        tree.insert(b"42", raw).unwrap();
        let err = vault.send(GetPageToken { page }).await.unwrap().unwrap_err();
        assert!(matches!(err, VaultError::Seal(_)), "{err:?}");
    }

    #[actix::test]
    async fn forgetting_a_facebook_user_removes_only_the_tokens_they_granted() {
        let (_dir, _store, vault) = vault();
        let (a, b) = (UserId::random(), UserId::random());
        let page = |s: &str| PageId::parse(s).unwrap();
        for (owner, fb, pages) in [(&a, "100", vec!["1", "2"]), (&b, "200", vec!["3"])] {
            vault
                .send(ConnectPages {
                    owner: owner.clone(),
                    fb_user: FacebookUserId::parse(fb).unwrap(),
                    user_token: Secret::new(format!("user-{fb}")),
                    pages: pages.iter().map(|p| (page(p), Secret::new(format!("page-{p}")))).collect(),
                })
                .await
                .unwrap()
                .unwrap();
        }
        let gone =
            vault.send(ForgetFacebookUser { fb_user: FacebookUserId::parse("100").unwrap() }).await.unwrap().unwrap();
        assert_eq!(gone, vec![page("1"), page("2")]);
        assert!(vault.send(GetPageToken { page: page("1") }).await.unwrap().unwrap().is_none());
        assert!(vault.send(GetPageToken { page: page("3") }).await.unwrap().unwrap().is_some());
        // Ownership stays: the merchant still sees the Pages.
        assert_eq!(vault.send(PagesOfOwner { owner: a.clone() }).await.unwrap().unwrap(), vec![page("1"), page("2")]);
        let all = vault.send(ForgetOwner { owner: a.clone() }).await.unwrap().unwrap();
        assert_eq!(all, vec![page("1"), page("2")]);
        assert!(vault.send(PagesOfOwner { owner: a }).await.unwrap().unwrap().is_empty());
        assert_eq!(vault.send(PagesOfOwner { owner: b }).await.unwrap().unwrap(), vec![page("3")]);
    }

    #[actix::test]
    async fn shop_tokens_are_sealed_and_forgettable() {
        let (_dir, store, vault) = vault();
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        let token = ShopToken {
            access_token: Secret::new("shpat_secret_value"),
            scope: "read_products".into(),
            refresh_token: Some(Secret::new("shprt_secret_value")),
            expires_at: Some(1),
            refresh_expires_at: Some(2),
        };
        vault.send(StoreShopToken { shop: shop.clone(), token }).await.unwrap().unwrap();
        assert!(vault.send(HasShopToken { shop: shop.clone() }).await.unwrap().unwrap());
        let raw = store.tree(trees::SHOP_TOKENS).unwrap().get(shop.as_str()).unwrap().unwrap();
        assert!(!raw.windows(6).any(|w| w == b"shpat_" || w == b"shprt_"));
        vault.send(ForgetShopToken { shop: shop.clone() }).await.unwrap().unwrap();
        assert!(!vault.send(HasShopToken { shop }).await.unwrap().unwrap());
    }

    #[actix::test]
    async fn unknown_and_forgotten_pages_have_no_token() {
        let (_dir, _store, vault) = vault();
        let page = PageId::parse("7").unwrap();
        assert!(vault.send(GetPageToken { page: page.clone() }).await.unwrap().unwrap().is_none());
        vault
            .send(StorePageToken { page: page.clone(), owner: UserId::random(), token: Secret::new("t") })
            .await
            .unwrap()
            .unwrap();
        vault.send(ForgetPage { page: page.clone() }).await.unwrap().unwrap();
        vault.send(ForgetPage { page: page.clone() }).await.unwrap().unwrap();
        assert!(vault.send(GetPageToken { page }).await.unwrap().unwrap().is_none());
    }
}
