//! The demo bot behind `pagesync sandbox`: the receiving end of pagesync's relay and
//! events (docs/contract.md §7), on its own loopback HTTP server, so that a newcomer sees in a
//! browser what a Messenger bot next to pagesync gets.
//!
//! - `POST /webhook` (the sandbox's `PAGESYNC_FORWARD_URL`): a relayed Meta delivery.
//!   It checks `X-Hub-Signature-256` with the app secret over the raw bytes, exactly
//!   as a real bot does (docs/integration.md §2), and records the Page, the customer,
//!   the text, the `mid`, `X-Pagesync-Delivery`, `X-Pagesync-Attempt` and whether the
//!   signature verified.
//! - `POST /events` (`PAGESYNC_EVENTS_URL`): a Standard Webhooks event, checked with
//!   the events secret and a five-minute timestamp tolerance; records the type, the
//!   data and whether it verified.
//! - `GET /`: both lists as an HTML page, newest first, each row "verified" or
//!   "NOT verified".
//!
//! Both POSTs answer 200 whatever the check says. A real bot would refuse a bad
//! signature; this one exists to show what arrives, and a refusal would only make
//! pagesync retry the same item for a day while the page showed nothing. A row marked
//! "NOT verified" is the more useful answer in a demo.
//!
//! State is two bounded lists under a std mutex that is never held across an
//! `.await`: the bot keeps the newest [`KEPT`] of each and forgets everything when
//! the sandbox stops. It is not on any production code path.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::http::header::{self, HeaderMap};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use pagesync_actors::Secret;
use serde_json::Value;

use crate::clients::outbox::event_signature;
use crate::clock::unix_now;
use crate::config::EventsKey;
use crate::html::{escape, html_page};
use crate::verify::{constant_time_eq, sign_sha256};

/// How many forwarded deliveries and how many events the bot remembers (each): enough
/// for a demo, bounded so a long-running sandbox does not grow.
pub const KEPT: usize = 100;

/// Standard Webhooks' recommended tolerance between `webhook-timestamp` and our clock,
/// either way: an older event is a possible replay.
const TIMESTAMP_TOLERANCE_SECS: u64 = 300;

/// Largest body read. Above pagesync's default `PAGESYNC_WEBHOOK_MAX_BYTES` (1 MiB),
/// so that every delivery the daemon accepted can be relayed here.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Longest text kept per cell; the page is for reading, not for archiving bodies.
const MAX_CELL_CHARS: usize = 300;

/// What the bot checks signatures with: the values the daemon is configured with.
#[derive(Debug, Clone)]
pub struct DemoBotConfig {
    /// The bot's own base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// `FACEBOOK_APP_SECRET`: the bot shares the Meta app, so it checks Meta's
    /// signature on relayed deliveries itself.
    pub app_secret: Secret,
    /// The decoded `PAGESYNC_EVENTS_SECRET`.
    pub events_key: EventsKey,
}

/// One relayed Meta delivery, as the bot saw it.
#[derive(Debug, Clone)]
pub struct ForwardedDelivery {
    /// Unix seconds when it arrived.
    pub received_at: u64,
    /// The first entry's Page id.
    pub page_id: Option<String>,
    /// The first messaging event's sender (the customer's PSID).
    pub sender: Option<String>,
    /// The first message's text.
    pub text: Option<String>,
    /// The first message's id, which a bot dedupes on.
    pub mid: Option<String>,
    /// What else the delivery carried when it was no message, e.g. `changes: name`.
    pub summary: String,
    /// `X-Pagesync-Delivery`: the same on every attempt of one forward.
    pub delivery: Option<String>,
    /// `X-Pagesync-Attempt`, counting from 1.
    pub attempt: Option<String>,
    /// `X-Hub-Signature-256` matched the body under the app secret.
    pub verified: bool,
}

/// One pagesync event, as the bot saw it.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// Unix seconds when it arrived.
    pub received_at: u64,
    /// `webhook-id`.
    pub id: Option<String>,
    /// The body's `type`, e.g. `page.updated`.
    pub kind: Option<String>,
    /// The body's `data`, as compact JSON.
    pub data: Option<String>,
    /// `Ok` when the Standard Webhooks signature and timestamp checked out, else why not.
    pub verified: Result<(), EventRejection>,
}

/// Why an event's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventRejection {
    #[error("webhook-id, webhook-timestamp or webhook-signature missing")]
    MissingHeader,
    #[error("webhook-timestamp is not unix seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes off")]
    TooOld,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// What the bot received, newest last.
#[derive(Default)]
struct Log {
    forwarded: VecDeque<ForwardedDelivery>,
    events: VecDeque<ReceivedEvent>,
}

struct Shared {
    config: DemoBotConfig,
    log: Mutex<Log>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock leaves at worst a list one row short; keep
        // serving.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle on a running demo bot, for inspection (tests, the banner).
#[derive(Clone)]
pub struct DemoBot {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DemoBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoBot").field("url", &self.shared.config.url).finish_non_exhaustive()
    }
}

impl DemoBot {
    /// Builds the bot's server on `listener` (bound by the caller). The server is
    /// returned unstarted: spawn it on the actix System and keep its handle.
    pub fn start(config: DemoBotConfig, listener: TcpListener) -> anyhow::Result<(DemoBot, actix_web::dev::Server)> {
        let shared = Arc::new(Shared { config, log: Mutex::new(Log::default()) });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .route("/", web::get().to(page))
                .route("/webhook", web::post().to(webhook))
                .route("/events", web::post().to(events))
        })
        // One worker: a demo page and a trickle of deliveries on 2 shared cores.
        .workers(1)
        // The sandbox stops every server itself, the daemon first.
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)
        .context("cannot listen for the demo bot")?
        .run();
        Ok((DemoBot { shared }, server))
    }

    /// The bot's base URL; its page is at `/`.
    pub fn url(&self) -> &str {
        &self.shared.config.url
    }

    /// The relayed deliveries kept, oldest first.
    pub fn forwarded(&self) -> Vec<ForwardedDelivery> {
        self.shared.lock().forwarded.iter().cloned().collect()
    }

    /// The events kept, oldest first.
    pub fn events(&self) -> Vec<ReceivedEvent> {
        self.shared.lock().events.iter().cloned().collect()
    }
}

// ----- signature checks --------------------------------------------------------------

/// Meta's check, as a bot makes it: `X-Hub-Signature-256` must be present and equal
/// `sha256=<hex HMAC-SHA256 of the raw body under the app secret>` (constant time).
/// The legacy SHA-1 header alone is not enough, as for a bot written today.
pub fn delivery_verified(app_secret: &Secret, signature_256: Option<&str>, body: &[u8]) -> bool {
    signature_256.is_some_and(|given| constant_time_eq(given, &sign_sha256(app_secret.expose(), body)))
}

/// The Standard Webhooks check: the timestamp within [`TIMESTAMP_TOLERANCE_SECS`] of
/// `now`, and one of the space-separated `v1,<base64>` signatures equal to the HMAC of
/// `{id}.{timestamp}.{body}` under the events key (constant time). Other versions in
/// the list are skipped, as the specification asks.
pub fn event_verified(
    key: &EventsKey,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), EventRejection> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(EventRejection::MissingHeader);
    };
    let seconds = timestamp.trim().parse::<u64>().map_err(|_| EventRejection::BadTimestamp)?;
    if seconds.abs_diff(now) > TIMESTAMP_TOLERANCE_SECS {
        return Err(EventRejection::TooOld);
    }
    let expected = event_signature(key, id, seconds, body);
    // Compare every candidate, not just until the first match, so that the time taken
    // does not tell which position matched.
    let matched = signatures
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .fold(false, |found, candidate| constant_time_eq(candidate, &expected) | found);
    if matched { Ok(()) } else { Err(EventRejection::Mismatch) }
}

// ----- handlers ----------------------------------------------------------------------

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// At most [`MAX_CELL_CHARS`] characters of `text`, with an ellipsis when cut.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_CELL_CHARS).collect();
    if text.chars().nth(MAX_CELL_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A string field at `path`, clipped.
fn text_at(value: &Value, path: &[&str]) -> Option<String> {
    path.iter().try_fold(value, |v, key| v.get(key)).and_then(Value::as_str).map(clip)
}

/// The first entry and its first messaging (or standby) event of a delivery, and a
/// line about what it holds otherwise.
fn read_delivery(body: &[u8], verified: bool) -> ForwardedDelivery {
    let mut row = ForwardedDelivery {
        received_at: unix_now(),
        page_id: None,
        sender: None,
        text: None,
        mid: None,
        summary: String::new(),
        delivery: None,
        attempt: None,
        verified,
    };
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        row.summary = "not JSON".into();
        return row;
    };
    let entries = json.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let object = json.get("object").and_then(Value::as_str).unwrap_or("?");
    let Some(entry) = entries.first() else {
        row.summary = clip(&format!("object {object}, no entries"));
        return row;
    };
    row.page_id = text_at(entry, &["id"]);
    let event = ["messaging", "standby"]
        .iter()
        .find_map(|key| entry.get(key).and_then(Value::as_array).and_then(|events| events.first()));
    let mut parts = Vec::new();
    if let Some(event) = event {
        row.sender = text_at(event, &["sender", "id"]);
        row.text = text_at(event, &["message", "text"]);
        row.mid = text_at(event, &["message", "mid"]);
        if row.text.is_none() {
            let kinds: Vec<&str> = event
                .as_object()
                .map(|o| {
                    o.keys().map(String::as_str).filter(|k| !["sender", "recipient", "timestamp"].contains(k)).collect()
                })
                .unwrap_or_default();
            parts.push(format!("messaging: {}", kinds.join(", ")));
        }
    }
    let changed: Vec<String> = entry
        .get("changes")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(|c| c.get("field").and_then(Value::as_str).map(str::to_owned)).collect())
        .or_else(|| {
            entry
                .get("changed_fields")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        })
        .unwrap_or_default();
    if !changed.is_empty() {
        parts.push(format!("Page change: {}", changed.join(", ")));
    }
    if entries.len() > 1 {
        parts.push(format!("{} entries", entries.len()));
    }
    row.summary = clip(&parts.join("; "));
    row
}

/// `POST /webhook`: a delivery relayed by pagesync.
async fn webhook(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let headers = req.headers();
    let verified = delivery_verified(&shared.config.app_secret, header_text(headers, "x-hub-signature-256"), &body);
    let mut row = read_delivery(&body, verified);
    row.delivery = header_text(headers, "x-pagesync-delivery").map(clip);
    row.attempt = header_text(headers, "x-pagesync-attempt").map(clip);
    tracing::info!(
        verified,
        delivery = row.delivery.as_deref().unwrap_or(""),
        page = row.page_id.as_deref().unwrap_or(""),
        "demo bot: delivery relayed"
    );
    let mut log = shared.lock();
    log.forwarded.push_back(row);
    while log.forwarded.len() > KEPT {
        log.forwarded.pop_front();
    }
    drop(log);
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

/// `POST /events`: a pagesync event.
async fn events(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let headers = req.headers();
    let verified = event_verified(
        &shared.config.events_key,
        header_text(headers, "webhook-id"),
        header_text(headers, "webhook-timestamp"),
        header_text(headers, "webhook-signature"),
        &body,
        unix_now(),
    );
    let json = serde_json::from_slice::<Value>(&body).ok();
    let row = ReceivedEvent {
        received_at: unix_now(),
        id: header_text(headers, "webhook-id").map(clip),
        kind: json.as_ref().and_then(|j| text_at(j, &["type"])),
        data: json.as_ref().and_then(|j| j.get("data")).map(|d| clip(&d.to_string())),
        verified,
    };
    tracing::info!(verified = verified.is_ok(), kind = row.kind.as_deref().unwrap_or(""), "demo bot: event received");
    let mut log = shared.lock();
    log.events.push_back(row);
    while log.events.len() > KEPT {
        log.events.pop_front();
    }
    drop(log);
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

/// `HH:MM:SS` UTC.
fn clock(secs: u64) -> String {
    let (_, _, _, hour, minute, second) = pagesync_actors::civil_utc(secs);
    format!("{hour:02}:{minute:02}:{second:02}")
}

/// `—` for a value the request did not carry.
fn or_dash(value: Option<&str>) -> String {
    value.map(escape).unwrap_or_else(|| "—".to_owned())
}

fn verdict(verified: Result<(), String>) -> String {
    match verified {
        Ok(()) => "<td class=\"verified\">verified</td>".to_owned(),
        Err(why) => format!("<td class=\"not-verified\">NOT verified ({})</td>", escape(&why)),
    }
}

/// Colours for the verdicts, and long ids wrapped so that the verdict column stays in
/// view (the page's own style is the crate's plain `html_page`).
const STYLE: &str = "<style>.verified{color:#1a7f37;font-weight:600}.not-verified{color:#cf222e;\
    font-weight:600}.ids{font-size:.8rem;color:#57606a;word-break:break-all}td code{word-break:break-all}</style>";

/// `GET /`: what the bot received, newest first.
async fn page(shared: web::Data<Shared>) -> HttpResponse {
    let (forwarded, events) = {
        let log = shared.lock();
        (log.forwarded.clone(), log.events.clone())
    };
    let mut body = String::from(STYLE);
    body.push_str(
        "<h1>Demo bot</h1><p>This is the bot's side of the sandbox: pagesync relays every Meta delivery to \
         <code>/webhook</code> here (same bytes, same <code>X-Hub-Signature-256</code>, checked with the app \
         secret) and sends its own events to <code>/events</code> (Standard Webhooks, checked with the events \
         secret). Send a customer message from the emulator, or rename a Page, then \
         <a id=\"refresh\" href=\"/\">refresh</a>.</p>",
    );
    body.push_str(&format!(
        "<h2>Forwarded Meta deliveries ({})</h2><table id=\"forwarded\"><tr><th>signature</th><th>received \
         (UTC)</th><th>Page</th><th>customer</th><th>text</th><th>mid, X-Pagesync-Delivery, attempt</th></tr>",
        forwarded.len()
    ));
    for row in forwarded.iter().rev() {
        let text = match (&row.text, row.summary.is_empty()) {
            (Some(text), _) => escape(text),
            (None, false) => format!("<em>{}</em>", escape(&row.summary)),
            (None, true) => "—".to_owned(),
        };
        body.push_str(&format!(
            "<tr class=\"forwarded\">{}<td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{text}</td>\
             <td class=\"ids\">{}<br>{}<br>attempt {}</td></tr>",
            verdict(if row.verified { Ok(()) } else { Err("X-Hub-Signature-256 does not match".into()) }),
            clock(row.received_at),
            or_dash(row.page_id.as_deref()),
            or_dash(row.sender.as_deref()),
            or_dash(row.mid.as_deref()),
            or_dash(row.delivery.as_deref()),
            or_dash(row.attempt.as_deref()),
        ));
    }
    body.push_str("</table>");
    body.push_str(&format!(
        "<h2>pagesync events ({})</h2><table id=\"events\"><tr><th>signature</th><th>received (UTC)</th>\
         <th>type</th><th>data</th><th>webhook-id</th></tr>",
        events.len()
    ));
    for row in events.iter().rev() {
        body.push_str(&format!(
            "<tr class=\"event\">{}<td>{}</td><td class=\"type\">{}</td><td><code>{}</code></td>\
             <td class=\"ids\">{}</td></tr>",
            verdict(row.verified.map_err(|e| e.to_string())),
            clock(row.received_at),
            or_dash(row.kind.as_deref()),
            or_dash(row.data.as_deref()),
            or_dash(row.id.as_deref()),
        ));
    }
    body.push_str("</table>");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html_page("Demo bot: what pagesync sent", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_614_265_330;

    fn key() -> EventsKey {
        // The Standard Webhooks specification's published example.
        EventsKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn a_good_event_signature_verifies() {
        let ts = NOW.to_string();
        assert_eq!(event_verified(&key(), Some(ID), Some(&ts), Some(SIGNATURE), BODY, NOW), Ok(()));
        // Among others, and with other versions in the list.
        let list = format!("v1,bm90IGl0 v1a,whatever {SIGNATURE}");
        assert_eq!(event_verified(&key(), Some(ID), Some(&ts), Some(&list), BODY, NOW + 299), Ok(()));
    }

    #[test]
    fn a_tampered_event_body_id_or_signature_does_not_verify() {
        let ts = NOW.to_string();
        let check =
            |id: &str, sig: &str, body: &[u8]| event_verified(&key(), Some(id), Some(&ts), Some(sig), body, NOW);
        assert_eq!(check(ID, SIGNATURE, br#"{"test": 2432232315}"#), Err(EventRejection::Mismatch));
        assert_eq!(check("msg_other", SIGNATURE, BODY), Err(EventRejection::Mismatch));
        assert_eq!(check(ID, "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", BODY), Err(EventRejection::Mismatch));
        assert_eq!(check(ID, "", BODY), Err(EventRejection::Mismatch));
        let other_key = EventsKey::parse(&format!("whsec_{}", "A".repeat(32))).unwrap();
        assert_eq!(
            event_verified(&other_key, Some(ID), Some(&ts), Some(SIGNATURE), BODY, NOW),
            Err(EventRejection::Mismatch)
        );
    }

    #[test]
    fn an_old_or_future_or_garbled_timestamp_does_not_verify() {
        let check = |ts: &str, now: u64| event_verified(&key(), Some(ID), Some(ts), Some(SIGNATURE), BODY, now);
        // The signature is right for NOW; replayed six minutes later it is refused.
        assert_eq!(check(&NOW.to_string(), NOW + 301), Err(EventRejection::TooOld));
        assert_eq!(check(&NOW.to_string(), NOW - 301), Err(EventRejection::TooOld));
        assert_eq!(check("-1", NOW), Err(EventRejection::BadTimestamp));
        assert_eq!(check("99999999999999999999999", NOW), Err(EventRejection::BadTimestamp));
        assert_eq!(check("soon", NOW), Err(EventRejection::BadTimestamp));
        assert_eq!(
            event_verified(&key(), Some(ID), None, Some(SIGNATURE), BODY, NOW),
            Err(EventRejection::MissingHeader)
        );
    }

    #[test]
    fn a_relayed_delivery_verifies_only_with_the_right_sha256_signature() {
        let secret = Secret::new("app-secret");
        let body = br#"{"object":"page","entry":[{"id":"1","time":1,"messaging":[]}]}"#;
        let good = sign_sha256("app-secret", body);
        assert!(delivery_verified(&secret, Some(&good), body));
        assert!(!delivery_verified(&secret, Some(&good), br#"{"object":"page","entry":[]}"#));
        assert!(!delivery_verified(&secret, Some(&sign_sha256("other", body)), body));
        assert!(!delivery_verified(&secret, Some(&good.to_uppercase()), body));
        assert!(!delivery_verified(&secret, None, body));
    }

    #[test]
    fn a_message_delivery_is_read_and_anything_else_is_summarised_without_panicking() {
        let body = br#"{"object":"page","entry":[{"id":"42","time":1,"messaging":[{"sender":{"id":"7"},
            "recipient":{"id":"42"},"timestamp":1,"message":{"mid":"m_1","text":"Caf\u00e9 \/ <b>"}}]}]}"#;
        let row = read_delivery(body, true);
        assert_eq!(row.page_id.as_deref(), Some("42"));
        assert_eq!(row.sender.as_deref(), Some("7"));
        assert_eq!(row.text.as_deref(), Some("Café / <b>"));
        assert_eq!(row.mid.as_deref(), Some("m_1"));

        let row = read_delivery(br#"{"object":"page","entry":[{"id":"42","changes":[{"field":"name"}]}]}"#, true);
        assert_eq!(row.summary, "Page change: name");
        for hostile in
            [&b"not json"[..], b"[]", b"{\"entry\":7}", b"{\"entry\":[7]}", b"{\"entry\":[{\"messaging\":[1]}]}"]
        {
            let _ = read_delivery(hostile, false);
        }
        let long = format!(r#"{{"entry":[{{"id":"{}"}}]}}"#, "9".repeat(5000));
        let row = read_delivery(long.as_bytes(), false);
        assert_eq!(row.page_id.map(|p| p.chars().count()), Some(MAX_CELL_CHARS + 1));
    }
}
