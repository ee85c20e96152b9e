//! Shopify: the app install (OAuth authorization code grant) that identifies a merchant
//! and opens a session, and Shopify's webhooks (compliance topics, uninstall).
//!
//! `GET /shopify/login?shop=` -> 302 to the shop's authorize page with a signed `state`
//! bound to the shop, and the state's nonce in an HttpOnly `shopify_state` cookie that
//! binds the install to this browser. Nothing is stored: unauthenticated requests cannot
//! grow the database. `GET /shopify/callback` checks, in order: the query `hmac` (401),
//! the shop, the timestamp (within 90 s) and the state (400: signature, expiry, shop,
//! the cookie, unused); only then is the state remembered as used, so only requests that
//! Shopify signed can write. Then it exchanges the code, seals the token, records the
//! install time and opens a session.
//!
//! `POST /shopify/webhooks` takes the shop from the signed body only (the headers are
//! not signed), refuses a shop header that disagrees, and answers a redelivery (same
//! `X-Shopify-Webhook-Id`) or an `app/uninstalled` older than the shop's latest install
//! with 200 and no effect.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use pagesync_actors::ShopDomain;
use pagesync_actors::messages::{ForgetOwner, ForgetShopToken, StoreShopToken};
use pagesync_actors::session::{
    ForgetShop, LatestInstall, OpenSession, RecordInstall, RegisterShop, RememberShopifyWebhook, ShopifyWebhookHandled,
    UseShopifyState,
};
use pagesync_actors::subscription::ForgetSubscriptions;

use crate::app_state::{AppState, ask};
use crate::body::{BodyLimits, read_body};
use crate::clients::shopify::ShopifyError;
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::html::{escape, html_page};
use crate::oauth_state::{STATE_LIFETIME_SECS, ShopifyState, sign_token, verify_token};
use crate::request::{cookie, session_cookie_header, wants_html};
use crate::verify::{constant_time_eq, verify_shopify_query, verify_shopify_webhook};

/// How far Shopify's `timestamp` may be from our clock.
const TIMESTAMP_TOLERANCE_SECS: u64 = 90;
/// The cookie that binds an install to the browser that started it.
pub const STATE_COOKIE: &str = "shopify_state";
/// The longest `X-Shopify-Webhook-Id` remembered (Shopify's are UUIDs); a longer one is
/// treated as absent rather than trusted.
const MAX_WEBHOOK_ID_LEN: usize = 256;

/// `Set-Cookie` for the state cookie: HttpOnly (no script reads it), `SameSite=Lax`
/// (Strict would not come back with Shopify's redirect), only sent to `/shopify`, and
/// lasting as long as the state (`max_age` 0 clears it).
fn state_cookie_header(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{STATE_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/shopify; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

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
    // Signed, not stored (see the module docs).
    let issued = ShopifyState::new(shop.clone(), unix_now());
    let signed = sign_token(&state.settings.state_token_secret, &issued);
    let settings = &state.settings.shopify;
    let params = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &settings.api_key)
        .append_pair("scope", &settings.scopes)
        .append_pair("redirect_uri", &settings.redirect_uri)
        .append_pair("state", &signed)
        .finish();
    let location = format!("{}/admin/oauth/authorize?{params}", state.shopify.admin_base(&shop));
    let secure = settings.redirect_uri.starts_with("https://");
    tracing::info!(shop = %shop, "Shopify install started");
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::SET_COOKIE, state_cookie_header(&issued.nonce, STATE_LIFETIME_SECS, secure)))
        .finish())
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
    check_state(req, state, &shop, params.get("state")).await?;
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
    // Before OpenSession, whose flush makes it durable with the session.
    ask(&state.actors.sessions, RecordInstall { shop: shop.clone(), at_millis: unix_millis() })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let session = ask(&state.actors.sessions, OpenSession { user: user.clone(), shop: shop.clone() })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    tracing::info!(shop = %shop, user = %user, "Shopify install completed");

    let secure = state.settings.shopify.redirect_uri.starts_with("https://");
    let cookie = session_cookie_header(&session, state.settings.session_ttl, secure);
    let mut response = HttpResponse::Ok();
    response.append_header((header::SET_COOKIE, cookie));
    // The state is spent: the browser can forget it.
    response.append_header((header::SET_COOKIE, state_cookie_header("", 0, secure)));
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

/// The state checks of the callback, after Shopify's `hmac`: signature and expiry,
/// the shop, the browser's cookie (constant time), and single use. Every failure is 400
/// with nothing spent, except that a state that got through once is spent for good.
async fn check_state(
    req: &HttpRequest,
    state: &AppState,
    shop: &ShopDomain,
    raw: Option<&String>,
) -> Result<(), ApiError> {
    let refuse = |reason: &dyn std::fmt::Display| {
        tracing::warn!(shop = %shop, reason = %reason, "Shopify state refused");
        ApiError::BadRequest("invalid or expired state; please install again".into())
    };
    let raw = raw.ok_or_else(|| ApiError::BadRequest("state missing".into()))?;
    let issued: ShopifyState =
        verify_token(&state.settings.state_token_secret, raw, unix_now()).map_err(|e| refuse(&e))?;
    if issued.shop != *shop {
        return Err(refuse(&"state was issued for another shop"));
    }
    let Some(cookie) = cookie(req, STATE_COOKIE) else {
        tracing::warn!(shop = %shop, "Shopify callback without the state cookie");
        return Err(ApiError::BadRequest(
            "this install was started in another browser (or its cookie expired); please install again from \
             this browser"
                .into(),
        ));
    };
    if !constant_time_eq(cookie, &issued.nonce) {
        return Err(refuse(&"the state cookie belongs to another install"));
    }
    ask(&state.actors.sessions, UseShopifyState { nonce: issued.nonce, expires_at: issued.expires_at })
        .await?
        .map_err(|e| refuse(&e))
}

/// The part of a Shopify webhook body pagesync reads.
#[derive(Default, serde::Deserialize)]
struct WebhookBody {
    /// Compliance topics name their shop here.
    shop_domain: Option<String>,
    /// `app/uninstalled` sends the shop object: its `myshopify_domain` is the shop
    /// (`domain` may be a custom domain and is never read).
    myshopify_domain: Option<String>,
    /// Only customer topics carry one; its presence in a shop-removal body means the
    /// topic header was changed.
    customer: Option<serde::de::IgnoredAny>,
}

fn header_str<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `POST /shopify/webhooks`: compliance topics and `app/uninstalled`.
#[tracing::instrument(skip_all)]
pub async fn webhooks(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The same size limit and deadline as Meta's deliveries: a slow or endless body
    // never holds a connection.
    let limits = BodyLimits { max_bytes: state.settings.webhook_max_bytes, deadline: state.webhook_body_deadline };
    let body = read_body(&req, payload, limits).await?;
    let verified =
        verify_shopify_webhook(&state.settings.shopify.api_secret, header_str(&req, "x-shopify-hmac-sha256"), body)
            .map_err(|e| {
                tracing::warn!(error = %e, "Shopify webhook refused");
                ApiError::Unauthorized("invalid hmac")
            })?;
    let topic = header_str(&req, "x-shopify-topic").unwrap_or_default().to_owned();
    let removes_shop = matches!(topic.as_str(), "shop/redact" | "app/uninstalled");
    // A body that is not a JSON object names no shop; Shopify always sends one.
    let parsed = serde_json::from_slice::<WebhookBody>(verified.get()).unwrap_or_default();
    let named = if topic == "app/uninstalled" {
        parsed.myshopify_domain.clone().or_else(|| parsed.shop_domain.clone())
    } else {
        parsed.shop_domain.clone()
    };
    // The headers are not signed: one that names another shop than the signed body is
    // not from Shopify.
    if let (Some(claimed), Some(named)) = (header_str(&req, "x-shopify-shop-domain"), &named)
        && !claimed.trim().eq_ignore_ascii_case(named)
    {
        tracing::warn!(topic, "Shopify webhook whose shop header disagrees with its signed body");
        return Err(ApiError::Unauthorized("the shop header does not match the signed body"));
    }
    let webhook_id = match header_str(&req, "x-shopify-webhook-id") {
        Some(id) if !id.is_empty() && id.len() <= MAX_WEBHOOK_ID_LEN => Some(id.to_owned()),
        Some(_) => {
            tracing::warn!(topic, "Shopify webhook id empty or too long; not deduplicated");
            None
        }
        None => None,
    };
    if let Some(id) = &webhook_id {
        let handled = ask(&state.actors.sessions, ShopifyWebhookHandled { id: id.clone() })
            .await?
            .map_err(|e| ApiError::Unexpected(e.into()))?;
        if handled {
            tracing::info!(topic, "Shopify webhook already handled; nothing to do");
            return Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "duplicate" })));
        }
    }

    let status = match topic.as_str() {
        "customers/data_request" | "customers/redact" => {
            tracing::info!(topic, "compliance request acknowledged (pagesync keeps no customer data)");
            "ok"
        }
        _ if removes_shop => {
            if parsed.customer.is_some() {
                tracing::warn!(topic, "Shopify webhook body does not match its topic");
                return Err(ApiError::BadRequest("the body does not match the topic".into()));
            }
            let shop = parse_shop(named.as_ref())?;
            if topic == "app/uninstalled" && uninstall_is_stale(&req, &state, &shop).await? {
                "stale"
            } else {
                let pages = remove_shop(&state, &shop, topic == "shop/redact").await?;
                tracing::info!(topic, shop = %shop, pages, "shop data removed");
                "ok"
            }
        }
        other => {
            tracing::info!(topic = other, "Shopify webhook topic ignored");
            return Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ignored" })));
        }
    };
    // Only once the delivery took effect: a failure above is retried by Shopify with
    // the same id, and must then be acted on.
    if let Some(id) = webhook_id {
        ask(&state.actors.sessions, RememberShopifyWebhook { id })
            .await?
            .map_err(|e| ApiError::Unexpected(e.into()))?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": status })))
}

/// Whether this `app/uninstalled` was triggered before the shop's latest install (a
/// late or replayed delivery that must not undo a reinstall). Without a readable
/// `X-Shopify-Triggered-At` the delivery is acted on.
async fn uninstall_is_stale(req: &HttpRequest, state: &AppState, shop: &ShopDomain) -> Result<bool, ApiError> {
    let Some(raw) = req.headers().get("x-shopify-triggered-at") else { return Ok(false) };
    let Some(triggered) = raw.to_str().ok().and_then(crate::rfc3339::parse_millis) else {
        tracing::warn!(shop = %shop, "unreadable X-Shopify-Triggered-At; acting on the uninstall");
        return Ok(false);
    };
    let latest = ask(&state.actors.sessions, LatestInstall { shop: shop.clone() })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let stale = latest.is_some_and(|installed| i128::from(triggered) < i128::from(installed));
    if stale {
        tracing::info!(shop = %shop, "app/uninstalled triggered before the latest install; nothing to do");
    }
    Ok(stale)
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
