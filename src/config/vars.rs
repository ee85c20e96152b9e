//! The table of every variable pagesync reads: the one place that names each, with
//! its flag, default and meaning. The command line's flags and the `check-config`
//! summary are generated from it; the section parsers in [`super::sections`] read the
//! same names.

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

/// Every variable pagesync reads, grouped as in docs/contract.md §2 and the section
/// parsers: Facebook, Shopify, the daemon, the bot, logging.
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
        name: "FACEBOOK_APP_SECRET_FILE",
        flag: "facebook-app-secret-file",
        default: None,
        required: false,
        help: "file holding the Meta app secret instead",
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
        name: "FACEBOOK_VERIFY_TOKEN_FILE",
        flag: "facebook-verify-token-file",
        default: None,
        required: false,
        help: "file holding the verify token instead",
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
        name: "SHOPIFY_API_SECRET_FILE",
        flag: "shopify-api-secret-file",
        default: None,
        required: false,
        help: "file holding the Shopify API secret instead",
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
        name: "STATE_TOKEN_SECRET_FILE",
        flag: "state-token-secret-file",
        default: None,
        required: false,
        help: "file holding the state token secret instead",
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
        name: "PAGESYNC_ENV_FILE",
        flag: "env-file",
        default: None,
        required: false,
        help: ".env file to read instead of ./.env (./.env is never read when the working directory is /)",
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
        // Not `--events-secret`: that is `pagesync keygen --events-secret` (docs/contract.md §6).
        flag: "events-signing-secret",
        default: None,
        required: false,
        help: "whsec_ + base64 of 24-64 random bytes (pagesync keygen --events-secret); signs events",
    },
    Var {
        name: "PAGESYNC_EVENTS_SECRET_FILE",
        flag: "events-signing-secret-file",
        default: None,
        required: false,
        help: "file holding the events secret instead",
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
