//! TokenVaultActor: owns the Page tokens and which merchant each Page belongs to.
//!
//! Trees: `page_tokens` (Page id -> token sealed with AES-256-GCM, the record key
//! `page_token/<id>` as associated data) and `page_owner` (Page id -> user UUID).
//! Nothing else reads or writes them. Tokens leave the vault only as [`Secret`]s, in
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
}

impl TokenVaultActor {
    pub fn new(store: Store, sealer: Sealer) -> Result<Self, StoreError> {
        Ok(TokenVaultActor {
            tokens: store.tree(trees::PAGE_TOKENS)?,
            owners: store.tree(trees::PAGE_OWNER)?,
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
        let key = msg.page.as_str().as_bytes();
        self.tokens.remove(key).map_err(StoreError::from)?;
        self.owners.remove(key).map_err(StoreError::from)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
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
