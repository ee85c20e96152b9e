//! What handlers read from a request besides its body and query: cookies and whether
//! a browser is asking. Kept apart from the handlers so that every surface reads a
//! cookie the same way.

use std::time::Duration;

use actix_web::HttpRequest;
use pagesync_actors::Secret;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "session_id";

/// The `session_id` cookie of the request, if any.
pub fn session_cookie(req: &HttpRequest) -> Option<Secret> {
    cookie(req, SESSION_COOKIE).map(Secret::new)
}

/// The first non-empty value of cookie `wanted` in the request (at most 128 bytes:
/// none of ours is longer, and nothing longer is worth comparing).
pub fn cookie<'r>(req: &'r HttpRequest, wanted: &str) -> Option<&'r str> {
    req.headers().get_all(actix_web::http::header::COOKIE).filter_map(|v| v.to_str().ok()).find_map(|header| {
        header.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == wanted && !value.is_empty() && value.len() <= 128).then_some(value)
        })
    })
}

/// `Set-Cookie` value for a session (docs/contract.md §4): HttpOnly, SameSite=Lax, Path=/, Secure
/// when the app is served over https.
pub fn session_cookie_header(id: &Secret, ttl: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        id.expose(),
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the client asked for HTML (a browser) rather than JSON.
pub fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}
