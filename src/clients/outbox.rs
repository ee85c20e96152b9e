//! Delivering the outbox over HTTP: relayed Meta deliveries to `PAGESYNC_FORWARD_URL`
//! and events to `PAGESYNC_EVENTS_URL`, signed the Standard Webhooks way.
//!
//! The OutboxActor decides what to send and when; this only makes one attempt and
//! says how it went. A 2xx ends an item; any other status, a refused connection or no
//! answer within 10 s is a failure, with the receiver's `Retry-After` (seconds) when
//! it gave one.

use std::time::Duration;

use crate::clock::unix_now;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use pagesync_actors::outbox::{ItemKind, OutboxSender, Outgoing, SendFailure};

use crate::config::{BotSettings, EventsKey};
use crate::verify::hmac_sha256;

/// How long one attempt may take, answer included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends outbox items with the shared HTTP client.
#[derive(Clone)]
pub struct HttpOutboxSender {
    http: reqwest::Client,
    forward_url: Option<String>,
    events: Option<(String, EventsKey)>,
}

impl HttpOutboxSender {
    pub fn new(bot: &BotSettings, http: reqwest::Client) -> Self {
        HttpOutboxSender {
            http,
            forward_url: bot.forward_url.clone(),
            events: bot.events.as_ref().map(|e| (e.url.clone(), e.key.clone())),
        }
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under the events key.
pub fn event_signature(key: &EventsKey, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(id.len() + 24 + body.len());
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.bytes(), &signed)))
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl OutboxSender for HttpOutboxSender {
    fn send(&self, item: Outgoing) -> BoxFuture<'static, Result<(), SendFailure>> {
        let failure = |detail: String| SendFailure { detail, retry_after: None };
        let request = match item.meta.kind {
            ItemKind::Forward => {
                let Some(url) = &self.forward_url else {
                    return Box::pin(async move { Err(failure("PAGESYNC_FORWARD_URL is not set".into())) });
                };
                let mut request = self.http.post(url);
                for (name, value) in &item.meta.headers {
                    request = request.header(name, value);
                }
                request
                    .header("X-Pagesync-Delivery", &item.meta.id)
                    .header("X-Pagesync-Attempt", item.attempt.to_string())
            }
            ItemKind::Event => {
                let Some((url, key)) = &self.events else {
                    return Box::pin(async move { Err(failure("PAGESYNC_EVENTS_URL is not set".into())) });
                };
                let timestamp = unix_now();
                self.http
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header("webhook-id", &item.meta.id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", event_signature(key, &item.meta.id, timestamp, &item.body))
            }
        };
        let request = request.timeout(ATTEMPT_TIMEOUT).body(item.body);
        Box::pin(async move {
            match request.send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(SendFailure {
                    detail: format!("HTTP {}", resp.status().as_u16()),
                    retry_after: retry_after(resp.headers()),
                }),
                // Without the URL: it may carry credentials the operator put there.
                Err(e) => Err(failure(e.without_url().to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_signatures_follow_the_standard_webhooks_test_vector() {
        // The published example of the Standard Webhooks specification.
        let key = EventsKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = event_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "99999999999999999999999".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
