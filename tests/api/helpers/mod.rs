//! `spawn_app()` and the `TestApp` every API test drives.
//!
//! Each app gets its own data dir, a port chosen by the OS and the emulator of Meta and
//! Shopify (`pagesync::emulator`, docs/testing.md). It is built by the same
//! `Application::build_on` as production, on a listener bound first so that the
//! redirect URIs and the webhook address can name the app's own port. `TestApp` speaks
//! every flow of docs/contract.md §4 the way a browser, Shopify or Meta would: it signs
//! what they sign and carries the session cookie by hand (the client has no cookie
//! store).

mod flows;
mod sign;
mod spawn;
mod wait;

pub use flows::*;
pub use sign::*;
pub use spawn::*;
pub use wait::*;
