//! The command line (docs/contract.md §6, docs/cli.md): subcommands, each with the
//! configuration flags it reads (see [`flags`]), generated from [`config::VARS`].

pub mod exit;
pub mod flags;
pub mod generate;
pub mod status;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pagesync_actors::EncryptionKey;
use serde::Serialize;

use self::flags::Flags;
pub use self::store::{restore, rotate_key};
use crate::clock::format_unix;
use crate::config::{self, Origin, Sources};

/// Exit status of `serve` when the configuration is unusable; see [`exit::CONFIG`].
pub const EXIT_CONFIG: u8 = exit::CONFIG;

#[cfg(test)]
mod tests;

#[derive(Debug, Parser)]
#[command(
    name = "pagesync",
    version,
    about = "Keeps Facebook Page data in sync for Messenger sales bots",
    // The flags of the bare `pagesync` (which runs `serve`) are not the subcommands'.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The configuration of the bare `pagesync`, which runs `serve`.
    #[command(flatten)]
    pub config: Flags<flags::TopLevel>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve {
        #[command(flatten)]
        config: Flags<flags::Daemon>,
    },
    /// Run the daemon with a built-in emulator of the Meta and Shopify endpoints on
    /// loopback, generated secrets and its own data dir, so that the whole flow works
    /// offline in a browser; prints the URL to open.
    ///
    /// Takes --bind (default 127.0.0.1:5000, or a free port when that is taken) and
    /// --data-dir (default: a new folder under the system temp dir, kept after exit);
    /// every other configuration is generated.
    Sandbox {
        #[command(flatten)]
        config: Flags<flags::Sandbox>,
    },
    /// Validate the configuration, print every problem, exit 0 or 1.
    CheckConfig {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Flags<flags::Daemon>,
    },
    /// Print a new base64 encryption key for PAGESYNC_ENCRYPTION_KEY (or, with
    /// --events-secret, a new PAGESYNC_EVENTS_SECRET).
    Keygen {
        /// Print a `whsec_` secret for signing events instead.
        #[arg(long)]
        events_secret: bool,
        /// One JSON object instead of the bare value.
        #[arg(long)]
        json: bool,
    },
    /// List Pages: id, name, owner UUID, subscribed, last sync, status.
    Pages {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Flags<flags::Store>,
    },
    /// Refresh Pages now (through the running daemon when there is one).
    Resync {
        /// Page ids to refresh.
        pages: Vec<String>,
        /// Refresh every connected Page.
        #[arg(long, conflicts_with = "pages")]
        all: bool,
        /// One JSON array instead of a line per Page.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Flags<flags::Store>,
    },
    /// One screen for an operator: the daemon, Pages by status, inbox and outbox
    /// depth, the stalest Page, the latest errors. Exit 0 whenever it could report,
    /// also when no daemon runs.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Flags<flags::Status>,
    },
    /// Webhook tools.
    Webhook {
        #[command(subcommand)]
        action: WebhookCommand,
        #[command(flatten)]
        config: Flags<flags::Webhook>,
    },
    /// Consumer API keys (`/api/v1`): create, list, revoke.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyCommand,
        #[command(flatten)]
        config: Flags<flags::Store>,
    },
    /// Forwards and events for the bot: pending and dead-lettered, per kind, with
    /// attempts, last error and age. `outbox retry` puts dead-lettered items back in line.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxCommand>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Flags<flags::Store>,
    },
    /// Re-seal every stored token under a new encryption key (pagesync stopped).
    RotateKey {
        /// File holding the new key (base64, as `pagesync keygen` prints it).
        #[arg(long, value_name = "PATH")]
        new_key_file: std::path::PathBuf,
        #[command(flatten)]
        config: Flags<flags::Store>,
    },
    /// Write a consistent backup of the store and the Page files to a new file (through
    /// the running daemon when there is one).
    Backup {
        /// The file to write (it must not exist).
        path: std::path::PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Flags<flags::Store>,
    },
    /// Restore a backup into a data dir that has no store and no Page files yet (no
    /// daemon may run on it).
    Restore {
        /// The backup file.
        path: std::path::PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Flags<flags::Store>,
    },
    /// Print a shell completion script for SHELL on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout: `pagesync man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it once (it is stored only as a hash).
    Create {
        /// 1 to 64 of A-Z a-z 0-9 _ . - ; unique.
        name: String,
        /// Comma-separated: pages:read, tokens:read (independent of each other).
        #[arg(long, value_name = "SCOPES")]
        scope: String,
        /// One JSON object (the key and its record) instead of the bare key.
        #[arg(long)]
        json: bool,
    },
    /// Keys by name, scopes, created, last used (never the key).
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; the next request with it is refused.
    Revoke {
        name: String,
        /// The revoked key's record as one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Put dead-lettered items back in line (named ids, or all of them).
    Retry {
        /// Ids as `pagesync outbox` shows them.
        ids: Vec<String>,
        /// Every dead-lettered item.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
        /// One JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Send a correctly signed sample delivery (both signature headers) and print the answer.
    Send {
        /// The Page id the delivery names.
        #[arg(long)]
        page: String,
        /// The changed field.
        #[arg(long, default_value = "name")]
        field: String,
        /// The field's new value (omitted from the delivery when not given).
        #[arg(long)]
        value: Option<String>,
        /// Where to send it (default: FACEBOOK_WEBHOOK_ADDRESS).
        #[arg(long)]
        url: Option<String>,
        /// One JSON object instead of the status line and the body.
        #[arg(long)]
        json: bool,
    },
}

/// `pagesync keygen --json`: the value and the variable it is for.
#[derive(Debug, Serialize)]
pub struct KeygenOutput {
    /// `PAGESYNC_ENCRYPTION_KEY` or `PAGESYNC_EVENTS_SECRET`.
    pub variable: &'static str,
    pub value: String,
}

/// `pagesync keygen [--events-secret] [--json]`.
pub fn keygen(events_secret: bool, json: bool) -> ExitCode {
    let output = if events_secret {
        use base64::Engine as _;
        // 32 bytes from the OS random source: inside the 24-64 Standard Webhooks asks for.
        let bytes: [u8; 32] = rand::random();
        KeygenOutput {
            variable: "PAGESYNC_EVENTS_SECRET",
            value: format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    } else {
        match EncryptionKey::generate() {
            Ok(key) => KeygenOutput { variable: "PAGESYNC_ENCRYPTION_KEY", value: key.to_base64() },
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    if json {
        return print_json(&output);
    }
    println!("{}", output.value);
    ExitCode::SUCCESS
}

/// `pagesync check-config --json`.
#[derive(Debug, Serialize)]
pub struct CheckConfigOutput {
    /// No problems: `serve` would start with this configuration.
    pub ok: bool,
    /// One line per problem, naming the variable, never a value.
    pub problems: Vec<String>,
    /// How many variables came from each source (`flag`, `env`, `dotenv`, `file`,
    /// `credential`, `state_directory`, `default`).
    pub sources: SourceCounts,
    /// The `.env` file read, if any.
    pub dotenv_file: Option<String>,
    /// The address `serve` would listen on; `null` when there are problems.
    pub bind: Option<String>,
    /// The data dir `serve` would use; `null` when there are problems.
    pub data_dir: Option<String>,
}

/// Variables per source, for `check-config`.
#[derive(Debug, Default, Serialize)]
pub struct SourceCounts {
    pub flag: usize,
    pub env: usize,
    pub dotenv: usize,
    /// Secrets read from the file their `NAME_FILE` names.
    pub file: usize,
    /// Secrets read from `$CREDENTIALS_DIRECTORY`.
    pub credential: usize,
    /// `PAGESYNC_DATA_DIR` from `$STATE_DIRECTORY`.
    pub state_directory: usize,
    pub default: usize,
}

/// `pagesync check-config [--json]`: the same report `serve` gives, then 0 or 1.
pub fn check_config(sources: &Sources, json: bool) -> ExitCode {
    let mut counts = SourceCounts::default();
    for var in config::VARS {
        match sources.get(var.name).map(|(_, origin)| origin) {
            Some(Origin::Flag) => counts.flag += 1,
            Some(Origin::Env) => counts.env += 1,
            Some(Origin::DotEnv) => counts.dotenv += 1,
            Some(Origin::File) => counts.file += 1,
            Some(Origin::Credential) => counts.credential += 1,
            Some(Origin::StateDirectory) => counts.state_directory += 1,
            Some(Origin::Default) => counts.default += 1,
            None => {}
        }
    }
    let loaded = config::load(sources);
    let dotenv_file = sources.dotenv_file.as_ref().map(|p| p.display().to_string());
    if json {
        let output = match &loaded {
            Ok(settings) => CheckConfigOutput {
                ok: true,
                problems: Vec::new(),
                sources: counts,
                dotenv_file,
                bind: Some(settings.bind.to_string()),
                data_dir: Some(settings.data_dir.display().to_string()),
            },
            Err(problems) => CheckConfigOutput {
                ok: false,
                problems: problems.clone(),
                sources: counts,
                dotenv_file,
                bind: None,
                data_dir: None,
            },
        };
        let printed = print_json(&output);
        return if output.ok { printed } else { exit::code(exit::FAILURE) };
    }
    match loaded {
        Ok(settings) => {
            println!(
                "configuration ok: {} from flags, {} from the environment, {} from .env, {} from files, {} from \
                 systemd credentials, {} defaults ({}); would listen on {} with data in {}{}",
                counts.flag,
                counts.env,
                counts.dotenv,
                counts.file,
                counts.credential,
                counts.default,
                sources.dotenv_summary(),
                settings.bind,
                settings.data_dir.display(),
                if counts.state_directory > 0 { " ($STATE_DIRECTORY)" } else { "" },
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            report(&problems);
            exit::code(exit::FAILURE)
        }
    }
}

/// What `pagesync webhook send` sends.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSample<'a> {
    /// The Page id (checked here: digits only).
    pub page: &'a str,
    pub field: &'a str,
    pub value: Option<&'a str>,
    /// Overrides FACEBOOK_WEBHOOK_ADDRESS.
    pub url: Option<&'a str>,
}

/// `pagesync webhook send --json`: where it went and what came back.
#[derive(Debug, Serialize)]
pub struct WebhookSendOutput {
    pub url: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The answer's body as text.
    pub body: String,
}

/// `pagesync webhook send`: signs with FACEBOOK_APP_SECRET, posts, prints the answer.
pub fn webhook_send(sources: &Sources, sample: &WebhookSample<'_>, json: bool) -> ExitCode {
    let WebhookSample { page, field, value, url } = *sample;
    let page = match pagesync_actors::PageId::parse(page) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --page: {e}");
            return exit::code(exit::USAGE);
        }
    };
    let Some((secret, _)) = sources.get("FACEBOOK_APP_SECRET").filter(|(s, _)| !s.is_empty()) else {
        eprintln!("config error: FACEBOOK_APP_SECRET: missing (needed to sign the delivery)");
        return exit::code(exit::CONFIG);
    };
    let target = match url.map(str::to_owned).or_else(|| sources.get("FACEBOOK_WEBHOOK_ADDRESS").map(|(v, _)| v)) {
        Some(t) => t,
        None => {
            eprintln!("config error: FACEBOOK_WEBHOOK_ADDRESS: missing (or pass --url)");
            return exit::code(exit::CONFIG);
        }
    };
    let mut change = serde_json::json!({ "field": field });
    if let Some(value) = value {
        change["value"] = serde_json::json!(value);
    }
    let time = crate::clock::unix_now();
    let body = serde_json::json!({
        "object": "page",
        "entry": [{ "id": page.as_str(), "time": time, "changes": [change] }],
    })
    .to_string();
    let sha256 = crate::verify::sign_sha256(&secret, body.as_bytes());
    let sha1 = crate::verify::sign_sha1(&secret, body.as_bytes());
    let proxy = match crate::config::proxy::ProxySettings::from_lookup(|name| sources.get(name).map(|(v, _)| v)) {
        Ok(proxy) => proxy,
        Err(problems) => {
            report(&problems);
            return exit::code(exit::CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let client = crate::clients::http::http_client(&proxy)?;
        let response = client
            .post(&target)
            .header("Content-Type", "application/json")
            .header("X-Hub-Signature-256", sha256)
            .header("X-Hub-Signature", sha1)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        Ok::<_, reqwest::Error>((status, text))
    });
    match result {
        Ok((status, text)) => {
            if json {
                let printed = print_json(&WebhookSendOutput { url: target, status: status.as_u16(), body: text });
                return if status.is_success() { printed } else { exit::code(exit::FAILURE) };
            }
            println!("HTTP {}", status.as_u16());
            println!("{text}");
            if status.is_success() { ExitCode::SUCCESS } else { exit::code(exit::FAILURE) }
        }
        Err(e) => {
            eprintln!("error: could not deliver to {target}: {}", e.without_url());
            ExitCode::FAILURE
        }
    }
}

/// Prints `pages` rows as a table.
pub fn print_pages(rows: &[crate::control::PageRow]) {
    println!(
        "{:<20} {:<30} {:<36} {:<10} {:<12} {:<20} STATUS",
        "PAGE", "NAME", "OWNER", "SUBSCRIBED", "WEBHOOKS", "LAST SYNC (UTC)"
    );
    for row in rows {
        println!(
            "{:<20} {:<30} {:<36} {:<10} {:<12} {:<20} {}",
            row.id,
            row.name.as_deref().unwrap_or("-"),
            row.owner,
            if row.subscribed { "yes" } else { "no" },
            row.subscription,
            row.last_sync.map(format_unix).unwrap_or_else(|| "never".into()),
            row.status
        );
    }
}

/// Prints `value` as pretty JSON; exit status 1 if that fails.
pub fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pages:read,tokens:read`.
pub fn scope_list(scopes: &[pagesync_actors::api_keys::Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// Prints `api-key list` rows as a table.
pub fn print_api_keys(keys: &[pagesync_actors::api_keys::ApiKeyInfo]) {
    println!("{:<24} {:<24} {:<20} {:<20} ID", "NAME", "SCOPES", "CREATED (UTC)", "LAST USED (UTC)");
    for key in keys {
        println!(
            "{:<24} {:<24} {:<20} {:<20} {}",
            key.name,
            scope_list(&key.scopes),
            format_unix(key.created),
            key.last_used.map(format_unix).unwrap_or_else(|| "never".into()),
            key.id
        );
    }
}

/// `3d 4h`, `12m 5s`, `40s`: an age at a glance.
pub fn format_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Prints `outbox`: counts per kind, then the items.
pub fn print_outbox(report: &crate::control::OutboxReport) {
    println!("forward: {} pending, {} dead", report.pending.forward, report.dead.forward);
    println!("event:   {} pending, {} dead", report.pending.event, report.dead.event);
    if report.items.is_empty() {
        return;
    }
    println!();
    println!("{:<36} {:<8} {:<8} {:<24} {:>8} {:>8}  LAST ERROR", "ID", "KIND", "STATE", "LANE", "ATTEMPTS", "AGE");
    for item in &report.items {
        println!(
            "{:<36} {:<8} {:<8} {:<24} {:>8} {:>8}  {}",
            item.id,
            item.kind,
            item.state,
            item.lane,
            item.attempts,
            format_age(item.age_seconds),
            item.last_error.as_deref().unwrap_or("-")
        );
    }
}

/// Prints configuration problems, one per line, on stderr.
pub fn report(problems: &[String]) {
    for problem in problems {
        eprintln!("config error: {problem}");
    }
}
