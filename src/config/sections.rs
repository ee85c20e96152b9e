//! One parser per section of the configuration. Each reads its own variables through
//! the [`Validator`] (which records every problem) and returns its settings struct,
//! or `None` when any of them was unusable. [`super::load`] calls them in a fixed
//! order, so problems are listed in the order of the variable table.
//!
//! A parser calls every `v.required(..)` before it applies `?` to any result, so one
//! bad variable never hides the problems of the next.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pagesync_actors::{EncryptionKey, Secret};

use super::parse::{Validator, field_list, http_url, page_fields, parse_duration, secret};
use super::proxy::ProxySettings;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the Graph client needs.
#[derive(Debug, Clone)]
pub struct FacebookSettings {
    pub app_id: String,
    pub app_secret: Secret,
    pub redirect_uri: String,
    pub webhook_address: String,
    pub verify_token: Secret,
    pub subscribed_fields: Vec<String>,
    pub page_fields: String,
    /// Without a trailing slash.
    pub graph_url: String,
    /// Without a trailing slash.
    pub dialog_url: String,
    pub graph_version: String,
}

/// Everything the Shopify install flow needs.
#[derive(Debug, Clone)]
pub struct ShopifySettings {
    pub api_key: String,
    pub api_secret: Secret,
    pub redirect_uri: String,
    pub scopes: String,
    /// Contains `{shop}`.
    pub admin_url: String,
}

/// The bot's side (docs/contract.md §7).
#[derive(Debug, Clone)]
pub struct BotSettings {
    /// `PAGESYNC_BOT_FIELDS`: subscribed next to `FACEBOOK_SUBSCRIBED_FIELDS`.
    pub fields: Vec<String>,
    /// `PAGESYNC_FORWARD_URL`: `None` relays nothing.
    pub forward_url: Option<String>,
    /// `PAGESYNC_FORWARD_MAX_AGE`.
    pub max_age: Duration,
    /// `PAGESYNC_EVENTS_URL` with its secret: `None` emits no events.
    pub events: Option<EventsSettings>,
}

/// Where events go and the key that signs them.
#[derive(Debug, Clone)]
pub struct EventsSettings {
    pub url: String,
    pub key: EventsKey,
}

/// The decoded bytes of `PAGESYNC_EVENTS_SECRET` (the part after `whsec_`). `Debug`
/// is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct EventsKey(Vec<u8>);

impl EventsKey {
    /// Parses `whsec_` + base64 of 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<EventsKey, String> {
        use base64::Engine as _;
        let err = || "must be whsec_ followed by base64 of 24 to 64 random bytes (pagesync keygen --events-secret)";
        let encoded = text.trim().strip_prefix("whsec_").ok_or_else(err)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| err())?;
        if (24..=64).contains(&bytes.len()) { Ok(EventsKey(bytes)) } else { Err(err().into()) }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for EventsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventsKey([redacted])")
    }
}

/// The daemon's own settings; [`super::load`] spreads them over [`super::Settings`].
pub(super) struct DaemonSettings {
    pub(super) state_token_secret: Secret,
    pub(super) encryption_key: EncryptionKey,
    pub(super) bind: SocketAddr,
    pub(super) data_dir: PathBuf,
    pub(super) session_ttl: Duration,
    pub(super) poll_interval: Option<Duration>,
    pub(super) webhook_max_bytes: usize,
    pub(super) log: String,
    pub(super) log_format: LogFormat,
}

/// `FACEBOOK_*`: the Meta app, its webhook and the Graph API.
pub(super) fn facebook(v: &mut Validator<'_>) -> Option<FacebookSettings> {
    let app_id = v.required("FACEBOOK_APP_ID", |s| {
        if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(s.to_owned())
        } else {
            Err("must be digits only".into())
        }
    });
    let app_secret = v.required("FACEBOOK_APP_SECRET", secret);
    let redirect_uri = v.required("FACEBOOK_REDIRECT_URI", http_url);
    let webhook_address = v.required("FACEBOOK_WEBHOOK_ADDRESS", http_url);
    let verify_token = v.required("FACEBOOK_VERIFY_TOKEN", secret);
    let subscribed_fields = v.required("FACEBOOK_SUBSCRIBED_FIELDS", field_list);
    let page_fields = v.required("FACEBOOK_PAGE_FIELDS", page_fields);
    let graph_url = v.required("FACEBOOK_GRAPH_URL", http_url);
    let dialog_url = v.required("FACEBOOK_DIALOG_URL", http_url);
    let graph_version = v.required("FACEBOOK_GRAPH_VERSION", |s| {
        let ok = s.strip_prefix('v').and_then(|r| r.split_once('.')).is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
        if ok { Ok(s.to_owned()) } else { Err("must look like v25.0".into()) }
    });
    Some(FacebookSettings {
        app_id: app_id?,
        app_secret: app_secret?,
        redirect_uri: redirect_uri?,
        webhook_address: webhook_address?,
        verify_token: verify_token?,
        subscribed_fields: subscribed_fields?,
        page_fields: page_fields?,
        graph_url: graph_url?.trim_end_matches('/').to_owned(),
        dialog_url: dialog_url?.trim_end_matches('/').to_owned(),
        graph_version: graph_version?,
    })
}

/// `SHOPIFY_*`: the Shopify app and its install flow.
pub(super) fn shopify(v: &mut Validator<'_>) -> Option<ShopifySettings> {
    let api_key = v.required("SHOPIFY_API_KEY", |s| {
        if s.trim().is_empty() { Err("must not be empty".into()) } else { Ok(s.to_owned()) }
    });
    let api_secret = v.required("SHOPIFY_API_SECRET", secret);
    let redirect_uri = v.required("SHOPIFY_REDIRECT_URI", http_url);
    let scopes = v.required("SHOPIFY_SCOPES", |s| {
        if !s.is_empty()
            && s.split(',').all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            Ok(s.to_owned())
        } else {
            Err("must be a comma-separated list of scopes (a-z, _)".into())
        }
    });
    let admin_url = v.required("SHOPIFY_ADMIN_URL", |s| {
        if !s.contains("{shop}") {
            return Err("must contain {shop}".into());
        }
        http_url(&s.replace("{shop}", "example.myshopify.com")).map(|_| s.to_owned())
    });
    Some(ShopifySettings {
        api_key: api_key?,
        api_secret: api_secret?,
        redirect_uri: redirect_uri?,
        scopes: scopes?,
        admin_url: admin_url?.trim_end_matches('/').to_owned(),
    })
}

/// `STATE_TOKEN_SECRET`, the encryption key and `PAGESYNC_*` of the daemon itself:
/// where it listens and stores, how long sessions last, polling, body limit, logs.
pub(super) fn daemon(v: &mut Validator<'_>) -> Option<DaemonSettings> {
    let state_token_secret = v.required("STATE_TOKEN_SECRET", |s| {
        if s.len() >= 32 { Ok(Secret::new(s)) } else { Err("must be at least 32 bytes".into()) }
    });
    let encryption_key = v.encryption_key();
    let bind = v.required("PAGESYNC_BIND", |s| {
        s.parse::<SocketAddr>().map_err(|_| "must be an address like 127.0.0.1:5000".into())
    });
    let data_dir = v.required("PAGESYNC_DATA_DIR", |s| {
        if s.is_empty() { Err("must not be empty".into()) } else { Ok(PathBuf::from(s)) }
    });
    let session_ttl = v.required("PAGESYNC_SESSION_TTL", |s| match parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
        other => other,
    });
    let poll_interval =
        v.required("PAGESYNC_POLL_INTERVAL", |s| parse_duration(s).map(|d| (!d.is_zero()).then_some(d)));
    let webhook_max_bytes = v.required("PAGESYNC_WEBHOOK_MAX_BYTES", |s| match s.parse::<usize>() {
        Ok(n) if (1..=64 * 1024 * 1024).contains(&n) => Ok(n),
        _ => Err("must be a whole number of bytes from 1 to 67108864".into()),
    });
    let log = v.required("PAGESYNC_LOG", |s| {
        tracing_subscriber::EnvFilter::try_new(s)
            .map(|_| s.to_owned())
            .map_err(|_| "is not a valid tracing filter".into())
    });
    let log_format = match v.sources.get("PAGESYNC_LOG_FORMAT") {
        None => {
            Some(if std::io::IsTerminal::is_terminal(&std::io::stderr()) { LogFormat::Text } else { LogFormat::Json })
        }
        Some((s, _)) => match s.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                v.problems.push("PAGESYNC_LOG_FORMAT: must be text or json".into());
                None
            }
        },
    };
    Some(DaemonSettings {
        state_token_secret: state_token_secret?,
        encryption_key: encryption_key?,
        bind: bind?,
        data_dir: data_dir?,
        session_ttl: session_ttl?,
        poll_interval: poll_interval?,
        webhook_max_bytes: webhook_max_bytes?,
        log: log?,
        log_format: log_format?,
    })
}

/// Reads the bot's variables; every problem goes to `v`.
pub(super) fn bot(v: &mut Validator<'_>) -> Option<BotSettings> {
    let sources = v.sources;
    let mut ok = true;
    let mut optional = |name: &'static str, parse: &dyn Fn(&str) -> Result<String, String>| match sources.get(name) {
        None => Some(None),
        Some((value, _)) if value.is_empty() => Some(None),
        Some((value, _)) => match parse(&value) {
            Ok(parsed) => Some(Some(parsed)),
            Err(why) => {
                v.problems.push(format!("{name}: {why}"));
                ok = false;
                None
            }
        },
    };
    let fields = optional("PAGESYNC_BOT_FIELDS", &|s| field_list(s).map(|f| f.join(",")))
        .flatten()
        .map(|f| f.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let forward_url = optional("PAGESYNC_FORWARD_URL", &http_url).flatten();
    let events_url = optional("PAGESYNC_EVENTS_URL", &http_url).flatten();
    let events_secret = optional("PAGESYNC_EVENTS_SECRET", &|s| EventsKey::parse(s).map(|_| s.to_owned())).flatten();
    let max_age = v.required("PAGESYNC_FORWARD_MAX_AGE", |s| match parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
        other => other,
    });
    let events = match (events_url, events_secret) {
        (Some(url), Some(secret)) => EventsKey::parse(&secret).ok().map(|key| EventsSettings { url, key }),
        (Some(_), None) => {
            v.problems.push("PAGESYNC_EVENTS_SECRET: missing (needed with PAGESYNC_EVENTS_URL)".into());
            ok = false;
            None
        }
        (None, Some(_)) => {
            v.problems.push("PAGESYNC_EVENTS_URL: missing (PAGESYNC_EVENTS_SECRET is set without it)".into());
            ok = false;
            None
        }
        (None, None) => None,
    };
    (ok).then_some(())?;
    Some(BotSettings { fields, forward_url, max_age: max_age?, events })
}

/// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` (see [`super::proxy`]).
pub(super) fn proxy(v: &mut Validator<'_>) -> Option<ProxySettings> {
    let sources = v.sources;
    match ProxySettings::from_lookup(|name| sources.get(name).map(|(value, _)| value)) {
        Ok(proxy) => Some(proxy),
        Err(problems) => {
            v.problems.extend(problems);
            None
        }
    }
}
