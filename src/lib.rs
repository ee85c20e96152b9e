//! pagesync: keeps `facebook/<page_id>/page_data.json` current for every connected
//! Facebook Page.
//!
//! This crate is the edge: configuration, HTTP routes, signature checks, the Graph
//! client, the command line and start-up. State and the order of work live in the
//! `pagesync-actors` crate. See docs/architecture.md.

pub mod app_state;
pub mod body;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod control;
pub mod delivery;
pub mod emulator;
pub mod error;
pub mod health;
pub mod html;
pub mod metrics;
pub mod oauth_state;
pub mod privilege;
pub mod request;
pub mod rfc3339;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod systemd;
pub mod telemetry;
pub mod verify;

/// The edge's layering, checked by tests (see docs/architecture.md).
#[cfg(test)]
mod module_graph;
