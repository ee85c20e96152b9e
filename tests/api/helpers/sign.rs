//! What Meta and Shopify sign, signed the same way: webhook signatures, `signed_request`,
//! Shopify HMACs, delivery bodies and the clock formats they carry.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use pagesync::verify::hmac_sha256;
use serde_json::Value;

/// A delivery body naming `pages`, one entry each, compact like Meta's.
pub fn delivery(pages: &[&str]) -> String {
    let entries: Vec<String> = pages
        .iter()
        .map(|p| format!(r#"{{"id":"{p}","time":1767225600,"changes":[{{"field":"name","value":"x"}}]}}"#))
        .collect();
    format!(r#"{{"object":"page","entry":[{}]}}"#, entries.join(","))
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis())
        .expect("millis fit in u64")
}

/// `millis` (since the epoch) as RFC 3339 with milliseconds, in the zone `offset_minutes`
/// east of UTC (`Z` for 0), like Shopify's `X-Shopify-Triggered-At`.
pub fn rfc3339(millis: u64, offset_minutes: i64) -> String {
    let local = u64::try_from(i64::try_from(millis).expect("millis fit in i64") + offset_minutes * 60_000)
        .expect("a time after 1970");
    let (year, month, day, h, m, s) = pagesync_actors::civil_utc(local / 1000);
    let ms = local % 1000;
    let zone = if offset_minutes == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", offset_minutes.abs() / 60, offset_minutes.abs() % 60)
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}{zone}")
}

/// Shopify's query `hmac`: lowercase hex HMAC-SHA256 under `secret` of the other
/// parameters sorted by name, form-encoded (`%20` for spaces), joined as `k=v&k=v`.
pub fn shopify_query_hmac(secret: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "hmac" && k != "signature").collect();
    pairs.sort();
    let message: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
    hex::encode(hmac_sha256(secret.as_bytes(), message.join("&").as_bytes()))
}

/// Shopify's webhook header: base64 HMAC-SHA256 of the raw body under `secret`.
pub fn shopify_webhook_hmac(secret: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), body))
}

/// Meta's `signed_request`: `base64url(sig).base64url(json)`, no padding, `sig` the
/// HMAC-SHA256 of the second part under `secret`.
pub fn signed_request(secret: &str, payload: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = b64.encode(payload.to_string());
    let sig = b64.encode(hmac_sha256(secret.as_bytes(), body.as_bytes()));
    format!("{sig}.{body}")
}

/// `application/x-www-form-urlencoded` encoding of one value, with `%20` for spaces.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"*-._".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
