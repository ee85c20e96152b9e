//! HTTP surfaces, one file each. Handlers parse and verify input, then talk to the
//! actors through messages; they own no state.

pub mod api;
pub mod dashboard;
pub mod facebook;
pub mod ops;
pub mod shopify;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use actix_web::HttpRequest;
use pagesync_actors::{Actors, Secret, Store};

use crate::clients::graph::GraphClient;
use crate::clients::shopify::ShopifyClient;
use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What every handler can reach; cloned into each HTTP worker.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub actors: Actors,
    /// Only for readiness (is the database open); actors own the trees.
    pub store: Store,
    pub graph: GraphClient,
    pub shopify: ShopifyClient,
    pub metrics: Metrics,
    /// How long a webhook body may take to arrive after its headers
    /// (`Tuning::webhook_body_deadline`).
    pub webhook_body_deadline: Duration,
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "session_id";

/// How long a handler waits for an actor's mailbox and answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `msg` to an actor with a timeout; a full or dead mailbox is a 503.
pub async fn ask<A, M>(addr: &Addr<A>, msg: M) -> Result<M::Result, ApiError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    addr.send(msg).timeout(ASK_TIMEOUT).await.map_err(|e| {
        tracing::warn!(error = %e, "actor did not answer in time");
        ApiError::Unavailable("busy, try again")
    })
}

/// The `session_id` cookie of the request, if any.
pub fn session_cookie(req: &HttpRequest) -> Option<Secret> {
    cookie(req, SESSION_COOKIE).map(Secret::new)
}

/// The first non-empty value of cookie `wanted` in the request (at most 128 bytes:
/// none of ours is longer, and nothing longer is worth comparing).
pub fn cookie<'r>(req: &'r HttpRequest, wanted: &str) -> Option<&'r str> {
    req.headers().get_all(actix_web::http::header::COOKIE).filter_map(|v| v.to_str().ok()).find_map(|header| {
        header.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == wanted && !value.is_empty() && value.len() <= 128).then_some(value)
        })
    })
}

/// `Set-Cookie` value for a session (SPEC §4): HttpOnly, SameSite=Lax, Path=/, Secure
/// when the app is served over https.
pub fn session_cookie_header(id: &Secret, ttl: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        id.expose(),
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the client asked for HTML (a browser) rather than JSON.
pub fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal, readable HTML page around `body` (already escaped).
pub fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title><style>body{{font-family:system-ui,\
         sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}table{{border-collapse:\
         collapse}}td,th{{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}}</style></head>\
         <body>{}</body></html>",
        escape(title),
        body
    )
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Registers every route.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    cfg.route("/", web::get().to(dashboard::index))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/facebook/webhook", web::get().to(webhook::verify))
        .route("/facebook/webhook", web::post().to(webhook::receive))
        .route("/shopify/login", web::get().to(shopify::login))
        .route("/shopify/callback", web::get().to(shopify::callback))
        .route("/shopify/webhooks", web::post().to(shopify::webhooks))
        .route("/facebook/login", web::get().to(facebook::login))
        .route("/facebook/callback", web::get().to(facebook::callback))
        .route("/facebook/deauthorize", web::post().to(facebook::deauthorize))
        .route("/facebook/data-deletion", web::post().to(facebook::data_deletion))
        .route("/facebook/data-deletion/status", web::get().to(facebook::deletion_status))
        .service(
            web::scope("/api/v1")
                .route("/pages", web::get().to(api::list_pages))
                .route("/pages/{id}", web::get().to(api::get_page))
                .route("/pages/{id}/token", web::get().to(api::page_token))
                .route("/shops/{shop}/token", web::get().to(api::shop_token))
                .default_service(web::to(api::not_found)),
        );
}
