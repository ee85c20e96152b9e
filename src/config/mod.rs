//! Typed settings, read from flags > environment > `.env` > built-in defaults.
//!
//! Every variable of SPEC §2 is declared once, in [`VARS`], with its flag, default
//! and meaning; the command-line flags are generated from that table. [`load`]
//! validates everything in one pass and reports every problem on its own line, naming
//! the variable and never printing a value (values may be secrets).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pagesync_actors::{EncryptionKey, Secret};

pub mod proxy;

use self::proxy::{PROXY_VARS, ProxySettings};

/// One configuration variable.
#[derive(Debug)]
pub struct Var {
    /// The environment / `.env` name.
    pub name: &'static str,
    /// The long flag that sets it (`--facebook-app-id`).
    pub flag: &'static str,
    /// Built-in default; `None` when there is none.
    pub default: Option<&'static str>,
    /// Needed by `serve` (and so by `check-config`).
    pub required: bool,
    pub help: &'static str,
}

/// Every variable pagesync reads, in SPEC order.
pub const VARS: &[Var] = &[
    Var {
        name: "FACEBOOK_APP_ID",
        flag: "facebook-app-id",
        default: None,
        required: true,
        help: "Meta app id, digits only",
    },
    Var {
        name: "FACEBOOK_APP_SECRET",
        flag: "facebook-app-secret",
        default: None,
        required: true,
        help: "Meta app secret: signs webhooks and appsecret_proof",
    },
    Var {
        name: "FACEBOOK_REDIRECT_URI",
        flag: "facebook-redirect-uri",
        default: None,
        required: true,
        help: "Facebook Login callback URL",
    },
    Var {
        name: "FACEBOOK_WEBHOOK_ADDRESS",
        flag: "facebook-webhook-address",
        default: None,
        required: true,
        help: "public URL of /facebook/webhook",
    },
    Var {
        name: "FACEBOOK_VERIFY_TOKEN",
        flag: "facebook-verify-token",
        default: None,
        required: true,
        help: "token Meta echoes in its verification request (no default, ever)",
    },
    Var {
        name: "FACEBOOK_SUBSCRIBED_FIELDS",
        flag: "facebook-subscribed-fields",
        default: Some("name,category"),
        required: false,
        help: "Page webhook fields to subscribe",
    },
    Var {
        name: "FACEBOOK_PAGE_FIELDS",
        flag: "facebook-page-fields",
        default: Some(
            "id,name,category,category_list,about,description,website,link,username,phone,emails,location,fan_count,verification_status,picture",
        ),
        required: false,
        help: "fields page_data.json holds",
    },
    Var {
        name: "FACEBOOK_GRAPH_URL",
        flag: "facebook-graph-url",
        default: Some("https://graph.facebook.com"),
        required: false,
        help: "Graph API base URL",
    },
    Var {
        name: "FACEBOOK_DIALOG_URL",
        flag: "facebook-dialog-url",
        default: Some("https://www.facebook.com"),
        required: false,
        help: "base URL of the Login dialog",
    },
    Var {
        name: "FACEBOOK_GRAPH_VERSION",
        flag: "facebook-graph-version",
        default: Some("v25.0"),
        required: false,
        help: "pinned Graph API version",
    },
    Var {
        name: "SHOPIFY_API_KEY",
        flag: "shopify-api-key",
        default: None,
        required: true,
        help: "Shopify app client id",
    },
    Var {
        name: "SHOPIFY_API_SECRET",
        flag: "shopify-api-secret",
        default: None,
        required: true,
        help: "verifies Shopify's hmac",
    },
    Var {
        name: "SHOPIFY_REDIRECT_URI",
        flag: "shopify-redirect-uri",
        default: None,
        required: true,
        help: "Shopify OAuth callback URL",
    },
    Var {
        name: "SHOPIFY_SCOPES",
        flag: "shopify-scopes",
        default: Some("read_products"),
        required: false,
        help: "scopes asked at install",
    },
    Var {
        name: "SHOPIFY_ADMIN_URL",
        flag: "shopify-admin-url",
        default: Some("https://{shop}"),
        required: false,
        help: "template of a shop's admin base; {shop} is replaced",
    },
    Var {
        name: "STATE_TOKEN_SECRET",
        flag: "state-token-secret",
        default: None,
        required: true,
        help: "at least 32 bytes; signs OAuth state",
    },
    Var {
        name: "PAGESYNC_ENCRYPTION_KEY",
        flag: "encryption-key",
        default: None,
        required: false,
        help: "base64 of 32 random bytes (pagesync keygen); encrypts tokens at rest",
    },
    Var {
        name: "PAGESYNC_ENCRYPTION_KEY_FILE",
        flag: "encryption-key-file",
        default: None,
        required: false,
        help: "file holding the encryption key instead",
    },
    Var {
        name: "PAGESYNC_BIND",
        flag: "bind",
        default: Some("127.0.0.1:5000"),
        required: false,
        help: "listen address",
    },
    Var {
        name: "PAGESYNC_DATA_DIR",
        flag: "data-dir",
        default: Some("./data"),
        required: false,
        help: "all state lives below it",
    },
    Var {
        name: "PAGESYNC_SESSION_TTL",
        flag: "session-ttl",
        default: Some("7d"),
        required: false,
        help: "session lifetime (90s, 15m, 24h, 7d)",
    },
    Var {
        name: "PAGESYNC_POLL_INTERVAL",
        flag: "poll-interval",
        default: Some("24h"),
        required: false,
        help: "re-sync period for every Page; 0 turns polling off",
    },
    Var {
        name: "PAGESYNC_WEBHOOK_MAX_BYTES",
        flag: "webhook-max-bytes",
        default: Some("1048576"),
        required: false,
        help: "larger webhook bodies get 413",
    },
    Var {
        name: "PAGESYNC_BOT_FIELDS",
        flag: "bot-fields",
        default: None,
        required: false,
        help: "Page webhook fields the bot needs (e.g. messages,messaging_postbacks); subscribed, never removed",
    },
    Var {
        name: "PAGESYNC_FORWARD_URL",
        flag: "forward-url",
        default: None,
        required: false,
        help: "the bot's Meta webhook URL: every verified delivery is relayed there",
    },
    Var {
        name: "PAGESYNC_FORWARD_MAX_AGE",
        flag: "forward-max-age",
        default: Some("24h"),
        required: false,
        help: "a forward or event still failing after this long is dead-lettered",
    },
    Var {
        name: "PAGESYNC_EVENTS_URL",
        flag: "events-url",
        default: None,
        required: false,
        help: "receives pagesync's events (Standard Webhooks)",
    },
    Var {
        name: "PAGESYNC_EVENTS_SECRET",
        // Not `--events-secret`: that is `pagesync keygen --events-secret` (SPEC §6).
        flag: "events-signing-secret",
        default: None,
        required: false,
        help: "whsec_ + base64 of 24-64 random bytes (pagesync keygen --events-secret); signs events",
    },
    Var {
        name: "PAGESYNC_LOG",
        flag: "log",
        default: Some("info"),
        required: false,
        help: "tracing filter, RUST_LOG syntax",
    },
    Var {
        name: "PAGESYNC_LOG_FORMAT",
        flag: "log-format",
        default: None,
        required: false,
        help: "text or json (default: text on a terminal, else json)",
    },
];

/// Where a value came from (for the `check-config` summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    DotEnv,
    Default,
}

/// Raw values from every source, before validation.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub flags: HashMap<String, String>,
    pub env: HashMap<String, String>,
    pub dotenv: HashMap<String, String>,
    /// `$CREDENTIALS_DIRECTORY`, set by systemd's `LoadCredential=`.
    pub credentials_dir: Option<PathBuf>,
    /// Problems met while reading the sources themselves (an unreadable `.env`).
    pub problems: Vec<String>,
}

impl Sources {
    /// Reads the process environment and `./.env` (if present) besides `flags`.
    pub fn gather(flags: HashMap<String, String>) -> Sources {
        let mut sources = Sources { flags, ..Sources::default() };
        // The proxy variables have no flags (they are the conventional environment
        // names, read here so that the HTTP client never reads the environment itself).
        for name in VARS.iter().map(|var| var.name).chain(PROXY_VARS.iter().copied()) {
            if let Ok(value) = std::env::var(name) {
                sources.env.insert(name.to_owned(), value);
            } else if std::env::var_os(name).is_some() {
                sources.problems.push(format!("{name}: not valid UTF-8"));
            }
        }
        sources.credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        sources.read_dotenv(Path::new(".env"));
        sources
    }

    /// Reads a `.env` file; a missing file is fine, a broken one is a problem.
    pub fn read_dotenv(&mut self, path: &Path) {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(e) if e.not_found() => return,
            Err(_) => {
                self.problems.push(format!("{}: cannot be read", path.display()));
                return;
            }
        };
        for item in iter {
            match item {
                Ok((k, v)) => {
                    if VARS.iter().any(|var| var.name == k) || PROXY_VARS.contains(&k.as_str()) {
                        self.dotenv.insert(k, v);
                    }
                }
                // The error text of a parse failure quotes the line, which may hold a
                // secret: report only where it is.
                Err(dotenvy::Error::LineParse(_, index)) => {
                    self.problems
                        .push(format!("{}: cannot be parsed (at character {index} of a line)", path.display()));
                    return;
                }
                Err(_) => {
                    self.problems.push(format!("{}: cannot be parsed", path.display()));
                    return;
                }
            }
        }
    }

    /// The winning value of a variable and where it came from.
    pub fn get(&self, name: &str) -> Option<(String, Origin)> {
        if let Some(v) = self.flags.get(name) {
            return Some((v.clone(), Origin::Flag));
        }
        if let Some(v) = self.env.get(name) {
            return Some((v.clone(), Origin::Env));
        }
        if let Some(v) = self.dotenv.get(name) {
            return Some((v.clone(), Origin::DotEnv));
        }
        VARS.iter().find(|var| var.name == name).and_then(|var| var.default).map(|d| (d.to_owned(), Origin::Default))
    }
}

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

/// The bot's side (SPEC §7).
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

/// Reads the bot's variables; every problem goes to `v`.
fn bot_settings(v: &mut Validator<'_>) -> Option<BotSettings> {
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

/// A comma-separated list of webhook field names (a-z, 0-9, _).
fn field_list(s: &str) -> Result<Vec<String>, String> {
    let fields: Vec<String> = s.split(',').map(|f| f.trim().to_owned()).collect();
    if fields
        .iter()
        .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    {
        Ok(fields)
    } else {
        Err("must be a comma-separated list of field names (a-z, 0-9, _)".into())
    }
}

/// Validation result: settings when there were no problems.
pub fn load(sources: &Sources) -> Result<Settings, Vec<String>> {
    let mut v = Validator { sources, problems: sources.problems.clone() };

    let app_id = v.required("FACEBOOK_APP_ID", |s| {
        if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(s.to_owned())
        } else {
            Err("must be digits only".into())
        }
    });
    let app_secret = v.required("FACEBOOK_APP_SECRET", secret);
    let fb_redirect = v.required("FACEBOOK_REDIRECT_URI", http_url);
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
    let api_key = v.required("SHOPIFY_API_KEY", |s| {
        if s.trim().is_empty() { Err("must not be empty".into()) } else { Ok(s.to_owned()) }
    });
    let api_secret = v.required("SHOPIFY_API_SECRET", secret);
    let shop_redirect = v.required("SHOPIFY_REDIRECT_URI", http_url);
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
    let state_secret = v.required("STATE_TOKEN_SECRET", |s| {
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
    let max_bytes = v.required("PAGESYNC_WEBHOOK_MAX_BYTES", |s| match s.parse::<usize>() {
        Ok(n) if (1..=64 * 1024 * 1024).contains(&n) => Ok(n),
        _ => Err("must be a whole number of bytes from 1 to 67108864".into()),
    });
    let log = v.required("PAGESYNC_LOG", |s| {
        tracing_subscriber::EnvFilter::try_new(s)
            .map(|_| s.to_owned())
            .map_err(|_| "is not a valid tracing filter".into())
    });
    let log_format = match sources.get("PAGESYNC_LOG_FORMAT") {
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

    let bot = bot_settings(&mut v);
    let proxy = match ProxySettings::from_lookup(|name| sources.get(name).map(|(value, _)| value)) {
        Ok(proxy) => Some(proxy),
        Err(problems) => {
            v.problems.extend(problems);
            None
        }
    };

    let problems = v.problems;
    match (
        app_id,
        app_secret,
        fb_redirect,
        webhook_address,
        verify_token,
        subscribed_fields,
        page_fields,
        graph_url,
        dialog_url,
        graph_version,
        api_key,
        api_secret,
        shop_redirect,
        scopes,
        admin_url,
        state_secret,
        encryption_key,
        bind,
        data_dir,
        session_ttl,
        poll_interval,
        max_bytes,
        log,
        log_format,
        bot,
        proxy,
    ) {
        (
            Some(app_id),
            Some(app_secret),
            Some(fb_redirect),
            Some(webhook_address),
            Some(verify_token),
            Some(subscribed_fields),
            Some(page_fields),
            Some(graph_url),
            Some(dialog_url),
            Some(graph_version),
            Some(api_key),
            Some(api_secret),
            Some(shop_redirect),
            Some(scopes),
            Some(admin_url),
            Some(state_secret),
            Some(encryption_key),
            Some(bind),
            Some(data_dir),
            Some(session_ttl),
            Some(poll_interval),
            Some(max_bytes),
            Some(log),
            Some(log_format),
            Some(bot),
            Some(proxy),
        ) if problems.is_empty() => Ok(Settings {
            facebook: FacebookSettings {
                app_id,
                app_secret,
                redirect_uri: fb_redirect,
                webhook_address,
                verify_token,
                subscribed_fields,
                page_fields,
                graph_url: graph_url.trim_end_matches('/').to_owned(),
                dialog_url: dialog_url.trim_end_matches('/').to_owned(),
                graph_version,
            },
            shopify: ShopifySettings {
                api_key,
                api_secret,
                redirect_uri: shop_redirect,
                scopes,
                admin_url: admin_url.trim_end_matches('/').to_owned(),
            },
            state_token_secret: state_secret,
            encryption_key,
            bind,
            data_dir,
            session_ttl,
            poll_interval,
            webhook_max_bytes: max_bytes,
            log,
            log_format,
            bot,
            proxy,
        }),
        _ => Err(problems),
    }
}

struct Validator<'a> {
    sources: &'a Sources,
    problems: Vec<String>,
}

impl Validator<'_> {
    /// A variable that must end up with a value (from any source or its default).
    fn required<T>(&mut self, name: &'static str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        match self.sources.get(name) {
            None => {
                self.problems.push(format!("{name}: missing (needed by serve)"));
                None
            }
            Some((value, _)) => match parse(&value) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.problems.push(format!("{name}: {why}"));
                    None
                }
            },
        }
    }

    /// `PAGESYNC_ENCRYPTION_KEY`, else `PAGESYNC_ENCRYPTION_KEY_FILE`, else
    /// `$CREDENTIALS_DIRECTORY/encryption-key`.
    fn encryption_key(&mut self) -> Option<EncryptionKey> {
        let direct = self.sources.get("PAGESYNC_ENCRYPTION_KEY");
        let file = self.sources.get("PAGESYNC_ENCRYPTION_KEY_FILE");
        let (text, name) = match (direct, file) {
            (Some(_), Some(_)) => {
                self.problems
                    .push("PAGESYNC_ENCRYPTION_KEY: set either it or PAGESYNC_ENCRYPTION_KEY_FILE, not both".into());
                return None;
            }
            (Some((text, _)), None) => (text, "PAGESYNC_ENCRYPTION_KEY"),
            (None, Some((path, _))) => match std::fs::read_to_string(&path) {
                Ok(text) => (text, "PAGESYNC_ENCRYPTION_KEY_FILE"),
                Err(e) => {
                    self.problems.push(format!("PAGESYNC_ENCRYPTION_KEY_FILE: cannot read {path}: {}", e.kind()));
                    return None;
                }
            },
            (None, None) => {
                let credential = self.sources.credentials_dir.as_ref().map(|d| d.join("encryption-key"));
                match credential.map(|p| (std::fs::read_to_string(&p), p)) {
                    Some((Ok(text), _)) => (text, "PAGESYNC_ENCRYPTION_KEY ($CREDENTIALS_DIRECTORY/encryption-key)"),
                    Some((Err(e), p)) if e.kind() != std::io::ErrorKind::NotFound => {
                        self.problems.push(format!(
                            "PAGESYNC_ENCRYPTION_KEY: cannot read {}: {}",
                            p.display(),
                            e.kind()
                        ));
                        return None;
                    }
                    _ => {
                        self.problems.push(
                            "PAGESYNC_ENCRYPTION_KEY: missing (needed by serve; set it or PAGESYNC_ENCRYPTION_KEY_FILE, `pagesync keygen` makes one)"
                                .into(),
                        );
                        return None;
                    }
                }
            }
        };
        match EncryptionKey::from_base64(&text) {
            Ok(key) => Some(key),
            Err(_) => {
                self.problems
                    .push(format!("{name}: must be base64 of exactly 32 bytes (`pagesync keygen` prints one)"));
                None
            }
        }
    }
}

fn secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() { Err("must not be empty".into()) } else { Ok(Secret::new(s)) }
}

fn http_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s.to_owned()),
        _ => Err("must be an absolute http(s) URL".into()),
    }
}

fn page_fields(s: &str) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.{}(),".contains(&b);
    if s.is_empty() || !s.bytes().all(allowed) {
        return Err("must be a Graph field list (a-z, 0-9, _ . { } ( ) ,)".into());
    }
    if s.split([',', '{', '}', '.', '(', ')']).any(|f| f == "access_token") {
        return Err("must not ask for access_token (page_data.json never holds a token)".into());
    }
    Ok(s.to_owned())
}

/// Parses `90s`, `15m`, `24h`, `7d` (and `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || "must be a duration like 90s, 15m, 24h or 7d".to_string();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = s.split_at(unit_at);
    let n: u64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    };
    secs.map(Duration::from_secs).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Sources {
        let mut env = HashMap::new();
        for (k, v) in [
            ("FACEBOOK_APP_ID", "1234567890"),
            ("FACEBOOK_APP_SECRET", "app-secret-value"),
            ("FACEBOOK_REDIRECT_URI", "http://localhost:5000/facebook/callback"),
            ("FACEBOOK_WEBHOOK_ADDRESS", "https://example.com/facebook/webhook"),
            ("FACEBOOK_VERIFY_TOKEN", "verify-token-value"),
            ("SHOPIFY_API_KEY", "shopify-key"),
            ("SHOPIFY_API_SECRET", "shopify-secret-value"),
            ("SHOPIFY_REDIRECT_URI", "http://localhost:5000/shopify/callback"),
            ("STATE_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
            ("PAGESYNC_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        Sources { env, ..Sources::default() }
    }

    #[test]
    fn a_full_environment_loads_with_defaults() {
        let s = load(&full()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:5000");
        assert_eq!(s.facebook.graph_version, "v25.0");
        assert_eq!(s.facebook.subscribed_fields, vec!["name", "category"]);
        assert_eq!(s.session_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(s.poll_interval, Some(Duration::from_secs(86_400)));
        assert_eq!(s.webhook_max_bytes, 1_048_576);
    }

    #[test]
    fn flags_beat_env_beat_dotenv_beat_defaults() {
        let mut src = full();
        src.dotenv.insert("PAGESYNC_BIND".into(), "127.0.0.1:1".into());
        assert_eq!(src.get("PAGESYNC_BIND").unwrap(), ("127.0.0.1:1".into(), Origin::DotEnv));
        src.env.insert("PAGESYNC_BIND".into(), "127.0.0.1:2".into());
        assert_eq!(src.get("PAGESYNC_BIND").unwrap(), ("127.0.0.1:2".into(), Origin::Env));
        src.flags.insert("PAGESYNC_BIND".into(), "127.0.0.1:3".into());
        assert_eq!(src.get("PAGESYNC_BIND").unwrap(), ("127.0.0.1:3".into(), Origin::Flag));
        assert_eq!(src.get("PAGESYNC_LOG").unwrap(), ("info".into(), Origin::Default));
    }

    #[test]
    fn every_problem_is_reported_once_per_variable_without_values() {
        let mut src = full();
        src.env.insert("FACEBOOK_APP_ID".into(), "abc-secretish".into());
        src.env.remove("FACEBOOK_VERIFY_TOKEN");
        src.env.insert("STATE_TOKEN_SECRET".into(), "short-secret-value".into());
        src.env.insert("PAGESYNC_POLL_INTERVAL".into(), "soon".into());
        let problems = load(&src).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("FACEBOOK_APP_ID:"));
        assert!(problems.iter().any(|p| p.starts_with("FACEBOOK_VERIFY_TOKEN: missing")));
        assert!(problems.iter().any(|p| p.starts_with("STATE_TOKEN_SECRET:")));
        assert!(problems.iter().any(|p| p.starts_with("PAGESYNC_POLL_INTERVAL:")));
        for p in &problems {
            assert!(!p.contains("secretish") && !p.contains("short-secret-value"), "value leaked: {p}");
        }
    }

    #[test]
    fn an_empty_verify_token_is_refused() {
        let mut src = full();
        src.env.insert("FACEBOOK_VERIFY_TOKEN".into(), String::new());
        let problems = load(&src).unwrap_err();
        assert_eq!(problems, vec!["FACEBOOK_VERIFY_TOKEN: must not be empty".to_string()]);
    }

    #[test]
    fn the_key_comes_from_a_file_or_the_credentials_dir() {
        let dir = tempfile::tempdir().unwrap();
        let key = EncryptionKey::generate().unwrap().to_base64();
        std::fs::write(dir.path().join("encryption-key"), format!("{key}\n")).unwrap();

        let mut src = full();
        src.env.remove("PAGESYNC_ENCRYPTION_KEY");
        src.credentials_dir = Some(dir.path().to_owned());
        assert!(load(&src).is_ok());

        src.credentials_dir = None;
        src.env.insert("PAGESYNC_ENCRYPTION_KEY_FILE".into(), dir.path().join("encryption-key").display().to_string());
        assert!(load(&src).is_ok());

        src.env.insert("PAGESYNC_ENCRYPTION_KEY".into(), key);
        let problems = load(&src).unwrap_err();
        assert!(problems[0].contains("not both"), "{problems:?}");
    }

    #[test]
    fn a_page_field_list_asking_for_tokens_is_refused() {
        let mut src = full();
        src.env.insert("FACEBOOK_PAGE_FIELDS".into(), "id,name,access_token".into());
        assert!(load(&src).unwrap_err()[0].starts_with("FACEBOOK_PAGE_FIELDS:"));
    }

    #[test]
    fn proxy_variables_are_read_and_bad_ones_reported_by_name() {
        let mut src = full();
        src.env.insert("HTTPS_PROXY".into(), "http://user:s3cret@proxy.example:3128".into());
        src.dotenv.insert("NO_PROXY".into(), ".internal.example".into());
        let settings = load(&src).unwrap();
        let target = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(settings.proxy.proxy_for(&target("https://graph.facebook.com/")).is_some());
        assert!(settings.proxy.proxy_for(&target("https://api.internal.example/")).is_none());
        assert!(settings.proxy.proxy_for(&target("https://127.0.0.1:5000/")).is_none());
        assert!(!format!("{settings:?}").contains("s3cret"));

        src.env.insert("https_proxy".into(), "socks5://proxy.example:1080".into());
        src.env.insert("HTTPS_PROXY".into(), String::new());
        src.flags.insert("NO_PROXY".into(), "10.0.0.0/40".into());
        let problems = load(&src).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("https_proxy: "), "{problems:?}");
        assert!(problems[1].starts_with("NO_PROXY: entry 1"), "{problems:?}");
    }

    #[test]
    fn durations_are_humane() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "7", "d", "7w", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dotenv_files_are_read_and_broken_ones_reported_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.env");
        std::fs::write(&good, "PAGESYNC_BIND=127.0.0.1:7000\nOTHER=ignored\n").unwrap();
        let mut src = Sources::default();
        src.read_dotenv(&good);
        assert_eq!(src.dotenv.get("PAGESYNC_BIND").map(String::as_str), Some("127.0.0.1:7000"));
        assert!(!src.dotenv.contains_key("OTHER"));

        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, "FACEBOOK_APP_SECRET='hunter2\n").unwrap();
        let mut src = Sources::default();
        src.read_dotenv(&bad);
        assert_eq!(src.problems.len(), 1);
        assert!(!src.problems[0].contains("hunter2"));
    }
}
