//! Meta webhook deliveries: from verified bytes to the Pages they name.
//!
//! Only the shape needed to route work is read: `object` and each `entry[].id`.
//! `changes[].field`, `changed_fields[]` and `messaging[]` are hints to re-fetch, never
//! the truth (SPEC §4), so their contents are not interpreted here.

use bytes::Bytes;
use pagesync_actors::PageId;
use serde::Deserialize;

use crate::verify::Verified;

/// A parsed delivery for the `page` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Page ids in entry order; one Page may appear several times.
    pub pages: Vec<PageId>,
    /// Entries whose id was missing or not a valid Page id (never near a path).
    pub rejected: usize,
}

/// What a verified body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `object` is `page`.
    Page(Delivery),
    /// Any other (or no) `object`: acknowledged and ignored.
    Ignored,
}

/// The body is not a JSON object of the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("delivery is not valid JSON of the expected shape: {0}")]
pub struct MalformedDelivery(#[from] serde_json::Error);

impl Verified<Parsed> {
    /// The delivery, when the body was for the `page` object.
    pub fn into_delivery(self) -> Option<Verified<Delivery>> {
        self.try_map(|parsed| match parsed {
            Parsed::Page(d) => Ok(d),
            Parsed::Ignored => Err(()),
        })
        .ok()
    }
}

#[derive(Deserialize)]
struct Head {
    object: Option<String>,
}

#[derive(Deserialize)]
struct PageBody {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: Option<EntryId>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EntryId {
    Text(String),
    Number(u64),
    Other(serde::de::IgnoredAny),
}

/// Parses a verified delivery.
pub fn parse(body: Verified<Bytes>) -> Result<Verified<Parsed>, MalformedDelivery> {
    body.try_map(|bytes| {
        let head: Head = serde_json::from_slice(&bytes)?;
        if head.object.as_deref() != Some("page") {
            return Ok(Parsed::Ignored);
        }
        let page: PageBody = serde_json::from_slice(&bytes)?;
        let mut delivery = Delivery { pages: Vec::with_capacity(page.entry.len()), rejected: 0 };
        for entry in page.entry {
            let id = match entry.id {
                Some(EntryId::Text(s)) => PageId::parse(&s).ok(),
                Some(EntryId::Number(n)) => PageId::parse(&n.to_string()).ok(),
                Some(EntryId::Other(_)) | None => None,
            };
            match id {
                Some(id) => delivery.pages.push(id),
                None => delivery.rejected += 1,
            }
        }
        Ok(Parsed::Page(delivery))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{MetaSignatures, SIGNATURE_256, sign_sha256};
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use pagesync_actors::Secret;

    fn verified(body: &str) -> Verified<Bytes> {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static(SIGNATURE_256),
            HeaderValue::from_str(&sign_sha256("s", body.as_bytes())).unwrap(),
        );
        MetaSignatures::from_headers(&h)
            .unwrap()
            .verify(&Secret::new("s"), Bytes::copy_from_slice(body.as_bytes()))
            .unwrap()
    }

    fn pages(body: &str) -> Delivery {
        match parse(verified(body)).unwrap().into_inner() {
            Parsed::Page(d) => d,
            Parsed::Ignored => panic!("ignored"),
        }
    }

    #[test]
    fn batched_entries_keep_every_page_in_order() {
        let d = pages(
            r#"{"object":"page","entry":[{"id":"1","changes":[{"field":"name"}]},{"id":"2","changed_fields":["name"]},{"id":"1","messaging":[{}]}]}"#,
        );
        let ids: Vec<&str> = d.pages.iter().map(PageId::as_str).collect();
        assert_eq!(ids, ["1", "2", "1"]);
        assert_eq!(d.rejected, 0);
    }

    #[test]
    fn hostile_and_missing_ids_are_rejected_not_used() {
        let d = pages(r#"{"object":"page","entry":[{"id":"../../etc"},{"id":"1/../2"},{},{"id":{"x":1}},{"id":42}]}"#);
        assert_eq!(d.pages, vec![PageId::parse("42").unwrap()]);
        assert_eq!(d.rejected, 4);
    }

    #[test]
    fn escaped_unicode_bodies_parse() {
        let d = pages(
            r#"{"object":"page","entry":[{"id":"314572800098765","time":1767225720,"changes":[{"field":"name","value":"Caf\u00e9 Lumi\u00e8re \/ Bakery"}]}]}"#,
        );
        assert_eq!(d.pages.len(), 1);
    }

    #[test]
    fn other_objects_are_ignored() {
        for body in [r#"{"object":"user","entry":"anything"}"#, r#"{"entry":[]}"#, r#"{"object":"instagram"}"#] {
            assert_eq!(parse(verified(body)).unwrap().into_inner(), Parsed::Ignored, "{body}");
        }
    }

    #[test]
    fn non_json_and_wrong_shapes_are_malformed() {
        for body in ["not json", "[1,2]", "\"page\"", r#"{"object":"page","entry":{"id":"1"}}"#, r#"{"object":7}"#] {
            assert!(parse(verified(body)).is_err(), "{body}");
        }
    }
}
