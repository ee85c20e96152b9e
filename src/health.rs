//! Readiness: is the store open, and does every actor answer? Asked by `GET /readyz`
//! and by the systemd watchdog at start-up; its own module so that start-up
//! does not reach into a route handler for it.

use std::time::Duration;

use pagesync_actors::messages::Ping;
use pagesync_actors::{Actors, Store};

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
    if !matches!(actors.outbox.addr.send(Ping).timeout(timeout).await, Ok(())) {
        not_ready.push("outbox");
    }
    if !matches!(actors.api_keys.send(Ping).timeout(timeout).await, Ok(())) {
        not_ready.push("api_keys");
    }
    not_ready
}
