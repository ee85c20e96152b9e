//! The vault's key, outside the actor: the check at start that the configured key is
//! the one the store was sealed with, and key rotation (`pagesync rotate-key`), which
//! runs with no daemon on the store.

use sled::Transactional as _;
use sled::transaction::TransactionError;

use crate::messages::VaultError;
use crate::seal::Sealer;
use crate::store::{Store, StoreError, trees};

/// The sealed trees of the vault and the prefix of each record's associated data.
const SEALED_TREES: [(&str, &str); 3] =
    [(trees::PAGE_TOKENS, "page_token/"), (trees::USER_TOKENS, "user_token/"), (trees::SHOP_TOKENS, "shop_token/")];

/// Where the key check lives: `vault_meta` / `key_check`, sealed with this as its
/// associated data.
const KEY_CHECK: &[u8] = b"key_check";
/// The check record's plaintext: nothing secret, only proof that the key opens it.
const KEY_CHECK_TEXT: &[u8] = b"pagesync encryption key check v1";

/// Why the configured key cannot be used on this store.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "PAGESYNC_ENCRYPTION_KEY is not the key this data dir's store was sealed with ({detail}); start with \
         the original key, or rotate keys with `pagesync rotate-key` (docs/operations.md)"
    )]
    WrongKey { detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks that `sealer` is the key the store was sealed with, before any actor runs.
/// A store that has a check record must open it; a store from before check records
/// gets one once every sealed record in it opens (else nothing is written and the
/// start is refused). A new, empty store gets one at once.
pub fn verify_key(store: &Store, sealer: &Sealer) -> Result<(), KeyCheckError> {
    let meta = store.tree(trees::VAULT_META)?;
    if let Some(sealed) = meta.get(KEY_CHECK).map_err(StoreError::from)? {
        return match sealer.open(KEY_CHECK, &sealed) {
            Ok(plain) if plain == KEY_CHECK_TEXT => Ok(()),
            Ok(_) => Err(KeyCheckError::WrongKey { detail: "the key check record holds unexpected text".into() }),
            Err(e) => Err(KeyCheckError::WrongKey { detail: format!("the key check record does not open: {e}") }),
        };
    }
    for (name, prefix) in SEALED_TREES {
        let tree = store.tree(name)?;
        let mut failed = 0usize;
        let mut total = 0usize;
        for entry in tree.iter() {
            let (key, sealed) = entry.map_err(StoreError::from)?;
            let mut record_key = prefix.as_bytes().to_vec();
            record_key.extend_from_slice(&key);
            total += 1;
            if sealer.open(&record_key, &sealed).is_err() {
                failed += 1;
            }
        }
        if failed > 0 {
            return Err(KeyCheckError::WrongKey {
                detail: format!("{failed} of {total} records in {name} do not open"),
            });
        }
    }
    meta.insert(
        KEY_CHECK,
        sealer.seal(KEY_CHECK, KEY_CHECK_TEXT).map_err(VaultError::from).map_err(|e| {
            KeyCheckError::Store(StoreError::Corrupt { tree: trees::VAULT_META, detail: e.to_string() })
        })?,
    )
    .map_err(StoreError::from)?;
    meta.flush().map_err(StoreError::from)?;
    Ok(())
}

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
    let meta = store.tree(trees::VAULT_META)?;
    // The check record proves `from` even on a store that holds no token yet.
    if let Some(sealed) = meta.get(KEY_CHECK).map_err(StoreError::from)? {
        from.open(KEY_CHECK, &sealed)?;
    }
    let check = to.seal(KEY_CHECK, KEY_CHECK_TEXT)?;
    let [pages, users, shops] = &trees;
    (pages, users, shops, &meta)
        .transaction(|(pages, users, shops, meta)| {
            for (tree, records) in [pages, users, shops].into_iter().zip(&resealed) {
                for (key, sealed) in records {
                    tree.insert(key, sealed.as_slice())?;
                }
            }
            meta.insert(KEY_CHECK, check.as_slice())?;
            Ok(())
        })
        .map_err(|e: TransactionError<()>| match e {
            TransactionError::Storage(e) => StoreError::Sled(e),
            TransactionError::Abort(()) => StoreError::Closed,
        })?;
    pages.flush().map_err(StoreError::from)?;
    let count = resealed.iter().map(Vec::len).sum();
    Ok(count)
}
