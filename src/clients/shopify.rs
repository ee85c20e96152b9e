//! Shopify's OAuth token exchange (docs/platform.md, "Shopify OAuth").

use std::time::Duration;

use crate::clock::unix_now;

use pagesync_actors::messages::ShopToken;
use pagesync_actors::{Secret, ShopDomain};
use serde::Deserialize;

use crate::config::ShopifySettings;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ShopifyError {
    /// Shopify answered 4xx: the code is unknown, used or expired.
    #[error("Shopify refused the authorization code (HTTP {0})")]
    Refused(u16),
    /// 5xx, timeouts, unreadable answers: try later.
    #[error("Shopify is unavailable: {0}")]
    Unavailable(String),
}

/// Longest token lifetime believed from an `expires_in`: Shopify's expiring offline
/// tokens last an hour and their refresh tokens 90 days; anything past ten years is a
/// broken answer, and a bounded expiry keeps every later `expires_at + x` far from
/// overflowing.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

#[derive(Clone)]
pub struct ShopifyClient {
    http: reqwest::Client,
    settings: ShopifySettings,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    scope: String,
    /// Seconds; kept as raw JSON and read leniently by [`to_token`], so that an odd
    /// number never costs the merchant the install.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_token_expires_in: Option<serde_json::Value>,
}

impl ShopifyClient {
    pub fn new(settings: &ShopifySettings, http: reqwest::Client) -> Self {
        ShopifyClient { http, settings: settings.clone() }
    }

    /// `SHOPIFY_ADMIN_URL` with `{shop}` replaced.
    pub fn admin_base(&self, shop: &ShopDomain) -> String {
        self.settings.admin_url.replace("{shop}", shop.as_str())
    }

    /// `POST {admin}/admin/oauth/access_token`; transient failures are retried twice.
    pub async fn exchange_code(&self, shop: &ShopDomain, code: &str) -> Result<ShopToken, ShopifyError> {
        let url = format!("{}/admin/oauth/access_token", self.admin_base(shop));
        let form = [
            ("client_id", self.settings.api_key.as_str()),
            ("client_secret", self.settings.api_secret.expose()),
            ("code", code),
        ];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self.http.post(&url).header("Accept", "application/json").form(&form).send().await;
            let failure = match sent {
                Ok(resp) if resp.status().is_success() => {
                    let answer: TokenAnswer = resp.json().await.map_err(|e| {
                        ShopifyError::Unavailable(format!("unreadable token answer: {}", e.without_url()))
                    })?;
                    return Ok(to_token(answer));
                }
                Ok(resp) if resp.status().is_client_error() => {
                    return Err(ShopifyError::Refused(resp.status().as_u16()));
                }
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(e) => e.without_url().to_string(),
            };
            if attempt >= 3 {
                return Err(ShopifyError::Unavailable(failure));
            }
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
    }
}

/// The stored form of a token answer. A lifetime is read leniently (negative: already
/// expired; not a number: no expiry known) and capped at [`MAX_TOKEN_LIFETIME`], so
/// `now + lifetime` cannot overflow.
fn to_token(answer: TokenAnswer) -> ShopToken {
    let now = unix_now();
    let expiry = |lifetime: Option<serde_json::Value>| {
        lifetime.as_ref().and_then(super::whole_number).map(|s| now.saturating_add(s.min(MAX_TOKEN_LIFETIME.as_secs())))
    };
    ShopToken {
        access_token: Secret::new(answer.access_token),
        scope: answer.scope,
        refresh_token: answer.refresh_token.map(Secret::new),
        expires_at: expiry(answer.expires_in),
        refresh_expires_at: expiry(answer.refresh_token_expires_in),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(expires: &str) -> Result<TokenAnswer, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"access_token":"shpat_x","scope":"read_products","expires_in":{expires},"refresh_token":"shprt_x","refresh_token_expires_in":{expires}}}"#
        ))
    }

    #[test]
    fn token_lifetimes_from_shopify_never_panic_and_stay_bounded() {
        let values = crate::clients::hostile_numbers();
        for value in values {
            let before = unix_now();
            // A strange lifetime never costs the merchant the install: the token is kept.
            let token = to_token(answer(&value).unwrap_or_else(|e| panic!("{value}: {e}")));
            let after = unix_now();
            for at in [token.expires_at, token.refresh_expires_at].into_iter().flatten() {
                assert!(at >= before, "{value}: {at}");
                assert!(at <= after.saturating_add(MAX_TOKEN_LIFETIME.as_secs()), "{value}: {at}");
            }
        }
        let token = to_token(answer("3600").unwrap());
        let expires = token.expires_at.unwrap();
        assert!((unix_now() + 3599..=unix_now() + 3600).contains(&expires));
        assert_eq!(to_token(answer("null").unwrap()).expires_at, None);
    }
}
