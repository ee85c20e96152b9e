//! A shop's admin under `/shopify/{shop}`: the install page
//! (`GET /admin/oauth/authorize`, `#approve` / `#decline`), its decision (`POST` to the
//! same path) and `POST /admin/oauth/access_token` (served through the API dispatcher
//! in [`super::graph`], so that it is logged and can fail on purpose).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use pagesync_actors::ShopDomain;
use serde_json::json;

use super::editor::{hidden, html, html_error, see_other, with_query};
use super::graph::{Request, pairs};
use super::{EmulatorConfig, Shared, World};
use crate::clock::unix_now;
use crate::html::escape;
use crate::verify::{constant_time_eq, hmac_sha256, shopify_message};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/shopify/{shop}/admin/oauth/authorize", web::get().to(authorize))
        .route("/shopify/{shop}/admin/oauth/authorize", web::post().to(decide));
}

/// What the install page and its decision both check (Shopify refuses to show the
/// page at all when these are wrong).
fn check(config: &EmulatorConfig, shop: &str, params: &HashMap<String, String>) -> Result<(), String> {
    if ShopDomain::parse(shop).is_err() {
        return Err(format!("{shop} is not a myshopify.com shop domain."));
    }
    let get = |k: &str| params.get(k).map_or("", String::as_str);
    if !constant_time_eq(get("client_id"), &config.shopify_api_key) {
        return Err("Oauth error invalid_request: Could not find a Shopify API application with this client_id.".into());
    }
    if get("redirect_uri") != config.shopify_redirect_uri {
        return Err("Oauth error invalid_request: The redirect_uri is not whitelisted.".into());
    }
    let scope = get("scope");
    if scope.is_empty()
        || !scope.split(',').all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err("Oauth error invalid_scope: The scope is missing or malformed.".into());
    }
    Ok(())
}

/// `GET /shopify/{shop}/admin/oauth/authorize`: the install page.
async fn authorize(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let shop = path.into_inner();
    let params = pairs(req.query_string().as_bytes());
    if let Err(message) = check(&shared.lock().config, &shop, &params) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    let get = |k: &str| params.get(k).map_or("", String::as_str);
    let scopes: Vec<String> = get("scope").split(',').map(|s| format!("<li><code>{}</code></li>", escape(s))).collect();
    let shop_html = escape(&shop);
    let body = format!(
        "<h1>Install pagesync on {shop_html}?</h1><div class=\"card\"><p>pagesync (sandbox app) is asking \
         for access to {shop_html}:</p><ul>{}</ul><form id=\"authorize\" method=\"post\" \
         action=\"/shopify/{shop_html}/admin/oauth/authorize\">{}<button class=\"primary\" type=\"submit\" \
         id=\"approve\" name=\"decision\" value=\"approve\">Install app</button><button type=\"submit\" \
         id=\"decline\" name=\"decision\" value=\"decline\">Cancel</button></form></div>",
        scopes.join(""),
        ["client_id", "scope", "redirect_uri", "state"].map(|k| hidden(k, get(k))).join(""),
    );
    html(StatusCode::OK, &format!("Install pagesync on {shop}?"), &body)
}

/// `POST /shopify/{shop}/admin/oauth/authorize`: approve redirects to the app with a
/// signed query; decline stays here.
async fn decide(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let shop = path.into_inner();
    let form = pairs(&body);
    let mut world = shared.lock();
    if let Err(message) = check(&world.config, &shop, &form) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    match form.get("decision").map(String::as_str) {
        Some("approve") => {}
        Some("decline") => {
            let body = format!(
                "<h1>pagesync was not installed</h1><p id=\"declined\">You cancelled the installation on {}.</p>",
                escape(&shop)
            );
            return html(StatusCode::OK, "Installation cancelled", &body);
        }
        _ => return html_error(StatusCode::BAD_REQUEST, "Choose Install app or Cancel."),
    }
    let code = world.shop_code(&shop);
    let store = shop.trim_end_matches(".myshopify.com");
    let host = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("admin.shopify.com/store/{store}"));
    let mut params = vec![
        ("code".to_owned(), code),
        ("host".to_owned(), host),
        ("shop".to_owned(), shop.clone()),
        ("timestamp".to_owned(), unix_now().to_string()),
    ];
    if let Some(state) = form.get("state").filter(|s| !s.is_empty()) {
        params.push(("state".to_owned(), state.clone()));
    }
    params.sort();
    let secret = world.config.shopify_api_secret.expose().as_bytes();
    let hmac = hex::encode(hmac_sha256(secret, shopify_message(&params).as_bytes()));
    let mut query: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    query.push(("hmac", &hmac));
    match with_query(&world.config.shopify_redirect_uri, &query) {
        Some(location) => see_other(&location),
        None => html_error(StatusCode::BAD_REQUEST, "The app's redirect_uri is not a URL."),
    }
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": error, "error_description": description }))
}

/// `POST /shopify/{shop}/admin/oauth/access_token`: a single-use code (with the app's
/// credentials) for an offline access token, or the expiring one with a refresh token.
pub(super) fn token(world: &mut World, shop: &str, r: &Request) -> HttpResponse {
    if !constant_time_eq(r.get("client_id"), &world.config.shopify_api_key)
        || !constant_time_eq(r.get("client_secret"), world.config.shopify_api_secret.expose())
    {
        return oauth_error("invalid_client", "Client authentication failed");
    }
    // A code presented for another shop stays usable for its own.
    let valid = world.shop_codes.get(r.get("code")).is_some_and(|code| code.owner == shop && code.live());
    if !valid {
        return oauth_error("invalid_request", "The authorization code was not found or was already used");
    }
    world.shop_codes.remove(r.get("code"));
    let token = super::data::random_token("shpat_");
    world.issued.push(token.clone());
    tracing::info!(shop, "emulator: Shopify token issued");
    if !world.shopify_expiring {
        return HttpResponse::Ok().json(json!({ "access_token": token, "scope": "read_products" }));
    }
    let refresh = super::data::random_token("shprt_");
    world.issued.push(refresh.clone());
    HttpResponse::Ok().json(json!({
        "access_token": token, "scope": "read_products", "expires_in": 3600,
        "refresh_token": refresh, "refresh_token_expires_in": 7_776_000,
    }))
}
