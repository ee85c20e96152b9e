//! Reading a Page and checking its token: the [`PageSource`] the page writer and the
//! poller use.

use futures_util::future::BoxFuture;
use pagesync_actors::{FetchError, PageData, PageId, PageSource, Secret, TokenCheck};
use reqwest::Method;

use super::GraphClient;

impl GraphClient {
    /// `GET /{page-id}?fields=...` with the Page token.
    pub async fn page(&self, page: &PageId, token: &Secret) -> Result<PageData, FetchError> {
        let url = format!("{}/{}", self.inner.base, page);
        let query = vec![("fields".to_owned(), self.inner.page_fields.clone())];
        Ok(self.call("page", Method::GET, &url, query, Some(token), Some(page)).await?.0)
    }
    /// `GET /debug_token` with the app token (docs/platform.md, "Login"): is this Page token still
    /// good, for our app and for this Page? `expires_at: 0` means it does not expire.
    pub async fn debug_token(&self, page: &PageId, token: &Secret) -> Result<TokenCheck, FetchError> {
        let i = &self.inner;
        let url = format!("{}/debug_token", i.base);
        let query = vec![
            ("input_token".to_owned(), token.expose().to_owned()),
            ("access_token".to_owned(), format!("{}|{}", i.app_id, i.app_secret.expose())),
        ];
        let (body, _) = self.call("debug_token", Method::GET, &url, query, None, None).await?;
        let data = body
            .get("data")
            .and_then(|d| d.as_object())
            .ok_or_else(|| FetchError::Permanent { code: None, detail: "/debug_token answered without data".into() })?;
        Ok(judge_token(data, &i.app_id, page, crate::clock::unix_now()))
    }
}

/// Reads a `/debug_token` answer's `data` for a Page token of `page`.
fn judge_token(data: &PageData, app_id: &str, page: &PageId, now: u64) -> TokenCheck {
    let text = |key: &str| data.get(key).and_then(|v| v.as_str());
    if data.get("is_valid").and_then(|v| v.as_bool()) != Some(true) {
        return TokenCheck::Invalid("Meta reports the Page token is no longer valid (debug_token)".into());
    }
    if text("app_id").is_some_and(|id| id != app_id) {
        return TokenCheck::Invalid("the stored token belongs to another app (debug_token)".into());
    }
    // Compared as floats so that any number (negative, fractional, past u64) or a
    // number in a string is judged without a cast that could wrap; 0 means "never".
    let expires = data.get("expires_at").and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    });
    if let Some(expires) = expires
        && expires != 0.0
        && expires <= now as f64
    {
        return TokenCheck::Invalid("the Page token has expired (debug_token)".into());
    }
    if text("profile_id").is_some_and(|id| id != page.as_str()) {
        return TokenCheck::Invalid("the stored token is for another Page (debug_token)".into());
    }
    TokenCheck::Valid
}
impl PageSource for GraphClient {
    fn fetch_page(&self, page: &PageId, token: &Secret) -> BoxFuture<'static, Result<PageData, FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move { client.page(&page, &token).await })
    }

    fn check_token(&self, page: &PageId, token: &Secret) -> BoxFuture<'static, Result<TokenCheck, FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move { client.debug_token(&page, &token).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_data(value: serde_json::Value) -> PageData {
        value.as_object().cloned().unwrap()
    }
    #[test]
    fn debug_token_answers_are_judged_for_validity_app_expiry_and_page() {
        let page = PageId::parse("555").unwrap();
        let judge = |v| judge_token(&token_data(v), "42", &page, 1_000);
        let good = serde_json::json!({"is_valid": true, "app_id": "42", "expires_at": 0, "profile_id": "555"});
        assert_eq!(judge(good), TokenCheck::Valid);
        assert_eq!(
            judge(serde_json::json!({"is_valid": true, "app_id": "42", "expires_at": 2_000})),
            TokenCheck::Valid
        );
        for bad in [
            serde_json::json!({"is_valid": false, "app_id": "42"}),
            serde_json::json!({"app_id": "42"}),
            serde_json::json!({"is_valid": true, "app_id": "43"}),
            serde_json::json!({"is_valid": true, "app_id": "42", "expires_at": 999}),
            serde_json::json!({"is_valid": true, "app_id": "42", "profile_id": "556"}),
        ] {
            assert!(matches!(judge(bad.clone()), TokenCheck::Invalid(_)), "{bad}");
        }
    }
    #[test]
    fn debug_token_expiry_numbers_never_panic() {
        let page = PageId::parse("555").unwrap();
        for n in crate::clients::hostile_numbers() {
            let text = format!(
                r#"{{"is_valid":true,"app_id":"42","profile_id":"555","expires_at":{n},"data_access_expires_at":{n}}}"#
            );
            let Ok(data) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            for now in [0, 1, 1_767_225_600, u64::MAX] {
                let _ = judge_token(&token_data(data.clone()), "42", &page, now);
            }
        }
        // An expiry in the past, whatever its type, is an expired token.
        for past in ["-5", "999", "999.5", r#""999""#] {
            let data: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"is_valid":true,"app_id":"42","expires_at":{past}}}"#)).unwrap();
            assert!(matches!(judge_token(&token_data(data), "42", &page, 1_000), TokenCheck::Invalid(_)), "{past}");
        }
    }
}
