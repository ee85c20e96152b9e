//! ApiKeyActor: owns the consumer API keys (`pagesync api-key`, docs/contract.md §6 and §7).
//!
//! Tree `api_keys`, two kinds of rows:
//!
//! | key | value |
//! | --- | --- |
//! | `h` + SHA-256 of the whole key text (32 bytes) | the key's record as JSON: id, name, scopes, created, last used |
//! | `n/` + name | the SHA-256 above (names are unique; `list` and `revoke` go by name) |
//!
//! The key itself is never stored: it is printed once by `create` and afterwards only
//! its hash exists, so a copy of the database gives nobody a usable key. A key is 32
//! random bytes, so a plain (unsalted, fast) SHA-256 is enough: there is nothing to
//! brute-force the way there is with a password. Checking a request's key is one point
//! read by its hash — the same work whatever the key, and no comparison of secrets in
//! our code whose timing could leak a prefix.
//!
//! Who sends what: the `/api/v1` routes send [`VerifyApiKey`] on every request; the
//! operator CLI (through the control socket, or offline) sends [`CreateApiKey`],
//! [`ListApiKeys`] and [`RevokeApiKey`]. Creation and revocation are one sled
//! transaction each (hash row and name row together) and flushed before the reply, so
//! a revoked key is refused by the very next request. Verification refreshes the
//! key's `last_used` at most once a minute ([`LAST_USED_EVERY`]) and without a flush:
//! an API request costs no disk write in the common case, and a last-used time lost in
//! a crash is harmless.
//!
//! No network calls: every message is a few sled point operations (listing is a prefix
//! scan of the name rows, one row per key), answered from the mailbox directly.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::messages::{Ping, Shutdown};
use crate::secret::Secret;
use crate::store::{Store, StoreError, trees};

// This actor's messages are declared in `messages` (the crate's contract) and
// re-exported here, so `api_keys::<Message>` keeps working for callers.
pub use crate::messages::api_keys::*;

/// Every key starts with this, so that a leaked key is recognisable (secret scanners,
/// logs) and a bearer value of another kind is refused before any lookup.
pub const KEY_PREFIX: &str = "psk_";
/// Random bytes in a key (256 bits).
const KEY_BYTES: usize = 32;
/// How often, at most, a key's `last_used` is written (seconds).
pub const LAST_USED_EVERY: u64 = 60;
const HASH_ROW: u8 = b'h';
const NAME_ROW: &str = "n/";

fn hash_row(hash: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(1 + hash.len());
    row.push(HASH_ROW);
    row.extend_from_slice(hash);
    row
}

fn name_row(name: &KeyName) -> Vec<u8> {
    format!("{NAME_ROW}{name}").into_bytes()
}

/// SHA-256 of the key text: the only form in which a key is stored.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `key` has the shape of one of our keys (`psk_` + 43 base64url characters),
/// checked before any lookup so that junk costs nothing.
pub fn well_formed(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(rest).is_ok_and(|b| b.len() == KEY_BYTES)
    })
}

fn new_key() -> Secret {
    let bytes: [u8; KEY_BYTES] = rand::random();
    Secret::new(format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn corrupt(detail: impl fmt::Display) -> StoreError {
    StoreError::Corrupt { tree: trees::API_KEYS, detail: detail.to_string() }
}

fn txn_error(e: sled::transaction::TransactionError<ApiKeyError>) -> ApiKeyError {
    match e {
        sled::transaction::TransactionError::Storage(e) => ApiKeyError::Store(StoreError::Sled(e)),
        sled::transaction::TransactionError::Abort(e) => e,
    }
}

/// See the module docs.
pub struct ApiKeyActor {
    /// For the flush after a create or a revoke.
    store: Store,
    /// `api_keys`.
    keys: sled::Tree,
}

impl ApiKeyActor {
    pub fn new(store: Store) -> Result<ApiKeyActor, StoreError> {
        let keys = store.tree(trees::API_KEYS)?;
        Ok(ApiKeyActor { store, keys })
    }

    fn create(&self, msg: &CreateApiKey) -> Result<NewApiKey, ApiKeyError> {
        let key = new_key();
        let info = ApiKeyInfo {
            id: format!("ak_{}", crate::hex(&rand::random::<[u8; 8]>())),
            name: msg.name.clone(),
            scopes: msg.scopes.clone(),
            created: now(),
            last_used: None,
        };
        let record = serde_json::to_vec(&info).map_err(corrupt)?;
        let hash = key_hash(key.expose());
        let (hash_key, name_key) = (hash_row(&hash), name_row(&msg.name));
        self.keys
            .transaction(|t| {
                if t.get(&name_key)?.is_some() {
                    return Err(sled::transaction::ConflictableTransactionError::Abort(ApiKeyError::NameTaken(
                        msg.name.to_string(),
                    )));
                }
                t.insert(name_key.as_slice(), &hash[..])?;
                t.insert(hash_key.as_slice(), record.as_slice())?;
                Ok(())
            })
            .map_err(txn_error)?;
        tracing::info!(key_name = %info.name, key_id = info.id, scopes = ?info.scopes, "API key created");
        Ok(NewApiKey { info, key })
    }

    fn list(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let mut out = Vec::new();
        for item in self.keys.scan_prefix(NAME_ROW.as_bytes()) {
            let (_, hash) = item?;
            match self.keys.get(hash_row(&hash))? {
                Some(raw) => out.push(serde_json::from_slice(&raw).map_err(corrupt)?),
                None => tracing::warn!(tree = trees::API_KEYS, "a key name without its record is skipped"),
            }
        }
        Ok(out)
    }

    fn revoke(&self, name: &KeyName) -> Result<ApiKeyInfo, ApiKeyError> {
        let name_key = name_row(name);
        let info = self
            .keys
            .transaction(|t| {
                let Some(hash) = t.remove(name_key.as_slice())? else {
                    return Err(sled::transaction::ConflictableTransactionError::Abort(ApiKeyError::Unknown(
                        name.to_string(),
                    )));
                };
                let record = t.remove(hash_row(&hash))?;
                Ok(record.and_then(|raw| serde_json::from_slice::<ApiKeyInfo>(&raw).ok()))
            })
            .map_err(txn_error)?;
        let info = info.ok_or_else(|| ApiKeyError::Store(corrupt(format!("key {name} had no record"))))?;
        tracing::info!(key_name = %info.name, key_id = info.id, "API key revoked");
        Ok(info)
    }

    fn verify(&self, key: &Secret) -> Result<Option<ApiKeyInfo>, StoreError> {
        if !well_formed(key.expose()) {
            return Ok(None);
        }
        let row = hash_row(&key_hash(key.expose()));
        let Some(raw) = self.keys.get(&row)? else { return Ok(None) };
        let mut info: ApiKeyInfo = serde_json::from_slice(&raw).map_err(corrupt)?;
        let now = now();
        if info.last_used.is_none_or(|t| now.saturating_sub(t) >= LAST_USED_EVERY) {
            info.last_used = Some(now);
            let updated = serde_json::to_vec(&info).map_err(corrupt)?;
            // Only if the record is still the one read (a revoke may not be undone by
            // this write); not flushed, see the module docs.
            if let Err(e) = self.keys.compare_and_swap(&row, Some(raw), Some(updated))? {
                tracing::debug!(error = %e, "key record changed while its last use was noted");
            }
        }
        Ok(Some(info))
    }
}

impl Actor for ApiKeyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // One `VerifyApiKey` per API request; each is a point read (microseconds), so a
        // deep mailbox rides out a burst while handlers' timeouts still bound waits.
        ctx.set_mailbox_capacity(1024);
    }
}

/// Answers at once.
impl Handler<Ping> for ApiKeyActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

/// Stops the actor; the tree stays as it is on disk.
impl Handler<Shutdown> for ApiKeyActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Creates a key and flushes before replying.
impl Handler<CreateApiKey> for ApiKeyActor {
    type Result = ResponseFuture<Result<NewApiKey, ApiKeyError>>;
    fn handle(&mut self, msg: CreateApiKey, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.create(&msg)))
    }
}

/// Lists the keys.
impl Handler<ListApiKeys> for ApiKeyActor {
    type Result = Result<Vec<ApiKeyInfo>, StoreError>;
    fn handle(&mut self, _: ListApiKeys, _: &mut Self::Context) -> Self::Result {
        self.list()
    }
}

/// Revokes a key and flushes before replying.
impl Handler<RevokeApiKey> for ApiKeyActor {
    type Result = ResponseFuture<Result<ApiKeyInfo, ApiKeyError>>;
    fn handle(&mut self, msg: RevokeApiKey, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.store.durable(self.revoke(&msg.name)))
    }
}

/// Looks a presented key up by its hash.
impl Handler<VerifyApiKey> for ApiKeyActor {
    type Result = Result<Option<ApiKeyInfo>, StoreError>;
    fn handle(&mut self, msg: VerifyApiKey, _: &mut Self::Context) -> Self::Result {
        self.verify(&msg.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn actor() -> (tempfile::TempDir, Store, Addr<ApiKeyActor>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
        let addr = ApiKeyActor::new(store.clone()).unwrap().start();
        (dir, store, addr)
    }

    fn name(s: &str) -> KeyName {
        KeyName::parse(s).unwrap()
    }

    async fn create(addr: &Addr<ApiKeyActor>, n: &str, scopes: &str) -> NewApiKey {
        addr.send(CreateApiKey { name: name(n), scopes: Scope::parse_list(scopes).unwrap() }).await.unwrap().unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[actix::test]
    async fn keys_are_stored_only_as_their_hash() {
        let (_dir, store, addr) = actor();
        let new = create(&addr, "bot", "pages:read").await;
        let key = new.key.expose().to_owned();
        assert!(key.starts_with("psk_") && well_formed(&key), "{key}");
        let random_part = &key[4..];
        let tree = store.tree(trees::API_KEYS).unwrap();
        for item in tree.iter() {
            let (k, v) = item.unwrap();
            for bytes in [&k[..], &v[..]] {
                assert!(!contains(bytes, key.as_bytes()), "the key is stored");
                assert!(!contains(bytes, random_part.as_bytes()), "the key's random part is stored");
            }
        }
        assert!(tree.get(hash_row(&key_hash(&key))).unwrap().is_some(), "no row under the key's hash");
        // Neither the listing nor a Debug print shows it.
        let listed = serde_json::to_string(&addr.send(ListApiKeys).await.unwrap().unwrap()).unwrap();
        assert!(!listed.contains(random_part), "{listed}");
        assert!(!format!("{new:?}").contains(random_part));
    }

    #[actix::test]
    async fn verify_finds_live_keys_and_refuses_revoked_unknown_and_malformed_ones() {
        let (_dir, _store, addr) = actor();
        let a = create(&addr, "a", "pages:read,tokens:read").await;
        let b = create(&addr, "b.read-only_1", "pages:read").await;
        let verify = |k: &str| addr.send(VerifyApiKey { key: Secret::new(k) });
        let info = verify(a.key.expose()).await.unwrap().unwrap().unwrap();
        assert_eq!(info.name, name("a"));
        assert!(info.allows(Scope::PagesRead) && info.allows(Scope::TokensRead));
        let info = verify(b.key.expose()).await.unwrap().unwrap().unwrap();
        assert!(info.allows(Scope::PagesRead) && !info.allows(Scope::TokensRead));
        assert!(info.last_used.is_some(), "the first use is noted");

        let revoked = addr.send(RevokeApiKey { name: name("a") }).await.unwrap().unwrap();
        assert_eq!(revoked.id, a.info.id);
        assert!(verify(a.key.expose()).await.unwrap().unwrap().is_none(), "revoked key still accepted");
        assert!(verify(b.key.expose()).await.unwrap().unwrap().is_some());
        let unknown = new_key();
        for bad in [unknown.expose(), "", "psk_", "psk_short", "Bearer x", &format!("{}x", b.key.expose())] {
            assert!(verify(bad).await.unwrap().unwrap().is_none(), "{bad:?} accepted");
        }
        let err = addr.send(RevokeApiKey { name: name("a") }).await.unwrap().unwrap_err();
        assert!(matches!(err, ApiKeyError::Unknown(_)), "{err}");
    }

    #[actix::test]
    async fn names_are_unique_and_listed_in_order_without_secrets() {
        let (_dir, _store, addr) = actor();
        create(&addr, "zeta", "tokens:read").await;
        create(&addr, "alpha", "pages:read").await;
        let err =
            addr.send(CreateApiKey { name: name("zeta"), scopes: vec![Scope::PagesRead] }).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let listed = addr.send(ListApiKeys).await.unwrap().unwrap();
        let names: Vec<&str> = listed.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(listed[1].scopes, vec![Scope::TokensRead]);
        assert_eq!(listed[0].last_used, None);
        // A name freed by a revoke can be used again, by a new key.
        addr.send(RevokeApiKey { name: name("zeta") }).await.unwrap().unwrap();
        create(&addr, "zeta", "pages:read").await;
    }

    #[actix::test]
    async fn last_use_is_written_at_most_once_a_minute() {
        let (_dir, store, addr) = actor();
        let new = create(&addr, "k", "pages:read").await;
        let row = hash_row(&key_hash(new.key.expose()));
        let tree = store.tree(trees::API_KEYS).unwrap();
        addr.send(VerifyApiKey { key: new.key.clone() }).await.unwrap().unwrap();
        let first = tree.get(&row).unwrap().unwrap();
        addr.send(VerifyApiKey { key: new.key.clone() }).await.unwrap().unwrap();
        assert_eq!(tree.get(&row).unwrap().unwrap(), first, "a second use within a minute wrote again");
        // A use noted long ago is refreshed.
        let mut info: ApiKeyInfo = serde_json::from_slice(&first).unwrap();
        info.last_used = Some(now() - 2 * LAST_USED_EVERY);
        tree.insert(&row, serde_json::to_vec(&info).unwrap()).unwrap();
        let seen = addr.send(VerifyApiKey { key: new.key.clone() }).await.unwrap().unwrap().unwrap();
        assert!(seen.last_used.unwrap() >= now() - 1);
    }

    #[test]
    fn names_and_scopes_are_parsed_strictly() {
        for good in ["a", "bot-1", "Bot_2.prod", &"x".repeat(MAX_NAME_LEN)] {
            assert!(KeyName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a/b", "../x", "é", "a\n", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(KeyName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Scope::parse_list("tokens:read, pages:read").unwrap(), vec![Scope::PagesRead, Scope::TokensRead]);
        assert_eq!(Scope::parse_list("pages:read,pages:read").unwrap(), vec![Scope::PagesRead]);
        assert!(matches!(Scope::parse_list("pages:write"), Err(ApiKeyError::UnknownScope(s)) if s == "pages:write"));
        assert!(matches!(Scope::parse_list(" , "), Err(ApiKeyError::NoScope)));
        assert!(matches!(Scope::parse_list("tokens:read,admin"), Err(ApiKeyError::UnknownScope(_))));
    }
}
