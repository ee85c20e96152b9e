//! The Facebook Login calls: code -> short-lived user token -> long-lived user token,
//! who connected (`/me`), and the Pages they manage with their Page tokens
//! (`/me/accounts`).

use pagesync_actors::{FacebookUserId, FetchError, PageData, PageId, Secret};
use reqwest::Method;
use serde::Deserialize;

use super::GraphClient;

impl GraphClient {
    /// Code from the Login dialog -> short-lived user token (docs/platform.md, "Login").
    pub async fn exchange_code(&self, code: &str) -> Result<Secret, FetchError> {
        let url = format!("{}/oauth/access_token", self.inner.base);
        let query = vec![
            ("client_id".to_owned(), self.inner.app_id.clone()),
            ("redirect_uri".to_owned(), self.inner.redirect_uri.clone()),
            ("client_secret".to_owned(), self.inner.app_secret.expose().to_owned()),
            ("code".to_owned(), code.to_owned()),
        ];
        let (body, _) = self.call("oauth_code", Method::GET, &url, query, None, None).await?;
        access_token(&body)
    }
    /// Short-lived -> long-lived user token (docs/platform.md, "Login").
    pub async fn long_lived(&self, short: &Secret) -> Result<Secret, FetchError> {
        let url = format!("{}/oauth/access_token", self.inner.base);
        let query = vec![
            ("grant_type".to_owned(), "fb_exchange_token".to_owned()),
            ("client_id".to_owned(), self.inner.app_id.clone()),
            ("client_secret".to_owned(), self.inner.app_secret.expose().to_owned()),
            ("fb_exchange_token".to_owned(), short.expose().to_owned()),
        ];
        let (body, _) = self.call("oauth_long_lived", Method::GET, &url, query, None, None).await?;
        access_token(&body)
    }
    /// `GET /me?fields=id,name` with a user token: who connected.
    pub async fn me(&self, user_token: &Secret) -> Result<FacebookUser, FetchError> {
        let url = format!("{}/me", self.inner.base);
        let query = vec![("fields".to_owned(), "id,name".to_owned())];
        let (body, _) = self.call("me", Method::GET, &url, query, Some(user_token), None).await?;
        let id =
            body.get("id").and_then(|v| v.as_str()).and_then(|s| FacebookUserId::parse(s).ok()).ok_or_else(|| {
                FetchError::Permanent { code: None, detail: "/me answered without a valid id".into() }
            })?;
        let name = body.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        Ok(FacebookUser { id, name })
    }
    /// Every Page of `/me/accounts`, following cursor paging (docs/platform.md, "Login"). A `next`
    /// link that leaves the configured Graph origin is not followed.
    pub async fn accounts(&self, user_token: &Secret) -> Result<Vec<AccountPage>, FetchError> {
        const MAX_PAGES: usize = 100;
        let mut url = format!("{}/me/accounts", self.inner.base);
        let mut query = vec![
            ("fields".to_owned(), "id,name,category,access_token,tasks".to_owned()),
            ("limit".to_owned(), "100".to_owned()),
        ];
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let (body, _) = self.call("me_accounts", Method::GET, &url, query, Some(user_token), None).await?;
            let listed: Accounts = serde_json::from_value(serde_json::Value::Object(body)).map_err(|e| {
                FetchError::Permanent { code: None, detail: format!("unexpected /me/accounts answer: {e}") }
            })?;
            for entry in listed.data {
                match (PageId::parse(&entry.id), entry.access_token) {
                    (Ok(id), Some(token)) => out.push(AccountPage {
                        id,
                        name: entry.name.unwrap_or_default(),
                        category: entry.category.unwrap_or_default(),
                        token: Secret::new(token),
                    }),
                    _ => tracing::warn!("skipping a /me/accounts entry without a valid id or token"),
                }
            }
            let Some(next) = listed.paging.and_then(|p| p.next) else { return Ok(out) };
            let Some((next_url, next_query)) = self.same_origin(&next) else {
                return Err(FetchError::Permanent { code: None, detail: "paging.next leaves the Graph API".into() });
            };
            url = next_url;
            query = next_query;
        }
        Err(FetchError::Permanent { code: None, detail: format!("more than {MAX_PAGES} pages of /me/accounts") })
    }
    /// Splits a `paging.next` URL into its base and query, if it points at the
    /// configured Graph origin. The token and proof in it are replaced by fresh ones.
    fn same_origin(&self, next: &str) -> Option<(String, Vec<(String, String)>)> {
        let parsed = reqwest::Url::parse(next).ok()?;
        let ours = reqwest::Url::parse(&self.inner.graph_url).ok()?;
        if parsed.scheme() != ours.scheme() || parsed.host() != ours.host() || parsed.port() != ours.port() {
            return None;
        }
        let query = parsed
            .query_pairs()
            .filter(|(k, _)| !matches!(k.as_ref(), "access_token" | "appsecret_proof" | "appsecret_time"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut base = parsed;
        base.set_query(None);
        Some((base.to_string(), query))
    }
}

/// Who connected, from `/me`.
#[derive(Debug, Clone)]
pub struct FacebookUser {
    pub id: FacebookUserId,
    pub name: String,
}
/// One Page of `/me/accounts`.
#[derive(Debug, Clone)]
pub struct AccountPage {
    pub id: PageId,
    pub name: String,
    pub category: String,
    pub token: Secret,
}
#[derive(Deserialize)]
struct Accounts {
    #[serde(default)]
    data: Vec<AccountEntry>,
    #[serde(default)]
    paging: Option<Paging>,
}
#[derive(Deserialize)]
struct AccountEntry {
    id: String,
    name: Option<String>,
    category: Option<String>,
    access_token: Option<String>,
}
#[derive(Deserialize)]
struct Paging {
    next: Option<String>,
}
fn access_token(body: &PageData) -> Result<Secret, FetchError> {
    body.get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| FetchError::Permanent { code: None, detail: "token answer without access_token".into() })
}
