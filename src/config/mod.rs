//! Typed settings, read from flags > environment > `.env` > built-in defaults.
//!
//! Every variable of docs/contract.md §2 is declared once, in [`VARS`], with its flag, default
//! and meaning; the command-line flags are generated from that table. [`load`]
//! validates everything in one pass and reports every problem on its own line, naming
//! the variable and never printing a value (values may be secrets).

pub mod proxy;

mod parse;
mod sections;
mod sources;
mod vars;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pagesync_actors::{EncryptionKey, Secret};

use self::parse::Validator;
pub use self::parse::parse_duration;
use self::proxy::ProxySettings;
pub use self::sections::{BotSettings, EventsKey, EventsSettings, FacebookSettings, LogFormat, ShopifySettings};
pub use self::sources::{Origin, SECRET_FILES, Sources};
pub use self::vars::{VARS, Var};

/// Validated settings for `serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub facebook: FacebookSettings,
    pub shopify: ShopifySettings,
    pub state_token_secret: Secret,
    pub encryption_key: EncryptionKey,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub session_ttl: Duration,
    /// `None`: polling off.
    pub poll_interval: Option<Duration>,
    pub webhook_max_bytes: usize,
    pub log: String,
    pub log_format: LogFormat,
    /// What pagesync hands the bot: its fields, the relay and the events.
    pub bot: BotSettings,
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` (either case): the proxies
    /// for outgoing HTTP to real hosts; loopback targets never use them. Its `Debug`
    /// hides proxy credentials.
    pub proxy: ProxySettings,
}

/// Validation result: settings when there were no problems. The sections are read in
/// the order of [`VARS`], so problems are listed in that order.
pub fn load(sources: &Sources) -> Result<Settings, Vec<String>> {
    let resolved;
    let sources = if sources.files_read {
        sources
    } else {
        let mut copy = sources.clone();
        copy.read_secret_files();
        resolved = copy;
        &resolved
    };
    let mut v = Validator { sources, problems: sources.problems.clone() };
    let facebook = sections::facebook(&mut v);
    let shopify = sections::shopify(&mut v);
    let daemon = sections::daemon(&mut v);
    let bot = sections::bot(&mut v);
    let proxy = sections::proxy(&mut v);
    match (facebook, shopify, daemon, bot, proxy) {
        (Some(facebook), Some(shopify), Some(daemon), Some(bot), Some(proxy)) if v.problems.is_empty() => {
            Ok(Settings {
                facebook,
                shopify,
                state_token_secret: daemon.state_token_secret,
                encryption_key: daemon.encryption_key,
                bind: daemon.bind,
                data_dir: daemon.data_dir,
                session_ttl: daemon.session_ttl,
                poll_interval: daemon.poll_interval,
                webhook_max_bytes: daemon.webhook_max_bytes,
                log: daemon.log,
                log_format: daemon.log_format,
                bot,
                proxy,
            })
        }
        _ => Err(v.problems),
    }
}

#[cfg(test)]
mod tests;
