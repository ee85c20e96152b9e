//! pagesync's core: the actors that own its state and decide the order of work.
//!
//! # Actor map
//!
//! | actor | owns (sled trees, files) | receives from | talks to |
//! | --- | --- | --- | --- |
//! | [`TokenVaultActor`] | `page_tokens`, `page_owner` | OAuth routes, PageWriterActor | the store |
//! | [`PageWriterActor`] | `inbox`, `page_state`, `facebook/<id>/page_data.json` | webhook route, readiness | TokenVaultActor, a [`PageSource`] (Graph) |
//!
//! One [`Store`] holds the sled database; each tree belongs to one actor and no other
//! code touches it. Durable writes go through the store's group commit (one writer
//! thread, one flush shared by every write queued meanwhile).
//!
//! The HTTP layer (the `pagesync` crate) parses and verifies input at the edge: actors
//! receive typed ids ([`PageId`], [`UserId`]), wrapped secrets ([`Secret`]) and only
//! signature-checked deliveries.
//!
//! The actix plumbing is kept thin on purpose (the `actix` crate is in passive
//! maintenance): the logic lives in plain methods, the `Handler` impls only route.

pub mod graph;
pub mod ids;
pub mod messages;
pub mod page_writer;
pub mod seal;
pub mod secret;
pub mod store;
pub mod token_vault;

use std::sync::Arc;

use actix::{Actor, Addr};

pub use graph::{FetchError, LimitScope, PageData, PageSource};
pub use ids::{IdError, PageId, UserId};
pub use page_writer::{PageWriterActor, WriterConfig};
pub use seal::{EncryptionKey, SealError, Sealer};
pub use secret::Secret;
pub use store::{Store, StoreConfig, StoreError};
pub use token_vault::TokenVaultActor;

/// The running actors' addresses; cloned into every HTTP worker.
#[derive(Clone)]
pub struct Actors {
    pub vault: Addr<TokenVaultActor>,
    pub page_writer: Addr<PageWriterActor>,
}

/// Starts every actor on the current arbiter. Call once, inside an actix `System`,
/// before the HTTP server starts.
pub fn start(
    store: &Store,
    sealer: Sealer,
    source: Arc<dyn PageSource>,
    writer: WriterConfig,
) -> Result<Actors, StoreError> {
    let vault = TokenVaultActor::new(store.clone(), sealer)?.start();
    let page_writer = PageWriterActor::new(store.clone(), vault.clone(), source, writer)?.start();
    Ok(Actors { vault, page_writer })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}
