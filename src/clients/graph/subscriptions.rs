//! Webhook subscriptions, at the app and at each Page: the [`SubscriptionApi`] the
//! subscription actor uses. Field lists are read strictly: an answer that does not
//! say which fields are subscribed is an error, never an empty list.

use futures_util::future::BoxFuture;
use pagesync_actors::{AppSubscriptionInfo, FetchError, PageData, PageId, Secret, SubscriptionApi};
use reqwest::Method;

use super::GraphClient;
use crate::verify::hmac_sha256;

impl SubscriptionApi for GraphClient {
    fn app_fingerprint(&self) -> String {
        // Keyed with the app secret: the verify token is part of it and must not be
        // guessable from what is stored.
        let i = &self.inner;
        let material = format!(
            "{}|{}|{}|{}|{}|{}",
            i.app_id,
            i.webhook_address,
            i.wanted_fields.join(","),
            i.verify_token.expose(),
            i.base,
            i.may_take_over
        );
        hex::encode(hmac_sha256(i.app_secret.expose().as_bytes(), material.as_bytes()))
    }

    fn wanted_fields(&self) -> Vec<String> {
        self.inner.wanted_fields.clone()
    }

    fn callback_url(&self) -> String {
        self.inner.webhook_address.clone()
    }

    fn may_take_over(&self) -> bool {
        self.inner.may_take_over
    }

    fn app_subscription(&self) -> BoxFuture<'static, Result<Option<AppSubscriptionInfo>, FetchError>> {
        let client = self.clone();
        Box::pin(async move {
            let i = &client.inner;
            let url = format!("{}/{}/subscriptions", i.base, i.app_id);
            let query = vec![("access_token".to_owned(), format!("{}|{}", i.app_id, i.app_secret.expose()))];
            let (body, _) = client.call("app_subscriptions_get", Method::GET, &url, query, None, None).await?;
            page_object_subscription(&body)
        })
    }

    fn subscribe_app(&self, fields: Vec<String>) -> BoxFuture<'static, Result<(), FetchError>> {
        let client = self.clone();
        Box::pin(async move {
            let i = &client.inner;
            let url = format!("{}/{}/subscriptions", i.base, i.app_id);
            let query = vec![
                ("object".to_owned(), "page".to_owned()),
                ("callback_url".to_owned(), i.webhook_address.clone()),
                ("fields".to_owned(), fields.join(",")),
                ("verify_token".to_owned(), i.verify_token.expose().to_owned()),
                ("include_values".to_owned(), "true".to_owned()),
                ("access_token".to_owned(), format!("{}|{}", i.app_id, i.app_secret.expose())),
            ];
            let (body, _) = client.call("app_subscriptions", Method::POST, &url, query, None, None).await?;
            success(&body)
        })
    }

    fn page_fields(
        &self,
        page: &PageId,
        token: &Secret,
    ) -> BoxFuture<'static, Result<Option<Vec<String>>, FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move {
            let url = format!("{}/{}/subscribed_apps", client.inner.base, page);
            let (body, _) =
                client.call("subscribed_apps_get", Method::GET, &url, Vec::new(), Some(&token), Some(&page)).await?;
            our_page_fields(&body, &client.inner.app_id)
        })
    }

    fn subscribe_page(
        &self,
        page: &PageId,
        token: &Secret,
        fields: Vec<String>,
    ) -> BoxFuture<'static, Result<(), FetchError>> {
        let client = self.clone();
        let page = page.clone();
        let token = token.clone();
        Box::pin(async move {
            let url = format!("{}/{}/subscribed_apps", client.inner.base, page);
            let query = vec![("subscribed_fields".to_owned(), fields.join(","))];
            let (body, _) =
                client.call("subscribed_apps_post", Method::POST, &url, query, Some(&token), Some(&page)).await?;
            success(&body)
        })
    }
}
/// An answer that does not say what it should. Never read as "no fields": posting
/// our fields over an unknown set could remove the bot's.
fn malformed(what: &str) -> FetchError {
    FetchError::Permanent { code: None, detail: format!("malformed Graph answer: {what}") }
}
/// A webhook field list as Meta renders it: names as strings or as `{"name": ...}`
/// objects (with a `version`), in either endpoint. Anything else, or a name that is
/// not a plain field name, makes the whole list malformed.
fn field_names(value: Option<&serde_json::Value>, what: &str) -> Result<Vec<String>, FetchError> {
    let items = value.and_then(|v| v.as_array()).ok_or_else(|| malformed(&format!("{what} is not a list")))?;
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let name = match item {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Object(o) => o.get("name").and_then(|n| n.as_str()),
            _ => None,
        };
        // Field names are short snake_case words; anything else is not one, and would
        // be posted back to Meta verbatim.
        let name = name
            .filter(|n| !n.is_empty() && n.len() <= 100)
            .filter(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            .ok_or_else(|| malformed(&format!("{what} holds something that is not a field name")))?;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
/// `GET /{page-id}/subscribed_apps`: our app's `subscribed_fields`, or `None` when our
/// app is not in `data` (not installed on the Page).
fn our_page_fields(body: &PageData, app_id: &str) -> Result<Option<Vec<String>>, FetchError> {
    let apps = body.get("data").and_then(|d| d.as_array()).ok_or_else(|| malformed("subscribed_apps without data"))?;
    let ours = apps.iter().find(|app| app.get("id").and_then(|v| v.as_str()) == Some(app_id));
    match ours {
        None => Ok(None),
        Some(app) => field_names(app.get("subscribed_fields"), "subscribed_apps' subscribed_fields").map(Some),
    }
}
/// `GET /{app-id}/subscriptions`: the `page` object's entry, if any.
fn page_object_subscription(body: &PageData) -> Result<Option<AppSubscriptionInfo>, FetchError> {
    let objects =
        body.get("data").and_then(|d| d.as_array()).ok_or_else(|| malformed("app subscriptions without data"))?;
    let Some(page) = objects.iter().find(|o| o.get("object").and_then(|v| v.as_str()) == Some("page")) else {
        return Ok(None);
    };
    let callback_url = match page.get("callback_url") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(url)) => Some(url.clone()).filter(|u| !u.is_empty()),
        Some(_) => return Err(malformed("the page subscription's callback_url is not a string")),
    };
    let fields = field_names(page.get("fields"), "the page subscription's fields")?;
    let active = match page.get("active") {
        None => true,
        Some(serde_json::Value::Bool(active)) => *active,
        Some(_) => return Err(malformed("the page subscription's active is not a boolean")),
    };
    Ok(Some(AppSubscriptionInfo { callback_url, fields, active }))
}
/// `{"success": true}` (the docs also show `"true"` as a string: both accepted).
fn success(body: &PageData) -> Result<(), FetchError> {
    match body.get("success") {
        Some(serde_json::Value::Bool(true)) => Ok(()),
        Some(serde_json::Value::String(s)) if s == "true" => Ok(()),
        _ => Err(FetchError::Permanent { code: None, detail: "Graph did not confirm success".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: serde_json::Value) -> PageData {
        value.as_object().cloned().unwrap()
    }
    #[test]
    fn page_fields_are_read_as_strings_or_name_objects() {
        let strings = body(serde_json::json!({"data": [
            {"id": "9", "subscribed_fields": ["feed"]},
            {"id": "42", "name": "pagesync", "subscribed_fields": ["messages", "name", "messages"]},
        ]}));
        assert_eq!(our_page_fields(&strings, "42").unwrap(), Some(vec!["messages".into(), "name".into()]));
        let objects = body(serde_json::json!({"data": [{"id": "42", "subscribed_fields": [
            {"name": "messages", "version": "v25.0"}, {"name": "messaging_postbacks"}]}]}));
        assert_eq!(
            our_page_fields(&objects, "42").unwrap(),
            Some(vec!["messages".into(), "messaging_postbacks".into()])
        );
        let mixed = body(serde_json::json!({"data": [{"id": "42", "subscribed_fields": ["feed", {"name": "name"}]}]}));
        assert_eq!(our_page_fields(&mixed, "42").unwrap(), Some(vec!["feed".into(), "name".into()]));
        assert_eq!(our_page_fields(&body(serde_json::json!({"data": []})), "42").unwrap(), None);
    }
    #[test]
    fn malformed_page_fields_are_errors_not_empty_lists() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"data": {"id": "42"}}),
            serde_json::json!({"data": [{"id": "42"}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": "messages"}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": [7]}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": [{"nom": "messages"}]}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": [""]}]}),
            serde_json::json!({"data": [{"id": "42", "subscribed_fields": ["messages,feed"]}]}),
        ] {
            assert!(matches!(our_page_fields(&body(bad.clone()), "42"), Err(FetchError::Permanent { .. })), "{bad}");
        }
    }
    #[test]
    fn the_app_page_subscription_is_read_in_both_forms() {
        let objects = body(serde_json::json!({"data": [
            {"object": "user", "callback_url": "https://x/", "fields": ["email"], "active": true},
            {"object": "page", "callback_url": "https://bot/", "fields": [{"name": "messages", "version": "v25.0"}],
             "active": false},
        ]}));
        assert_eq!(
            page_object_subscription(&objects).unwrap(),
            Some(AppSubscriptionInfo {
                callback_url: Some("https://bot/".into()),
                fields: vec!["messages".into()],
                active: false
            })
        );
        let strings = body(serde_json::json!({"data": [{"object": "page", "callback_url": "", "fields": ["name"]}]}));
        assert_eq!(
            page_object_subscription(&strings).unwrap(),
            Some(AppSubscriptionInfo { callback_url: None, fields: vec!["name".into()], active: true })
        );
        assert_eq!(page_object_subscription(&body(serde_json::json!({"data": []}))).unwrap(), None);
        for bad in [
            serde_json::json!({"data": "page"}),
            serde_json::json!({"data": [{"object": "page", "callback_url": "https://bot/"}]}),
            serde_json::json!({"data": [{"object": "page", "callback_url": 5, "fields": []}]}),
            serde_json::json!({"data": [{"object": "page", "fields": [], "active": "yes"}]}),
        ] {
            assert!(page_object_subscription(&body(bad.clone())).is_err(), "{bad}");
        }
    }
}
