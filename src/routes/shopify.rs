//! Shopify: the app install (OAuth authorization code grant) that identifies a merchant
//! and opens a session, and Shopify's webhooks (compliance topics, uninstall).
//!
//! `GET /shopify/login?shop=` -> 302 to the shop's authorize page with a single-use
//! `state` bound to the shop. `GET /shopify/callback` checks, in order: the query
//! `hmac` (401), the shop, the timestamp (within 90 s) and the state (400); then
//! exchanges the code, seals the token, and opens a session.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use pagesync_actors::ShopDomain;
use pagesync_actors::messages::{ForgetOwner, ForgetShopToken, StoreShopToken};
use pagesync_actors::session::{ConsumeShopifyState, ForgetShop, IssueShopifyState, OpenSession, RegisterShop};
use pagesync_actors::subscription::ForgetSubscriptions;

use super::{AppState, ask, escape, html_page, session_cookie_header, unix_now, wants_html};
use crate::clients::shopify::ShopifyError;
use crate::error::ApiError;
use crate::verify::{verify_shopify_query, verify_shopify_webhook};

/// How far Shopify's `timestamp` may be from our clock.
const TIMESTAMP_TOLERANCE_SECS: u64 = 90;

fn parse_shop(raw: Option<&String>) -> Result<ShopDomain, ApiError> {
    raw.and_then(|s| ShopDomain::parse(s).ok())
        .ok_or_else(|| ApiError::BadRequest("shop must be a name.myshopify.com domain".into()))
}

/// `GET /shopify/login?shop=SHOP`.
#[tracing::instrument(skip_all)]
pub async fn login(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    login_inner(&req, &state).await.unwrap_or_else(|e| e.render(wants_html(&req)))
}

async fn login_inner(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::BadRequest("malformed query".into()))?;
    let shop = parse_shop(query.get("shop"))?;
    let nonce = ask(&state.actors.sessions, IssueShopifyState { shop: shop.clone() })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let settings = &state.settings.shopify;
    let params = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &settings.api_key)
        .append_pair("scope", &settings.scopes)
        .append_pair("redirect_uri", &settings.redirect_uri)
        .append_pair("state", &nonce)
        .finish();
    let location = format!("{}/admin/oauth/authorize?{params}", state.shopify.admin_base(&shop));
    tracing::info!(shop = %shop, "Shopify install started");
    Ok(HttpResponse::Found().insert_header((header::LOCATION, location)).finish())
}

/// `GET /shopify/callback?code&hmac&shop&state&timestamp[&host]`.
#[tracing::instrument(skip_all)]
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    callback_inner(&req, &state).await.unwrap_or_else(|e| e.render(wants_html(&req)))
}

async fn callback_inner(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(req.query_string().as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let verified = verify_shopify_query(&state.settings.shopify.api_secret, pairs).map_err(|e| {
        tracing::warn!(error = %e, "Shopify callback refused");
        ApiError::Unauthorized("invalid hmac")
    })?;
    let params: HashMap<String, String> = verified.into_inner().into_iter().collect();
    let shop = parse_shop(params.get("shop"))?;
    let timestamp = params
        .get("timestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| ApiError::BadRequest("timestamp missing or malformed".into()))?;
    if unix_now().abs_diff(timestamp) > TIMESTAMP_TOLERANCE_SECS {
        return Err(ApiError::BadRequest("the request is too old; please install again".into()));
    }
    let nonce = params.get("state").ok_or_else(|| ApiError::BadRequest("state missing".into()))?;
    ask(&state.actors.sessions, ConsumeShopifyState { shop: shop.clone(), state: nonce.clone() }).await?.map_err(
        |e| {
            tracing::warn!(shop = %shop, error = %e, "Shopify state refused");
            ApiError::BadRequest("invalid or expired state; please install again".into())
        },
    )?;
    let code =
        params.get("code").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::BadRequest("code missing".into()))?;

    let token = state.shopify.exchange_code(&shop, code).await.map_err(|e| match e {
        ShopifyError::Refused(status) => {
            tracing::warn!(shop = %shop, status, "Shopify refused the code");
            ApiError::BadRequest("Shopify refused the authorization; please install the app again".into())
        }
        ShopifyError::Unavailable(detail) => {
            tracing::warn!(shop = %shop, error = %detail, "Shopify token exchange failed");
            ApiError::BadGateway("Shopify could not be reached; please try again".into())
        }
    })?;
    let user = ask(&state.actors.sessions, RegisterShop { shop: shop.clone() })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    ask(&state.actors.vault, StoreShopToken { shop: shop.clone(), token })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let session = ask(&state.actors.sessions, OpenSession { user: user.clone(), shop: shop.clone() })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    tracing::info!(shop = %shop, user = %user, "Shopify install completed");

    let secure = state.settings.shopify.redirect_uri.starts_with("https://");
    let cookie = session_cookie_header(&session, state.settings.session_ttl, secure);
    let mut response = HttpResponse::Ok();
    response.insert_header((header::SET_COOKIE, cookie));
    if wants_html(req) {
        let body = html_page(
            "pagesync: installed",
            &format!(
                "<h1>pagesync is installed on {}</h1><p>Next, connect the Facebook Pages your sales bot \
                 answers for.</p><p><a id=\"connect-facebook\" href=\"/facebook/login\">Connect Facebook</a></p>",
                escape(shop.as_str())
            ),
        );
        Ok(response.content_type("text/html; charset=utf-8").body(body))
    } else {
        Ok(response.json(serde_json::json!({ "user_uuid": user, "shop": shop })))
    }
}

/// `POST /shopify/webhooks`: compliance topics and `app/uninstalled`.
#[tracing::instrument(skip_all)]
pub async fn webhooks(req: HttpRequest, body: Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let header = req.headers().get("x-shopify-hmac-sha256").and_then(|v| v.to_str().ok());
    let verified = verify_shopify_webhook(&state.settings.shopify.api_secret, header, body).map_err(|e| {
        tracing::warn!(error = %e, "Shopify webhook refused");
        ApiError::Unauthorized("invalid hmac")
    })?;
    let topic = req.headers().get("x-shopify-topic").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    #[derive(serde::Deserialize)]
    struct Body {
        shop_domain: Option<String>,
    }
    let from_body = serde_json::from_slice::<Body>(verified.get()).ok().and_then(|b| b.shop_domain);
    let from_header = req.headers().get("x-shopify-shop-domain").and_then(|v| v.to_str().ok()).map(str::to_owned);
    match topic.as_str() {
        "customers/data_request" | "customers/redact" => {
            tracing::info!(topic, "compliance request acknowledged (pagesync keeps no customer data)");
            Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })))
        }
        "shop/redact" | "app/uninstalled" => {
            let shop = parse_shop(from_header.or(from_body).as_ref())?;
            let pages = remove_shop(&state, &shop, topic == "shop/redact").await?;
            tracing::info!(topic, shop = %shop, pages, "shop data removed");
            Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })))
        }
        other => {
            tracing::info!(topic = other, "Shopify webhook topic ignored");
            Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ignored" })))
        }
    }
}

/// Deletes a shop's tokens, sessions and Pages (tokens, subscription state, sync state,
/// files). With `erase` (shop/redact) the shop's UUID is forgotten too. Idempotent.
pub async fn remove_shop(state: &AppState, shop: &ShopDomain, erase: bool) -> Result<usize, ApiError> {
    let unexpected = |e: &dyn std::fmt::Display| ApiError::Unexpected(anyhow::anyhow!("{e}"));
    let user =
        ask(&state.actors.sessions, ForgetShop { shop: shop.clone(), erase }).await?.map_err(|e| unexpected(&e))?;
    ask(&state.actors.vault, ForgetShopToken { shop: shop.clone() }).await?.map_err(|e| unexpected(&e))?;
    let Some(user) = user else { return Ok(0) };
    let pages = ask(&state.actors.vault, ForgetOwner { owner: user }).await?.map_err(|e| unexpected(&e))?;
    let count = pages.len();
    ask(&state.actors.subscriptions, ForgetSubscriptions { pages: pages.clone() }).await?;
    ask(&state.actors.page_writer, pagesync_actors::messages::DeletePages { pages })
        .await?
        .map_err(|e| unexpected(&e))?;
    Ok(count)
}
