//! Clients of the platforms pagesync talks to. One shared `reqwest::Client` each.

pub mod graph;
