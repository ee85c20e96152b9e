//! Clients of the platforms pagesync talks to, sharing one `reqwest::Client`.

pub mod graph;
pub mod shopify;
