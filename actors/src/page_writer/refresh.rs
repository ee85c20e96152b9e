//! One refresh's I/O: the Page token from the vault, the Page's data from a
//! [`PageSource`] (Graph), the file to disk. It runs as a future spawned on the
//! writer's context and only reports an [`Outcome`]; what the outcome means for the
//! Page's state and its place in the queue is decided by the actor and its scheduler.

use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;

use super::files::write_page_file;
use crate::graph::{FetchError, PageSource, TokenCheck};
use crate::ids::PageId;
use crate::messages::{GetPageToken, PageNames, SyncStatus, VaultError};
use crate::token_vault::TokenVaultActor;

/// How one refresh ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The Page's data is current on disk; `changed` when the file changed (an
    /// identical answer leaves the file untouched: no write, no fsync); `etag` is the
    /// file's ETag either way.
    Written {
        changed: bool,
        etag: String,
        /// What lists show of the data written (`None`: too long to keep in the state).
        names: Option<PageNames>,
    },
    UnknownPage,
    Skipped(SyncStatus),
    Failed(FetchError),
    /// pagesync's own failure; says nothing about the Page or its token.
    Internal(RefreshError),
}

/// A refresh that failed inside pagesync (not at Meta). Its text becomes the Page's
/// `last_error`, so it never holds a token.
#[derive(Debug, thiserror::Error)]
pub(super) enum RefreshError {
    /// The vault answered with an error (a record that does not open, a store error).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The vault's mailbox is closed or full.
    #[error("token vault unavailable: {0}")]
    VaultGone(#[from] actix::MailboxError),
    #[error("cannot write page_data.json: {0}")]
    WriteFile(#[from] std::io::Error),
    /// The blocking task writing the file panicked or was cancelled.
    #[error("page file writer failed: {0}")]
    Writer(#[from] tokio::task::JoinError),
}

/// One refresh: token from the vault, data from Graph, file to disk. `check_token`
/// asks `/debug_token` first (the daily poll); `generation` names the temporary file.
pub(super) async fn refresh(
    vault: Addr<TokenVaultActor>,
    source: Arc<dyn PageSource>,
    pages_dir: PathBuf,
    page: PageId,
    check_token: bool,
    generation: u64,
) -> Outcome {
    let creds = match vault.send(GetPageToken { page: page.clone() }).await {
        Ok(Ok(Some(creds))) => creds,
        Ok(Ok(None)) => return Outcome::UnknownPage,
        // A token that does not open (a damaged record; a wrong key is refused at
        // start) is our failure, not Meta's verdict: only Meta makes a Page needs_reauth.
        Ok(Err(e)) => return Outcome::Internal(e.into()),
        Err(e) => return Outcome::Internal(e.into()),
    };
    if check_token {
        match source.check_token(&page, &creds.token).await {
            Ok(TokenCheck::Valid) => {}
            Ok(TokenCheck::Invalid(reason)) => {
                return Outcome::Failed(FetchError::Auth { code: 190, subcode: None, message: reason });
            }
            // Meta could not say: the fetch itself will show whether the token works.
            Err(e) => tracing::debug!(page_id = %page, error = %e, "token check failed; fetching anyway"),
        }
    }
    let data = match source.fetch_page(&page, &creds.token).await {
        Ok(data) => data,
        Err(e) => return Outcome::Failed(e),
    };
    let names = PageNames::of(&data);
    let written = tokio::task::spawn_blocking(move || write_page_file(&pages_dir, &page, data, generation)).await;
    match written {
        Ok(Ok((changed, etag))) => Outcome::Written { changed, etag, names },
        Ok(Err(e)) => Outcome::Internal(e.into()),
        Err(e) => Outcome::Internal(e.into()),
    }
}
