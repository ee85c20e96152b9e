//! Identifiers parsed once, at the edge.
//!
//! Everything that can end up in a path, a sled key or a Graph URL is a typed value
//! here. The HTTP layer parses raw strings into these types; actors never see a raw
//! string that could be a path (`../../etc`) or a forged id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a Page id must be 1 to {max} ASCII digits")]
    PageId { max: usize },
    #[error("a user id must be a lowercase hyphenated UUID")]
    UserId,
    #[error("a shop must look like name.myshopify.com (lowercase letters, digits, hyphens)")]
    Shop,
    #[error("a Facebook user id must be 1 to 32 ASCII digits")]
    FacebookUser,
}

/// A Facebook Page id: ASCII digits only, so it is safe as a folder name and in a URL
/// path segment. Graph ids are 64-bit integers today; 32 digits leaves room without
/// letting a caller make absurdly long paths.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PageId(String);

impl PageId {
    /// The longest id accepted.
    pub const MAX_LEN: usize = 32;

    /// Parses a Page id; anything but 1..=32 ASCII digits is refused.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::PageId { max: Self::MAX_LEN });
        }
        Ok(PageId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PageId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        PageId::parse(&value)
    }
}

impl From<PageId> for String {
    fn from(id: PageId) -> String {
        id.0
    }
}

impl fmt::Display for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageId({})", self.0)
    }
}

/// The merchant's stable identity inside pagesync: a UUID given to a shop on its first
/// install. Kept in the canonical lowercase hyphenated form so that equal ids are equal
/// strings (they are sled keys).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Parses the canonical form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lowercase hex).
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let bytes = raw.as_bytes();
        let well_formed = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
            });
        if well_formed { Ok(UserId(raw.to_owned())) } else { Err(IdError::UserId) }
    }

    /// A new random (version 4) UUID.
    pub fn random() -> Self {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = crate::hex(&b);
        UserId(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        UserId::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

/// A Shopify shop's domain, `^[a-z0-9][a-z0-9-]*\.myshopify\.com$`, anchored at both
/// ends so that `a.myshopify.com.evil.com` is refused.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShopDomain(String);

impl ShopDomain {
    const SUFFIX: &'static str = ".myshopify.com";

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let name = raw.strip_suffix(Self::SUFFIX).ok_or(IdError::Shop)?;
        let mut bytes = name.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if first_ok && rest_ok && raw.len() <= 255 { Ok(ShopDomain(raw.to_owned())) } else { Err(IdError::Shop) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShopDomain {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ShopDomain::parse(&value)
    }
}

impl From<ShopDomain> for String {
    fn from(id: ShopDomain) -> String {
        id.0
    }
}

impl fmt::Display for ShopDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShopDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShopDomain({})", self.0)
    }
}

/// A Facebook (app-scoped) user id: digits only.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FacebookUserId(String);

impl FacebookUserId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() || raw.len() > 32 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::FacebookUser);
        }
        Ok(FacebookUserId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FacebookUserId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        FacebookUserId::parse(&value)
    }
}

impl From<FacebookUserId> for String {
    fn from(id: FacebookUserId) -> String {
        id.0
    }
}

impl fmt::Display for FacebookUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FacebookUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FacebookUserId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ids_are_digits_only() {
        assert!(PageId::parse("104857600012345").is_ok());
        for bad in ["", "../../etc", "1/../2", "12a", " 12", "12\n", "１２", "-1", "1.5"] {
            assert!(PageId::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(PageId::parse(&"9".repeat(PageId::MAX_LEN)).is_ok());
        assert!(PageId::parse(&"9".repeat(PageId::MAX_LEN + 1)).is_err());
    }

    #[test]
    fn page_id_deserialisation_validates() {
        let ok: Result<PageId, _> = serde_json::from_str("\"42\"");
        assert!(ok.is_ok());
        let bad: Result<PageId, _> = serde_json::from_str("\"../42\"");
        assert!(bad.is_err());
    }

    #[test]
    fn random_user_ids_parse_and_differ() {
        let a = UserId::random();
        let b = UserId::random();
        assert_ne!(a, b);
        assert_eq!(UserId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(&a.as_str()[14..15], "4", "version nibble");
    }

    #[test]
    fn shop_domains_are_anchored_at_both_ends() {
        for good in ["a.myshopify.com", "my-shop-1.myshopify.com", "0.myshopify.com"] {
            assert!(ShopDomain::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "myshopify.com",
            ".myshopify.com",
            "-a.myshopify.com",
            "A.myshopify.com",
            "a_b.myshopify.com",
            "a.b.myshopify.com",
            "a.myshopify.com.evil.com",
            "evil.com",
            "a.myshopify.com/",
            "a.myshopify.com\n",
        ] {
            assert!(ShopDomain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_ids_must_be_canonical() {
        assert!(UserId::parse("0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
        for bad in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb469fa16570867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "../8fad5b-d9cb-469f-a165-70867728950e",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
