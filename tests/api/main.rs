//! pagesync's API tests: one binary, every test on its own app, data dir and fake
//! Meta + Shopify server, all on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod backup;
mod cli;
mod config;
mod dashboard;
mod events;
mod facebook;
mod hardening;
mod helpers;
mod hijack;
mod lifecycle;
mod metrics;
mod operator;
mod poll;
mod proxy;
mod relay;
mod removal;
mod sandbox;
mod scale;
mod secrets;
mod shopify;
mod sink;
mod subscriptions;
mod sync;
mod systemd;
mod webhook;
