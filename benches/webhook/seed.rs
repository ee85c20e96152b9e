//! a. Seeding: the Page tokens, stored before the daemon starts, and the inbox read
//! after it stopped.

use std::path::Path;

use actix::Actor as _;
use anyhow::{Context as _, anyhow};
use pagesync_actors::messages::{Shutdown, StorePageToken};
use pagesync_actors::store::trees;
use pagesync_actors::{EncryptionKey, PageId, Sealer, Secret, Store, StoreConfig, TokenVaultActor, UserId};

/// The Page token seeded for `page` (the emulator knows it too).
pub(crate) fn page_token(page: &str) -> String {
    format!("bench-page-token-{page}")
}

/// Stores a token for each Page through the TokenVaultActor, then closes the store
/// and drops every handle so that sled's file lock is free for the daemon.
pub(crate) fn seed_tokens(db: &Path, key: &EncryptionKey, pages: &[String]) -> anyhow::Result<()> {
    let sealer = Sealer::new(key);
    actix_web::rt::System::new().block_on(async move {
        let store = Store::open(&StoreConfig::new(db)).context("cannot open the store")?;
        let vault = TokenVaultActor::new(store.clone(), sealer).context("cannot start the token vault")?.start();
        let owner = UserId::random();
        let sends = pages.iter().map(|page| {
            let msg = PageId::parse(page).map(|page| StorePageToken {
                token: Secret::new(page_token(&page.to_string())),
                page,
                owner: owner.clone(),
            });
            let vault = vault.clone();
            async move {
                let msg = msg.map_err(|e| anyhow!("bad Page id {page}: {e}"))?;
                vault.send(msg).await.context("token vault mailbox")?.context("storing a Page token")
            }
        });
        for result in futures_util::future::join_all(sends).await {
            result?;
        }
        vault.send(Shutdown).await.context("stopping the token vault")?;
        drop(vault);
        tokio::task::spawn_blocking(move || store.close())
            .await
            .context("store closer panicked")?
            .context("closing the store")?;
        anyhow::Ok(())
    })
}

/// Counts what is left in the inbox, opening the store after the daemon stopped.
pub(crate) fn inbox_len(db: &Path) -> anyhow::Result<usize> {
    let store = Store::open(&StoreConfig::new(db))?;
    let len = store.tree(trees::INBOX)?.len();
    store.close()?;
    Ok(len)
}
