//! The Page lists: every Page, one slice of them from a cursor, and a count of them.

use actix::prelude::*;

use super::TokenVaultActor;
use crate::ids::{PageId, UserId};
use crate::messages::vault::{CountPages, ListPages, ListPagesFrom, PageCount, PageSlice, VaultError};
use crate::store::{StoreError, trees};

/// Lists every Page with an owner.
impl Handler<ListPages> for TokenVaultActor {
    type Result = Result<Vec<(PageId, UserId)>, VaultError>;

    fn handle(&mut self, _: ListPages, _: &mut Self::Context) -> Self::Result {
        owner_rows(self.trees.owners.iter(), usize::MAX)
    }
}

/// One slice of the Page list: a range scan from the cursor, never the whole tree.
impl Handler<ListPagesFrom> for TokenVaultActor {
    type Result = Result<PageSlice, VaultError>;

    fn handle(&mut self, msg: ListPagesFrom, _: &mut Self::Context) -> Self::Result {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let limit = msg.limit.max(1);
        let after = msg.after.as_ref().map(PageId::as_str);
        let mut pages = match &msg.owner {
            None => {
                let start = after.map_or(Unbounded, |a| Excluded(a.as_bytes().to_vec()));
                owner_rows(self.trees.owners.range::<Vec<u8>, _>((start, Unbounded)), limit + 1)?
            }
            Some(owner) => {
                let prefix = format!("o/{owner}/");
                let start = match after {
                    Some(a) => Excluded(format!("{prefix}{a}").into_bytes()),
                    None => Included(prefix.clone().into_bytes()),
                };
                let mut pages = Vec::new();
                // `limit + 1` Pages, not records: a malformed row skipped inside the
                // slice must not make it look like the last one.
                for item in self.trees.index.range::<Vec<u8>, _>((start, Unbounded)) {
                    let (k, _) = item.map_err(StoreError::from)?;
                    let Some(rest) = k.strip_prefix(prefix.as_bytes()) else { break };
                    if let Some(page) = std::str::from_utf8(rest).ok().and_then(|s| PageId::parse(s).ok()) {
                        pages.push((page, owner.clone()));
                        if pages.len() > limit {
                            break;
                        }
                    }
                }
                pages
            }
        };
        let next = if pages.len() > limit {
            pages.truncate(limit);
            pages.last().map(|(page, _)| page.clone())
        } else {
            None
        };
        Ok(PageSlice { pages, next })
    }
}

/// Counts Pages from the cursor by their keys alone (no owner is decoded, nothing is
/// collected): the poller's way to learn how many Pages a run spreads over.
impl Handler<CountPages> for TokenVaultActor {
    type Result = Result<PageCount, VaultError>;

    fn handle(&mut self, msg: CountPages, _: &mut Self::Context) -> Self::Result {
        use std::ops::Bound::{Excluded, Unbounded};
        let limit = msg.limit.max(1);
        let start = msg.after.as_ref().map_or(Unbounded, |a| Excluded(a.as_str().as_bytes().to_vec()));
        let mut count = PageCount::default();
        let mut last = None;
        // Keys that are not Page ids are skipped, as the lists skip them; only the
        // cursor is made into a `PageId` (no allocation per key counted).
        let page = |key: &[u8]| std::str::from_utf8(key).ok().and_then(|s| PageId::parse(s).ok());
        for item in self.trees.owners.range::<Vec<u8>, _>((start, Unbounded)).keys() {
            let key = item.map_err(StoreError::from)?;
            // `PageId::parse`'s rule, on the bytes.
            if key.is_empty() || key.len() > PageId::MAX_LEN || !key.iter().all(u8::is_ascii_digit) {
                continue;
            }
            if count.pages == limit {
                // A Page follows the counted ones: hand out where to go on from.
                count.next = last.as_deref().and_then(page);
                break;
            }
            count.pages += 1;
            last = Some(key);
        }
        Ok(count)
    }
}

/// The first `max` well-formed `page_owner` records as (Page, owner), skipping (and
/// logging) malformed ones: a slice that asks for `limit + 1` Pages gets them even when
/// a malformed record sits among them.
fn owner_rows(
    records: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    max: usize,
) -> Result<Vec<(PageId, UserId)>, VaultError> {
    let mut out = Vec::new();
    for item in records {
        if out.len() == max {
            break;
        }
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
