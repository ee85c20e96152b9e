//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use pagesync_actors::messages::Ping;

use super::AppState;

/// How long an actor may take to answer a readiness ping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 `ok` while the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

/// `GET /readyz`: 200 when the store is open and every actor answers a ping in time;
/// else 503 naming what is not ready.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut not_ready = Vec::new();
    if !state.store.is_open() {
        not_ready.push("store");
    }
    if !matches!(state.actors.vault.send(Ping).timeout(PING_TIMEOUT).await, Ok(())) {
        not_ready.push("token_vault");
    }
    if !matches!(state.actors.sessions.send(Ping).timeout(PING_TIMEOUT).await, Ok(())) {
        not_ready.push("sessions");
    }
    if !matches!(state.actors.subscriptions.send(Ping).timeout(PING_TIMEOUT).await, Ok(())) {
        not_ready.push("subscriptions");
    }
    if !matches!(state.actors.page_writer.send(Ping).timeout(PING_TIMEOUT).await, Ok(())) {
        not_ready.push("page_writer");
    }
    if not_ready.is_empty() {
        HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("not ready: {}", not_ready.join(", ")))
    }
}
