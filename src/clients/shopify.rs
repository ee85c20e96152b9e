//! Shopify's OAuth token exchange (PLATFORM §5.4).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_token_expires_in: Option<u64>,
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

fn to_token(answer: TokenAnswer) -> ShopToken {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    ShopToken {
        access_token: Secret::new(answer.access_token),
        scope: answer.scope,
        refresh_token: answer.refresh_token.map(Secret::new),
        expires_at: answer.expires_in.map(|s| now + s),
        refresh_expires_at: answer.refresh_token_expires_in.map(|s| now + s),
    }
}
