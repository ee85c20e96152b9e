//! HTTP surfaces, one file each. Handlers parse and verify input, then talk to the
//! actors through messages; they own no state.

pub mod ops;
pub mod webhook;

use std::sync::Arc;

use pagesync_actors::{Actors, Store};

use crate::config::Settings;

/// What every handler can reach; cloned into each HTTP worker.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub actors: Actors,
    /// Only for readiness (is the database open); actors own the trees.
    pub store: Store,
}

/// Registers every route.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/facebook/webhook", web::get().to(webhook::verify))
        .route("/facebook/webhook", web::post().to(webhook::receive));
}
