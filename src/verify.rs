//! Signature checks on raw bytes, turning them into [`Verified`] values.
//!
//! Only this module can make a `Verified<T>`, so a body whose signature was not checked
//! cannot travel further by mistake: the webhook route can hand a delivery to the
//! actors only as a `Verified<Delivery>`. Every comparison of a MAC is constant-time
//! (`Mac::verify_slice`), and the algorithm is fixed per header, never taken from it.

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use pagesync_actors::Secret;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

/// The header Meta signs deliveries with today.
pub const SIGNATURE_256: &str = "x-hub-signature-256";
/// The legacy SHA-1 header, still checked when present.
pub const SIGNATURE_1: &str = "x-hub-signature";

/// A value derived only from bytes whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub fn get(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }

    /// Derives a value from verified content (parsing); crate-private so that nothing
    /// outside can wrap arbitrary data.
    pub(crate) fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Verified<U>, E> {
        f(self.0).map(Verified)
    }
}

/// Why a signature was refused. Deliberately coarse: the client learns nothing about
/// which part failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature header")]
    Missing,
    #[error("malformed signature header")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// The signature headers of a Meta delivery, parsed but not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSignatures {
    sha256: Option<Vec<u8>>,
    sha1: Option<Vec<u8>>,
}

impl MetaSignatures {
    /// Reads `X-Hub-Signature-256: sha256=<hex>` and `X-Hub-Signature: sha1=<hex>`.
    /// At least one must be present; each present one must be well formed (exact
    /// prefix, hex of the right length, one value only).
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, SignatureError> {
        let sha256 = header_digest(headers, SIGNATURE_256, "sha256=", 32)?;
        let sha1 = header_digest(headers, SIGNATURE_1, "sha1=", 20)?;
        if sha256.is_none() && sha1.is_none() {
            return Err(SignatureError::Missing);
        }
        Ok(MetaSignatures { sha256, sha1 })
    }

    /// Checks every present signature over `body` under `secret`.
    pub fn verify(&self, secret: &Secret, body: Bytes) -> Result<Verified<Bytes>, SignatureError> {
        let key = secret.expose().as_bytes();
        if let Some(expected) = &self.sha256 {
            let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SignatureError::Mismatch)?;
            mac.update(&body);
            mac.verify_slice(expected).map_err(|_| SignatureError::Mismatch)?;
        }
        if let Some(expected) = &self.sha1 {
            let mut mac = HmacSha1::new_from_slice(key).map_err(|_| SignatureError::Mismatch)?;
            mac.update(&body);
            mac.verify_slice(expected).map_err(|_| SignatureError::Mismatch)?;
        }
        Ok(Verified(body))
    }
}

fn header_digest(headers: &HeaderMap, name: &str, prefix: &str, len: usize) -> Result<Option<Vec<u8>>, SignatureError> {
    let mut values = headers.get_all(name);
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(SignatureError::Malformed);
    }
    let text = value.to_str().map_err(|_| SignatureError::Malformed)?;
    let hex_part = text.strip_prefix(prefix).ok_or(SignatureError::Malformed)?;
    if hex_part.len() != len * 2 {
        return Err(SignatureError::Malformed);
    }
    hex::decode(hex_part).map(Some).map_err(|_| SignatureError::Malformed)
}

/// Checks Shopify's OAuth callback `hmac` (docs/platform.md, "Shopify OAuth"): every other parameter
/// (`hmac` and the legacy `signature` removed) sorted by name, re-encoded as a form
/// with `%20` for spaces, joined `k=v&k=v`, HMAC-SHA256 under the app secret, hex.
/// Returns the remaining parameters.
pub fn verify_shopify_query(
    secret: &Secret,
    pairs: Vec<(String, String)>,
) -> Result<Verified<Vec<(String, String)>>, SignatureError> {
    let mut given = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match k.as_str() {
            "hmac" if given.is_some() => return Err(SignatureError::Malformed),
            "hmac" => given = Some(v),
            "signature" => {}
            _ => rest.push((k, v)),
        }
    }
    let given = given.ok_or(SignatureError::Missing)?;
    let expected = hex::decode(&given).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    rest.sort();
    let message = shopify_message(&rest);
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(message.as_bytes());
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)?;
    Ok(Verified(rest))
}

/// The message Shopify signs: sorted pairs, form-encoded, `+` as `%20`.
pub fn shopify_message(sorted: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in sorted {
        serializer.append_pair(k, v);
    }
    serializer.finish().replace('+', "%20")
}

/// Checks `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body).
pub fn verify_shopify_webhook(
    secret: &Secret,
    header: Option<&str>,
    body: Bytes,
) -> Result<Verified<Bytes>, SignatureError> {
    use base64::Engine as _;
    let header = header.ok_or(SignatureError::Missing)?;
    let expected =
        base64::engine::general_purpose::STANDARD.decode(header.trim()).map_err(|_| SignatureError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(&body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)?;
    Ok(Verified(body))
}

/// The payload of a Meta `signed_request` that we use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SignedRequest {
    pub algorithm: String,
    pub user_id: String,
    #[serde(default)]
    pub issued_at: Option<u64>,
}

/// Checks a `signed_request` (`base64url(sig).base64url(json)`, sig = HMAC-SHA256 of
/// the second part under the app secret) and decodes its payload.
pub fn verify_signed_request(app_secret: &Secret, value: &str) -> Result<Verified<SignedRequest>, SignatureError> {
    use base64::Engine as _;
    let (sig, payload) = value.split_once('.').ok_or(SignatureError::Malformed)?;
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| SignatureError::Malformed)
    };
    let expected = decode(sig)?;
    let mut mac = HmacSha256::new_from_slice(app_secret.expose().as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)?;
    let json = decode(payload)?;
    let request: SignedRequest = serde_json::from_slice(&json).map_err(|_| SignatureError::Malformed)?;
    if !request.algorithm.eq_ignore_ascii_case("HMAC-SHA256") {
        return Err(SignatureError::Malformed);
    }
    Ok(Verified(request))
}

/// `sha256=<hex>` for `body` under `secret`, as Meta sends it.
pub fn sign_sha256(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), body)))
}

/// `sha1=<hex>` for `body` under `secret` (legacy header).
pub fn sign_sha1(secret: &str, body: &[u8]) -> String {
    let mut mac = <HmacSha1 as KeyInit>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable_hmac());
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail; this keeps the
/// signature of the helpers infallible without an `unwrap`.
fn unreachable_hmac<T>() -> T {
    unreachable!("HMAC takes keys of any length")
}

/// `appsecret_proof` for a Graph call: hex HMAC-SHA256 of `token|time` under the app
/// secret (docs/platform.md, "Login", the timed form; `time` goes along as `appsecret_time`).
pub fn appsecret_proof(app_secret: &Secret, token: &Secret, time: u64) -> String {
    let message = format!("{}|{time}", token.expose());
    hex::encode(hmac_sha256(app_secret.expose().as_bytes(), message.as_bytes()))
}

/// Constant-time equality of two strings (lengths may leak, contents do not).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    const SECRET: &str = "test_app_secret_0123456789abcdef";
    const A: &str = r#"{"object":"page","entry":[{"id":"104857600012345","time":1767225600,"changes":[{"field":"name","value":"Maple & Oak Candle Co."}]}]}"#;
    const B: &str = r#"{"object":"page","entry":[{"id":"104857600012345","time":1767225660,"changes":[{"field":"category","value":"Home Decor"}]},{"id":"209715200067890","time":1767225661,"changes":[{"field":"name","value":"Northwind Outfitters"},{"field":"category","value":"Sporting Goods Store"}]}]}"#;
    const C: &str = r#"{"object":"page","entry":[{"id":"314572800098765","time":1767225720,"changes":[{"field":"name","value":"Caf\u00e9 Lumi\u00e8re \/ Bakery"}]}]}"#;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn check(pairs: &[(&'static str, &str)], body: &str) -> Result<Verified<Bytes>, SignatureError> {
        MetaSignatures::from_headers(&headers(pairs))?
            .verify(&Secret::new(SECRET), Bytes::copy_from_slice(body.as_bytes()))
    }

    #[test]
    fn githubs_published_vector() {
        assert_eq!(
            sign_sha256("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn platform_vectors_a_b_c_verify_with_both_headers() {
        let cases = [
            (
                A,
                132,
                "sha256=825261f18092a12fbe96d6e7b51025ab57db4ebd8b5e1ad8f39817dfda851da5",
                "sha1=ea3c8dac0736bcaab2a9918415ffb838caeb9647",
            ),
            (
                B,
                279,
                "sha256=633f79183428fcab45fa23b21201d701c5c96c73cb2d44930cf26bdb5703d2b8",
                "sha1=5dfe5b5361e1d5d2717ac39246c68af638a77989",
            ),
            (
                C,
                142,
                "sha256=0bcd7b6e3e06d40b62274bda76cf372605a27e0c580610f7e7efe85e4ae91147",
                "sha1=6d3963d525b93ed92d59d4ccda6e4087aa725f09",
            ),
        ];
        for (body, len, s256, s1) in cases {
            assert_eq!(body.len(), len);
            assert_eq!(sign_sha256(SECRET, body.as_bytes()), s256);
            assert_eq!(sign_sha1(SECRET, body.as_bytes()), s1);
            assert!(check(&[(SIGNATURE_256, s256)], body).is_ok());
            assert!(check(&[(SIGNATURE_1, s1)], body).is_ok());
            assert!(check(&[(SIGNATURE_256, s256), (SIGNATURE_1, s1)], body).is_ok());
        }
    }

    #[test]
    fn re_serialised_unicode_does_not_verify() {
        // What a parse-then-serialise round trip sends to the MAC: same keys, same
        // order, but the escapes decoded.
        let reserialised = C.replace(r"\u00e9", "é").replace(r"\u00e8", "è").replace(r"\/", "/");
        assert!(reserialised.contains("Café Lumière / Bakery"));
        let value: serde_json::Value = serde_json::from_str(C).unwrap();
        assert_eq!(value, serde_json::from_str::<serde_json::Value>(&reserialised).unwrap(), "same JSON");
        assert_eq!(
            sign_sha256(SECRET, reserialised.as_bytes()),
            "sha256=3824409e88b7c77fc8591e023aee018b68c961a447239080a46657dec8bf123f"
        );
        let header = "sha256=0bcd7b6e3e06d40b62274bda76cf372605a27e0c580610f7e7efe85e4ae91147";
        assert_eq!(check(&[(SIGNATURE_256, header)], &reserialised).unwrap_err(), SignatureError::Mismatch);
    }

    #[test]
    fn every_present_header_must_be_right() {
        let good256 = sign_sha256(SECRET, A.as_bytes());
        let bad1 = sign_sha1("other", A.as_bytes());
        assert_eq!(check(&[(SIGNATURE_256, &good256), (SIGNATURE_1, &bad1)], A).unwrap_err(), SignatureError::Mismatch);
    }

    #[test]
    fn malformed_and_missing_headers_are_refused() {
        let good = sign_sha256(SECRET, A.as_bytes());
        assert_eq!(check(&[], A).unwrap_err(), SignatureError::Missing);
        for bad in [
            good.replacen("sha256=", "sha1=", 1),
            good.replacen("sha256=", "", 1),
            format!("{good}00"),
            good[..good.len() - 2].to_owned(),
            good.replacen('a', "z", 1),
        ] {
            assert_eq!(check(&[(SIGNATURE_256, &bad)], A).unwrap_err(), SignatureError::Malformed, "{bad}");
        }
        assert_eq!(check(&[(SIGNATURE_256, &good), (SIGNATURE_256, &good)], A).unwrap_err(), SignatureError::Malformed);
    }

    #[test]
    fn a_changed_body_or_secret_does_not_verify() {
        let good = sign_sha256(SECRET, A.as_bytes());
        assert_eq!(check(&[(SIGNATURE_256, &good)], &A.replace("Oak", "Elm")).unwrap_err(), SignatureError::Mismatch);
        let other = MetaSignatures::from_headers(&headers(&[(SIGNATURE_256, &good)]))
            .unwrap()
            .verify(&Secret::new("another secret"), Bytes::from_static(A.as_bytes()));
        assert_eq!(other.unwrap_err(), SignatureError::Mismatch);
    }

    #[test]
    fn shopify_legacy_and_current_vectors() {
        let secret = Secret::new("hush");
        let legacy = vec![
            ("code".to_owned(), "0907a61c0c8d55e99db179b68161bc00".to_owned()),
            ("shop".to_owned(), "some-shop.myshopify.com".to_owned()),
            ("timestamp".to_owned(), "1337178173".to_owned()),
            ("hmac".to_owned(), "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20".to_owned()),
        ];
        assert!(verify_shopify_query(&secret, legacy).is_ok());
        let current = vec![
            ("timestamp".to_owned(), "1767225600".to_owned()),
            ("state".to_owned(), "a1b2c3d4e5f6".to_owned()),
            ("shop".to_owned(), "example-shop.myshopify.com".to_owned()),
            ("host".to_owned(), "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZXhhbXBsZS1zaG9w".to_owned()),
            ("code".to_owned(), "0907a61c0c8d55e99db179b68161bc00".to_owned()),
            ("hmac".to_owned(), "a49798eb42aa3d1c8473d7b8da808b4b97caf950483ae555bbb8d7d63b540bf3".to_owned()),
        ];
        let verified = verify_shopify_query(&secret, current.clone()).unwrap();
        assert_eq!(verified.get().len(), 5);
        let mut tampered = current;
        tampered[0].1 = "1767225601".into();
        assert_eq!(verify_shopify_query(&secret, tampered).unwrap_err(), SignatureError::Mismatch);
        assert_eq!(verify_shopify_query(&secret, vec![]).unwrap_err(), SignatureError::Missing);
    }

    #[test]
    fn shopify_webhook_vector() {
        let body = Bytes::from_static(br#"{"shop_id":954889,"shop_domain":"example-shop.myshopify.com"}"#);
        let secret = Secret::new("hush");
        assert!(
            verify_shopify_webhook(&secret, Some("OVK8kCpgNEyCTeB+tgVfdaWynyaIRPUiINfaeWZMUo0="), body.clone()).is_ok()
        );
        assert!(
            verify_shopify_webhook(&secret, Some("OVK8kCpgNEyCTeB+tgVfdaWynyaIRPUiINfaeWZMUo1="), body.clone())
                .is_err()
        );
        assert_eq!(verify_shopify_webhook(&secret, None, body).unwrap_err(), SignatureError::Missing);
    }

    #[test]
    fn signed_requests_verify_on_the_payload_part() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let payload = b64(br#"{"algorithm":"HMAC-SHA256","user_id":"1000123","issued_at":1767225600}"#);
        let sig = b64(&hmac_sha256(b"app-secret", payload.as_bytes()));
        let secret = Secret::new("app-secret");
        let request = verify_signed_request(&secret, &format!("{sig}.{payload}")).unwrap();
        assert_eq!(request.get().user_id, "1000123");
        assert!(verify_signed_request(&Secret::new("other"), &format!("{sig}.{payload}")).is_err());
        assert!(verify_signed_request(&secret, &payload).is_err());
        assert!(verify_signed_request(&secret, &format!("{sig}.{payload}x")).is_err());
    }

    #[test]
    fn appsecret_proof_is_hmac_of_token_and_time() {
        let proof = appsecret_proof(&Secret::new("secret"), &Secret::new("token"), 1_700_000_000);
        assert_eq!(proof, hex::encode(hmac_sha256(b"secret", b"token|1700000000")));
        assert_eq!(proof.len(), 64);
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        assert!(!constant_time_eq("", "a"));
    }
}
