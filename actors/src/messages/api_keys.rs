//! ApiKeyActor's messages and replies: consumer API keys (create, list, revoke,
//! verify), their names and scopes.

use std::fmt;

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::store::StoreError;

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// What a key may read. Scopes are independent: neither implies the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Page list and `page_data.json` (`GET /api/v1/pages...`).
    #[serde(rename = "pages:read")]
    PagesRead,
    /// Page and shop access tokens (`GET .../token`).
    #[serde(rename = "tokens:read")]
    TokensRead,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::PagesRead, Scope::TokensRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PagesRead => "pages:read",
            Scope::TokensRead => "tokens:read",
        }
    }

    /// Parses a comma-separated list (`pages:read,tokens:read`); blanks around items
    /// are ignored, duplicates collapse, an unknown scope or an empty list is refused.
    pub fn parse_list(raw: &str) -> Result<Vec<Scope>, ApiKeyError> {
        let mut scopes = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.as_str() == item)
                .ok_or_else(|| ApiKeyError::UnknownScope(item.chars().take(64).collect()))?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err(ApiKeyError::NoScope);
        }
        scopes.sort();
        Ok(scopes)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's name: 1 to 64 of `[A-Za-z0-9_.-]`, so it is safe in a sled key, a log
/// line and a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<KeyName, ApiKeyError> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_NAME_LEN
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok { Ok(KeyName(raw.to_owned())) } else { Err(ApiKeyError::BadName) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyName {
    type Error = ApiKeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        KeyName::parse(&value)
    }
}

impl From<KeyName> for String {
    fn from(name: KeyName) -> String {
        name.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What creating, revoking or parsing a key can fail with. Messages are for the
/// operator (the CLI prints them as they are).
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("a key name must be 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ . -")]
    BadName,
    #[error("unknown scope {0:?}: scopes are pages:read and tokens:read (comma-separated)")]
    UnknownScope(String),
    #[error("name at least one scope: pages:read, tokens:read (comma-separated)")]
    NoScope,
    #[error("an API key named {0} already exists (revoke it first, or choose another name)")]
    NameTaken(String),
    #[error("no API key is named {0}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key as stored and listed: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// A random public id (`ak_` + 16 hex), for audit lines: tells two keys of the
    /// same name apart (one revoked, one created later) without revealing anything.
    pub id: String,
    pub name: KeyName,
    pub scopes: Vec<Scope>,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the latest accepted request, to the minute; `None` if never used.
    pub last_used: Option<u64>,
}

impl ApiKeyInfo {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A new key: its record, and the key itself, shown to the operator once.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub info: ApiKeyInfo,
    /// `psk_` + base64url (no padding) of 32 random bytes; `Debug` is redacted.
    pub key: Secret,
}

/// Creates a key named `name` with `scopes`; refused if the name is taken. Durable
/// before the reply.
#[derive(Debug, Message)]
#[rtype(result = "Result<NewApiKey, ApiKeyError>")]
pub struct CreateApiKey {
    pub name: KeyName,
    pub scopes: Vec<Scope>,
}

/// Every key, in name order.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<ApiKeyInfo>, StoreError>")]
pub struct ListApiKeys;

/// Revokes the key named `name`: durable before the reply, refused from the next
/// request on.
#[derive(Debug, Message)]
#[rtype(result = "Result<ApiKeyInfo, ApiKeyError>")]
pub struct RevokeApiKey {
    pub name: KeyName,
}

/// The key presented by a request (the whole bearer value). `None`: malformed,
/// unknown or revoked.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<ApiKeyInfo>, StoreError>")]
pub struct VerifyApiKey {
    pub key: Secret,
}
