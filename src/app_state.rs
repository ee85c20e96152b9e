//! What every HTTP handler can reach ([`AppState`]), and how a handler asks an actor
//! a question ([`ask`]). Built once at start-up and cloned into each HTTP worker;
//! sits above the clients (it holds them) and below the routes (they read it).

use std::sync::Arc;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use pagesync_actors::{Actors, Store};

use crate::clients::graph::GraphClient;
use crate::clients::shopify::ShopifyClient;
use crate::config::Settings;
use crate::error::ApiError;
use crate::health::Readiness;
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
    /// The readiness check's latest result, kept by a background task, so that
    /// `/metrics` does not ping every actor on each scrape (see `health`).
    pub readiness: Readiness,
    /// How long a webhook body may take to arrive after its headers
    /// (`Tuning::webhook_body_deadline`).
    pub webhook_body_deadline: Duration,
}

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
