//! Every message the actors take and every reply they give: the crate's public contract.
//!
//! HTTP handlers and the CLI talk to the actors only through these types. Ids arrive
//! already parsed ([`PageId`](crate::ids::PageId), [`UserId`](crate::ids::UserId));
//! secrets arrive wrapped ([`Secret`](crate::secret::Secret)).
//!
//! The rule: every message, its reply type and the error it can answer with is declared
//! here, one file per actor (`vault`, `writer`, `session`, `subscription`, `poller`,
//! `outbox`, `api_keys`); messages every actor takes ([`Ping`], [`Shutdown`]) are in
//! this file. Internal messages an actor sends itself (a finished refresh, a timer)
//! stay private in the actor's own file: they are not part of the contract. Everything
//! is re-exported here (`messages::CheckSession`) and from the actor's module
//! (`session::CheckSession`), so either path works for callers.

use actix::Message;

pub mod api_keys;
pub mod outbox;
pub mod poller;
pub mod session;
pub mod subscription;
pub mod vault;
pub mod writer;

pub use api_keys::*;
pub use outbox::*;
pub use poller::*;
pub use session::*;
pub use subscription::*;
pub use vault::*;
pub use writer::*;

/// Answers at once; readiness checks send it to every actor with a timeout.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Stop the actor: a writer stops starting refreshes (what is unfinished stays in the
/// inbox for the next start), then the actor stops. Sent once the HTTP server drained.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;
