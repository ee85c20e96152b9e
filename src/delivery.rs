//! Meta webhook deliveries: from verified bytes to the Pages they name.
//!
//! Only the shape needed to route work is read: `object`, each `entry[].id` and the
//! field names in `changes[].field` / `changed_fields[]`. Those names are hints to
//! re-fetch, never the truth, so values are not read. Only an entry naming one of
//! `FACEBOOK_SUBSCRIBED_FIELDS` asks for a refresh: Messenger traffic (`messaging[]`,
//! `standby[]`, message fields) and other fields belong to the bot and must never cost
//! a Graph call.

use bytes::Bytes;
use pagesync_actors::PageId;
use serde::Deserialize;

use crate::verify::Verified;

/// A parsed delivery for the `page` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Pages of the entries that ask for a refresh, in entry order; one Page may
    /// appear several times.
    pub pages: Vec<PageId>,
    /// Entries whose id was missing or not a valid Page id (never near a path).
    pub rejected: usize,
    /// Entries that name no subscribed field (Messenger traffic, other fields).
    pub not_ours: usize,
    /// The outbox lane of its forward: the first entry's Page id, else `object:page`.
    pub lane: String,
}

/// What a verified body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `object` is `page`.
    Page(Delivery),
    /// Any other (or no) `object`: acknowledged, not refreshed; forwarded in `lane`
    /// (`object:<object>`).
    Ignored { lane: String },
}

/// The body is not a JSON object of the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("delivery is not valid JSON of the expected shape: {0}")]
pub struct MalformedDelivery(#[from] serde_json::Error);

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
    #[serde(default)]
    changes: Option<Many<Change>>,
    #[serde(default)]
    changed_fields: Option<Many<Name>>,
}

/// A list, or anything else (read as no items rather than failing the delivery).
#[derive(Deserialize)]
#[serde(untagged)]
enum Many<T> {
    List(Vec<T>),
    Other(serde::de::IgnoredAny),
}

impl<T> Many<T> {
    fn items(&self) -> &[T] {
        match self {
            Many::List(items) => items,
            Many::Other(_) => &[],
        }
    }
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: Option<Name>,
}

/// A field name, or a value of another type (matches nothing).
#[derive(Deserialize)]
#[serde(untagged)]
enum Name {
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl Name {
    fn is_one_of(&self, fields: &[String]) -> bool {
        matches!(self, Name::Text(name) if fields.iter().any(|f| f == name))
    }
}

impl Entry {
    /// Whether the entry names a field pagesync subscribes to.
    fn asks_refresh(&self, fields: &[String]) -> bool {
        let changed = self
            .changes
            .as_ref()
            .is_some_and(|c| c.items().iter().any(|change| change.field.as_ref().is_some_and(|f| f.is_one_of(fields))));
        changed || self.changed_fields.as_ref().is_some_and(|c| c.items().iter().any(|f| f.is_one_of(fields)))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EntryId {
    Text(String),
    Number(u64),
    Other(serde::de::IgnoredAny),
}

impl EntryId {
    fn page(&self) -> Option<PageId> {
        match self {
            EntryId::Text(s) => PageId::parse(s).ok(),
            EntryId::Number(n) => PageId::parse(&n.to_string()).ok(),
            EntryId::Other(_) => None,
        }
    }
}

/// `object:<object>`, keeping only `a-z`, `0-9` and `_` of a name from the body (it
/// becomes a lane name in logs and listings); `object:none` without one.
fn object_lane(object: Option<&str>) -> String {
    let name: String = object
        .unwrap_or("none")
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .take(32)
        .collect();
    format!("object:{}", if name.is_empty() { "none" } else { &name })
}

/// Parses a verified delivery; `fields` is `FACEBOOK_SUBSCRIBED_FIELDS`.
pub fn parse(body: Verified<Bytes>, fields: &[String]) -> Result<Verified<Parsed>, MalformedDelivery> {
    body.try_map(|bytes| {
        let head: Head = serde_json::from_slice(&bytes)?;
        if head.object.as_deref() != Some("page") {
            return Ok(Parsed::Ignored { lane: object_lane(head.object.as_deref()) });
        }
        let page: PageBody = serde_json::from_slice(&bytes)?;
        let lane = page
            .entry
            .first()
            .and_then(|e| e.id.as_ref())
            .and_then(EntryId::page)
            .map_or_else(|| object_lane(Some("page")), |p| p.as_str().to_owned());
        let mut delivery = Delivery { pages: Vec::with_capacity(page.entry.len()), rejected: 0, not_ours: 0, lane };
        for entry in page.entry {
            if !entry.asks_refresh(fields) {
                delivery.not_ours += 1;
                continue;
            }
            let id = entry.id.as_ref().and_then(EntryId::page);
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

    fn fields() -> Vec<String> {
        vec!["name".to_owned(), "category".to_owned()]
    }

    fn pages(body: &str) -> Delivery {
        match parse(verified(body), &fields()).unwrap().into_inner() {
            Parsed::Page(d) => d,
            Parsed::Ignored { .. } => panic!("ignored"),
        }
    }

    #[test]
    fn batched_entries_keep_every_page_in_order() {
        let d = pages(
            r#"{"object":"page","entry":[{"id":"1","changes":[{"field":"name"}]},{"id":"2","changed_fields":["name"]},{"id":"1","changes":[{"field":"category"}]}]}"#,
        );
        let ids: Vec<&str> = d.pages.iter().map(PageId::as_str).collect();
        assert_eq!(ids, ["1", "2", "1"]);
        assert_eq!(d.rejected, 0);
    }

    #[test]
    fn hostile_and_missing_ids_are_rejected_not_used() {
        let d = pages(
            r#"{"object":"page","entry":[{"id":"../../etc","changed_fields":["name"]},{"id":"1/../2","changed_fields":["name"]},{"changed_fields":["name"]},{"id":{"x":1},"changed_fields":["name"]},{"id":42,"changed_fields":["name"]}]}"#,
        );
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
            assert!(matches!(parse(verified(body), &fields()).unwrap().into_inner(), Parsed::Ignored { .. }), "{body}");
        }
    }

    #[test]
    fn non_json_and_wrong_shapes_are_malformed() {
        for body in ["not json", "[1,2]", "\"page\"", r#"{"object":"page","entry":{"id":"1"}}"#, r#"{"object":7}"#] {
            assert!(parse(verified(body), &fields()).is_err(), "{body}");
        }
    }

    #[test]
    fn messenger_traffic_and_unsubscribed_fields_ask_no_refresh() {
        let d = pages(
            r#"{"object":"page","entry":[
                {"id":"1","time":1,"messaging":[{"sender":{"id":"9"},"message":{"mid":"m1","text":"hi"}}]},
                {"id":"2","time":1,"standby":[{"sender":{"id":"9"}}]},
                {"id":"3","changes":[{"field":"feed","value":{"item":"post"}}]},
                {"id":"4","changes":[{"field":"messages"}]},
                {"id":"5","changed_fields":["ratings"]},
                {"id":"6","changes":{"field":"name"}},
                {"id":"7","changes":[{"field":7}],"changed_fields":"name"},
                {"id":"8","changes":[{"field":"feed"},{"field":"name"}]}
            ]}"#,
        );
        assert_eq!(d.pages, vec![PageId::parse("8").unwrap()]);
        assert_eq!(d.not_ours, 7);
    }

    #[test]
    fn forwards_get_the_lane_of_their_first_page_or_their_object() {
        assert_eq!(pages(r#"{"object":"page","entry":[{"id":"77","messaging":[]},{"id":"1"}]}"#).lane, "77");
        assert_eq!(pages(r#"{"object":"page","entry":[{"id":"../x"}]}"#).lane, "object:page");
        assert_eq!(pages(r#"{"object":"page","entry":[]}"#).lane, "object:page");
        let lane = |body: &str| match parse(verified(body), &fields()).unwrap().into_inner() {
            Parsed::Ignored { lane } => lane,
            Parsed::Page(_) => panic!("page"),
        };
        assert_eq!(lane(r#"{"object":"instagram","entry":[]}"#), "object:instagram");
        assert_eq!(lane(r#"{"object":"../<b>"}"#), "object:b");
        assert_eq!(lane(r#"{"entry":[]}"#), "object:none");
    }
}
