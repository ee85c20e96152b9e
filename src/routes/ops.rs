//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use pagesync_actors::messages::Ping;
use pagesync_actors::{Actors, Store};

use super::AppState;

/// How long an actor may take to answer a readiness ping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 `ok` while the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

/// What is not ready: the store if it does not answer a read, and every actor that
/// does not answer a ping within `timeout`. Empty when all is well.
pub async fn not_ready(store: &Store, actors: &Actors, timeout: Duration) -> Vec<&'static str> {
    let mut not_ready = Vec::new();
    if !store.is_open() {
        not_ready.push("store");
    }
    if !matches!(actors.vault.send(Ping).timeout(timeout).await, Ok(())) {
        not_ready.push("token_vault");
    }
    if !matches!(actors.sessions.send(Ping).timeout(timeout).await, Ok(())) {
        not_ready.push("sessions");
    }
    if !matches!(actors.subscriptions.send(Ping).timeout(timeout).await, Ok(())) {
        not_ready.push("subscriptions");
    }
    if !matches!(actors.page_writer.send(Ping).timeout(timeout).await, Ok(())) {
        not_ready.push("page_writer");
    }
    if !matches!(actors.poller.send(Ping).timeout(timeout).await, Ok(())) {
        not_ready.push("poller");
    }
    not_ready
}

/// `GET /readyz`: 200 when the store is open and every actor answers a ping in time;
/// else 503 naming what is not ready.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = not_ready(&state.store, &state.actors, PING_TIMEOUT).await;
    if not_ready.is_empty() {
        HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("not ready: {}", not_ready.join(", ")))
    }
}
