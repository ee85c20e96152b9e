//! pagesync's API tests: one binary, every test on its own app, data dir and fake
//! Graph server, all on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_graph;
mod helpers;
mod lifecycle;
mod sync;
mod webhook;
