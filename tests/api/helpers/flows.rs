//! The flows of docs/contract.md §4 as a browser, Shopify or Meta drives them: requests,
//! cookies, the Shopify install, the Facebook connect and the removal callbacks.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use pagesync::verify::{sign_sha1, sign_sha256};
use serde_json::{Value, json};

use super::sign::{shopify_query_hmac, shopify_webhook_hmac, signed_request, unix_now};
use super::spawn::{APP_SECRET, TestApp};
use pagesync::emulator::FbUser;

use super::sign::form_encode;

/// A shop domain no other test uses.
pub fn unique_shop() -> String {
    format!("shop-{}.myshopify.com", hex::encode(rand::random::<[u8; 5]>()))
}

/// The `Location` of a redirect, parsed.
pub fn location(resp: &reqwest::Response) -> reqwest::Url {
    let raw = resp.headers().get("location").expect("a Location header").to_str().expect("ASCII Location");
    reqwest::Url::parse(raw).expect("an absolute Location")
}

/// The query parameters of `url`, by name (the last one wins).
pub fn query_map(url: &reqwest::Url) -> HashMap<String, String> {
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The `Set-Cookie` header that sets `session_id`, if any.
pub fn session_set_cookie(resp: &reqwest::Response) -> Option<String> {
    set_cookie_header(resp, "session_id")
}

/// The value of `session_id` set by `resp`, if any.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    cookie_value(resp, "session_id")
}

/// The cookie `/shopify/login` binds the install to the browser with.
pub const SHOPIFY_STATE_COOKIE: &str = "shopify_state";

/// The `Set-Cookie` header of `resp` that sets cookie `name`, if any.
pub fn set_cookie_header(resp: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.trim_start().starts_with(&prefix))
        .map(str::to_owned)
}

/// The value `resp` sets for cookie `name`, if any.
pub fn cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    let header = set_cookie_header(resp, name)?;
    let pair = header.split(';').next()?.trim();
    pair.strip_prefix(&format!("{name}=")).map(str::to_owned)
}

/// The lowercase attributes of a `Set-Cookie` header (after the name=value pair).
pub fn cookie_attributes(header: &str) -> Vec<String> {
    header.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect()
}

/// What `/shopify/login` gave the browser.
#[derive(Debug, Clone)]
pub struct ShopifyLogin {
    /// The `state` of the authorize URL.
    pub state: String,
    /// The `shopify_state` cookie value.
    pub cookie: String,
}

/// A merchant after a successful Shopify install.
#[derive(Debug, Clone)]
pub struct Install {
    pub shop: String,
    pub user_uuid: String,
    /// The `session_id` cookie value.
    pub cookie: String,
}

/// What a successful Facebook connect answered.
#[derive(Debug, Clone)]
pub struct Connected {
    pub body: Value,
    /// The raw body text (for greps).
    pub text: String,
    /// The rotated `session_id`.
    pub cookie: String,
}

impl TestApp {
    /// POSTs `body` signed with both headers, as Meta does.
    pub async fn post_webhook(&self, body: &str) -> reqwest::Response {
        self.post_webhook_with(
            body,
            &[
                ("X-Hub-Signature-256", sign_sha256(APP_SECRET, body.as_bytes())),
                ("X-Hub-Signature", sign_sha1(APP_SECRET, body.as_bytes())),
            ],
        )
        .await
    }

    pub async fn post_webhook_with(&self, body: &str, headers: &[(&str, String)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/facebook/webhook", self.address))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        request.send().await.expect("webhook request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{}", self.address, path)).send().await.expect("GET request")
    }

    /// The value of a configuration variable the app was started with.
    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).map(String::as_str).unwrap_or_else(|| panic!("{name} is not configured"))
    }

    /// GET `path` with the `session_id` cookie (if any) and extra headers.
    pub async fn get_with(&self, path: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{}", self.address, path));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("session_id={cookie}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("GET request")
    }

    // ----- Shopify install ------------------------------------------------------

    /// `GET /shopify/login?shop=SHOP`.
    pub async fn shopify_login(&self, shop: &str) -> reqwest::Response {
        self.get_with(&format!("/shopify/login?shop={}", form_encode(shop)), None, &[]).await
    }

    /// What `/shopify/login` hands the browser for `shop` (asserts the 302): the
    /// `state` in the authorize URL and the `shopify_state` cookie set with it.
    pub async fn shopify_state(&self, shop: &str) -> ShopifyLogin {
        let resp = self.shopify_login(shop).await;
        assert_eq!(resp.status(), 302, "/shopify/login?shop={shop}");
        let cookie = cookie_value(&resp, SHOPIFY_STATE_COOKIE).expect("a shopify_state cookie with the 302");
        let state = query_map(&location(&resp)).remove("state").expect("a state in the authorize URL");
        ShopifyLogin { state, cookie }
    }

    /// The query Shopify's callback carries, signed with the app's Shopify secret.
    pub fn shopify_callback_query(&self, shop: &str, code: &str, state: &str, timestamp: u64) -> Vec<(String, String)> {
        let store = shop.trim_end_matches(".myshopify.com");
        let host = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("admin.shopify.com/store/{store}"));
        let mut params = vec![
            ("code".to_owned(), code.to_owned()),
            ("host".to_owned(), host),
            ("shop".to_owned(), shop.to_owned()),
            ("state".to_owned(), state.to_owned()),
            ("timestamp".to_owned(), timestamp.to_string()),
        ];
        let hmac = shopify_query_hmac(self.var("SHOPIFY_API_SECRET"), &params);
        params.push(("hmac".to_owned(), hmac));
        params
    }

    /// `GET /shopify/callback` with these query pairs and, like the browser that
    /// started the install, its `shopify_state` cookie (if any).
    pub async fn shopify_callback(&self, query: &[(String, String)], cookie: Option<&str>) -> reqwest::Response {
        self.shopify_callback_with(query, cookie, &[]).await
    }

    pub async fn shopify_callback_with(
        &self,
        query: &[(String, String)],
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.get(format!("{}/shopify/callback", self.address)).query(query);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("{SHOPIFY_STATE_COOKIE}={cookie}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("GET /shopify/callback")
    }

    /// Shopify's redirect back after the merchant approved the install of `shop`: a
    /// fresh code, `login`'s state and cookie, signed at `timestamp`.
    pub async fn shopify_return(&self, shop: &str, login: &ShopifyLogin, timestamp: u64) -> reqwest::Response {
        let code = self.graph.shopify_code(shop);
        self.shopify_callback(&self.shopify_callback_query(shop, &code, &login.state, timestamp), Some(&login.cookie))
            .await
    }

    /// The whole install: `/shopify/login`, then Shopify's signed callback with a fresh
    /// code; asserts the 200 and the cookie.
    pub async fn install_shop(&self, shop: &str) -> Install {
        let login = self.shopify_state(shop).await;
        let resp = self.shopify_return(shop, &login, unix_now()).await;
        let status = resp.status();
        let cookie = session_cookie(&resp);
        let text = resp.text().await.expect("callback body");
        assert_eq!(status, 200, "install of {shop}: {text}");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("install answer is not JSON ({e}): {text}"));
        assert_eq!(body["shop"], shop, "{body}");
        let user_uuid = body["user_uuid"].as_str().unwrap_or_else(|| panic!("no user_uuid in {body}")).to_owned();
        Install { shop: shop.to_owned(), user_uuid, cookie: cookie.expect("a session_id cookie") }
    }

    // ----- Facebook connect -----------------------------------------------------

    /// `GET /facebook/login` with the session cookie, if any.
    pub async fn facebook_login(&self, cookie: Option<&str>) -> reqwest::Response {
        self.get_with("/facebook/login", cookie, &[]).await
    }

    /// The `state` `/facebook/login` puts in the dialog URL (asserts the 302).
    pub async fn facebook_state(&self, cookie: &str) -> String {
        let resp = self.facebook_login(Some(cookie)).await;
        assert_eq!(resp.status(), 302, "/facebook/login with a live session");
        query_map(&location(&resp)).remove("state").expect("a state in the dialog URL")
    }

    /// `GET /facebook/callback` with these query pairs and the cookie, if any.
    pub async fn facebook_callback(&self, query: &[(&str, &str)], cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}/facebook/callback", self.address)).query(query);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("session_id={cookie}"));
        }
        request.send().await.expect("GET /facebook/callback")
    }

    /// The whole connect of `user` for the session `cookie`: login, the dialog's code,
    /// the callback; asserts the 200 and returns the answer and the rotated cookie.
    pub async fn connect_facebook(&self, cookie: &str, user: &FbUser) -> Connected {
        let state = self.facebook_state(cookie).await;
        let code = self.graph.new_code(user);
        let resp = self.facebook_callback(&[("code", &code), ("state", &state)], Some(cookie)).await;
        let status = resp.status();
        let new_cookie = session_cookie(&resp);
        let text = resp.text().await.expect("callback body");
        assert_eq!(status, 200, "connect of Facebook user {}: {text}", user.id);
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("connect answer is not JSON ({e}): {text}"));
        Connected { body, text, cookie: new_cookie.expect("a rotated session_id cookie") }
    }

    /// A merchant with a shop and a connected Facebook user owning `pages`.
    pub async fn merchant(&self, pages: &[(&str, &str)]) -> (Install, FbUser, Connected) {
        let install = self.install_shop(&unique_shop()).await;
        let user = self.graph.register_user(pages);
        let connected = self.connect_facebook(&install.cookie, &user).await;
        (install, user, connected)
    }

    // ----- Removal callbacks ----------------------------------------------------

    /// `POST /shopify/webhooks` signed with the app's Shopify secret.
    pub async fn post_shopify_webhook(&self, topic: &str, shop: &str, body: &str) -> reqwest::Response {
        let hmac = shopify_webhook_hmac(self.var("SHOPIFY_API_SECRET"), body.as_bytes());
        self.post_shopify_webhook_with(topic, shop, body, Some(&hmac)).await
    }

    /// `POST /shopify/webhooks` with this `X-Shopify-Hmac-Sha256` (or none).
    pub async fn post_shopify_webhook_with(
        &self,
        topic: &str,
        shop: &str,
        body: &str,
        hmac: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/shopify/webhooks", self.address))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Shop-Domain", shop)
            .header("X-Shopify-Webhook-Id", hex::encode(rand::random::<[u8; 8]>()))
            .header("X-Shopify-API-Version", "2026-04")
            .body(body.to_owned());
        if let Some(hmac) = hmac {
            request = request.header("X-Shopify-Hmac-Sha256", hmac);
        }
        request.send().await.expect("POST /shopify/webhooks")
    }

    /// `POST /shopify/webhooks` for `topic`, the body signed with the app's Shopify
    /// secret, with exactly these extra headers (no shop domain or webhook id unless
    /// given).
    pub async fn post_shopify_webhook_headers(
        &self,
        topic: &str,
        body: &str,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let hmac = shopify_webhook_hmac(self.var("SHOPIFY_API_SECRET"), body.as_bytes());
        let mut request = self
            .client
            .post(format!("{}/shopify/webhooks", self.address))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Hmac-Sha256", hmac)
            .body(body.to_owned());
        for (k, v) in headers {
            request = request.header(*k, v.as_str());
        }
        request.send().await.expect("POST /shopify/webhooks")
    }

    /// The body Shopify sends for `shop/redact` (and, near enough, `app/uninstalled`).
    pub fn shop_body(shop: &str) -> String {
        json!({"shop_id": 954_889, "shop_domain": shop, "id": 954_889, "domain": shop, "myshopify_domain": shop})
            .to_string()
    }

    /// POSTs `signed_request` (under the app secret) for `payload` as a form to `path`.
    pub async fn post_signed_request(&self, path: &str, payload: &Value) -> reqwest::Response {
        let signed = signed_request(self.var("FACEBOOK_APP_SECRET"), payload);
        self.post_form(path, &[("signed_request", &signed)]).await
    }

    /// POSTs an `application/x-www-form-urlencoded` body to `path`.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
        self.client
            .post(format!("{}{}", self.address, path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .expect("POST form")
    }

    /// Meta's payload for a user's signed request.
    pub fn user_payload(user: &FbUser) -> Value {
        json!({"algorithm": "HMAC-SHA256", "user_id": user.id, "issued_at": unix_now()})
    }

    /// The Page's folder below the data dir.
    pub fn page_dir(&self, page: &str) -> PathBuf {
        self.data_dir().join("facebook").join(page)
    }
}
