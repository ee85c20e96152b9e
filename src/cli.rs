//! The command line (docs/contract.md §6): subcommands plus one flag per configuration variable,
//! generated from [`config::VARS`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use pagesync_actors::EncryptionKey;

use crate::clock::format_unix;
use crate::config::{self, Origin, Sources};

/// Exit status of `serve` when the configuration is unusable (sysexits' EX_CONFIG), so
/// a unit can say `RestartPreventExitStatus=78` instead of restarting in a loop.
pub const EXIT_CONFIG: u8 = 78;

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap checks names only when a command is parsed, and only in debug builds:
        // a flag of a configuration variable clashing with a command's own flag must
        // fail here, not in an operator's shell.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(super::format_age(0), "0s");
        assert_eq!(super::format_age(61), "1m 1s");
        assert_eq!(super::format_age(7_260), "2h 1m");
        assert_eq!(super::format_age(90_000), "1d 1h");
    }
}

#[derive(Debug, Parser)]
#[command(name = "pagesync", version, about = "Keeps Facebook Page data in sync for Messenger sales bots")]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigFlags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Run the daemon with a built-in emulator of the Meta and Shopify endpoints on
    /// loopback, generated secrets and its own data dir, so that the whole flow works
    /// offline in a browser; prints the URL to open.
    ///
    /// Takes --bind (default 127.0.0.1:5000, or a free port when that is taken) and
    /// --data-dir (default: a new folder under the system temp dir, kept after exit);
    /// every other configuration is generated.
    Sandbox,
    /// Validate the configuration, print every problem, exit 0 or 1.
    CheckConfig,
    /// Print a new base64 encryption key for PAGESYNC_ENCRYPTION_KEY (or, with
    /// --events-secret, a new PAGESYNC_EVENTS_SECRET).
    Keygen {
        /// Print a `whsec_` secret for signing events instead.
        #[arg(long)]
        events_secret: bool,
    },
    /// List Pages: id, name, owner UUID, subscribed, last sync, status.
    Pages {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Refresh Pages now (through the running daemon when there is one).
    Resync {
        /// Page ids to refresh.
        pages: Vec<String>,
        /// Refresh every connected Page.
        #[arg(long, conflicts_with = "pages")]
        all: bool,
    },
    /// Webhook tools.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Consumer API keys (`/api/v1`): create, list, revoke.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Forwards and events for the bot: pending and dead-lettered, per kind, with
    /// attempts, last error and age. `outbox retry` puts dead-lettered items back in line.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxCommand>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every stored token under a new encryption key (pagesync stopped).
    RotateKey {
        /// File holding the new key (base64, as `pagesync keygen` prints it).
        #[arg(long, value_name = "PATH")]
        new_key_file: std::path::PathBuf,
    },
    /// Write a consistent backup of the store and the Page files to a new file (through
    /// the running daemon when there is one).
    Backup {
        /// The file to write (it must not exist).
        path: std::path::PathBuf,
    },
    /// Restore a backup into a data dir that has no store and no Page files yet (no
    /// daemon may run on it).
    Restore {
        /// The backup file.
        path: std::path::PathBuf,
    },
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
    },
    /// Keys by name, scopes, created, last used (never the key).
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; the next request with it is refused.
    Revoke { name: String },
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
    },
}

/// Values given as flags, keyed by variable name.
#[derive(Debug, Default, Clone)]
pub struct ConfigFlags(pub HashMap<String, String>);

impl FromArgMatches for ConfigFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = HashMap::new();
        for var in config::VARS {
            if let Some(value) = matches.get_one::<String>(var.name) {
                flags.insert(var.name.to_owned(), value.clone());
            }
        }
        Ok(ConfigFlags(flags))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for ConfigFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        config::VARS.iter().fold(cmd, |cmd, var| {
            cmd.arg(
                Arg::new(var.name)
                    .long(var.flag)
                    .value_name("VALUE")
                    .help(format!("{} [env: {}]", var.help, var.name))
                    .help_heading("Configuration (flag > environment > .env > default)")
                    .global(true),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `pagesync keygen [--events-secret]`.
pub fn keygen(events_secret: bool) -> ExitCode {
    if events_secret {
        use base64::Engine as _;
        // 32 bytes from the OS random source: inside the 24-64 Standard Webhooks asks for.
        let bytes: [u8; 32] = rand::random();
        println!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes));
        return ExitCode::SUCCESS;
    }
    match EncryptionKey::generate() {
        Ok(key) => {
            println!("{}", key.to_base64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pagesync rotate-key --new-key-file PATH`: with no daemon on the store, re-seals
/// every token under the new key (see docs/operations.md, "Rotate the encryption key").
pub fn rotate_key(sources: &Sources, new_key_file: &std::path::Path) -> ExitCode {
    let settings = match config::load(sources) {
        Ok(s) => s,
        Err(problems) => {
            report(&problems);
            return ExitCode::FAILURE;
        }
    };
    let new_key = match std::fs::read_to_string(new_key_file) {
        Ok(text) => match EncryptionKey::from_base64(&text) {
            Ok(key) => key,
            Err(e) => {
                eprintln!("error: --new-key-file {}: {e}", new_key_file.display());
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("error: --new-key-file {}: cannot be read: {e}", new_key_file.display());
            return ExitCode::FAILURE;
        }
    };
    if new_key.to_base64() == settings.encryption_key.to_base64() {
        eprintln!("error: the new key is the key in use; generate one with `pagesync keygen`");
        return ExitCode::FAILURE;
    }
    let db = settings.data_dir.join("db");
    let store = match pagesync_actors::Store::open(&pagesync_actors::StoreConfig::new(&db)) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}\n(stop pagesync before rotating the key)");
            return ExitCode::FAILURE;
        }
    };
    let old = pagesync_actors::Sealer::new(&settings.encryption_key);
    let new = pagesync_actors::Sealer::new(&new_key);
    let result = pagesync_actors::reseal_all(&store, &old, &new);
    let closed = store.close();
    match (result, closed) {
        (Ok(count), Ok(())) => {
            println!(
                "re-sealed {count} token record(s) under the new key. Install the new key where pagesync \
                 reads it (PAGESYNC_ENCRYPTION_KEY, PAGESYNC_ENCRYPTION_KEY_FILE or the systemd credential), \
                 then start pagesync; keep the old key until you have checked it."
            );
            ExitCode::SUCCESS
        }
        (Err(e @ pagesync_actors::messages::VaultError::Seal(_)), _) => {
            eprintln!("error: nothing was changed: {e} (is the configured key the one the store was sealed with?)");
            ExitCode::FAILURE
        }
        (Err(e), _) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        (Ok(_), Err(e)) => {
            eprintln!("error: the records were re-sealed but the store did not close cleanly: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pagesync restore PATH`: into the data dir, which needs no other setting; refused
/// while a daemon answers on the data dir's socket. As root, done as the data dir's
/// owner.
pub fn restore(sources: &Sources, path: &Path) -> ExitCode {
    let data_dir = sources.get("PAGESYNC_DATA_DIR").map(|(d, _)| PathBuf::from(d)).unwrap_or_default();
    let socket = crate::control::socket_path(&data_dir);
    let running =
        actix_web::rt::System::new().block_on(crate::control::ask(&socket, &crate::control::Request::Pages)).is_ok();
    if running {
        eprintln!("error: a pagesync is running on {}; stop it before restoring", data_dir.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = crate::privilege::become_owner_of(&data_dir) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match pagesync_actors::backup::restore_backup(path, &data_dir) {
        Ok(summary) => {
            println!(
                "restored {} into {}: {} trees, {} records, {} Page files",
                path.display(),
                data_dir.display(),
                summary.trees,
                summary.records,
                summary.page_files
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pagesync check-config`: the same report `serve` gives, then 0 or 1.
pub fn check_config(sources: &Sources) -> ExitCode {
    match config::load(sources) {
        Ok(settings) => {
            let mut from = [0usize; 7];
            for var in config::VARS {
                if let Some((_, origin)) = sources.get(var.name) {
                    from[origin as usize] += 1;
                }
            }
            println!(
                "configuration ok: {} from flags, {} from the environment, {} from .env, {} from files, {} from \
                 systemd credentials, {} defaults ({}); would listen on {} with data in {}{}",
                from[Origin::Flag as usize],
                from[Origin::Env as usize],
                from[Origin::DotEnv as usize],
                from[Origin::File as usize],
                from[Origin::Credential as usize],
                from[Origin::Default as usize],
                sources.dotenv_summary(),
                settings.bind,
                settings.data_dir.display(),
                if from[Origin::StateDirectory as usize] > 0 { " ($STATE_DIRECTORY)" } else { "" },
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            report(&problems);
            ExitCode::FAILURE
        }
    }
}

/// `pagesync webhook send`: signs with FACEBOOK_APP_SECRET, posts, prints the answer.
pub fn webhook_send(sources: &Sources, page: &str, field: &str, value: Option<&str>, url: Option<&str>) -> ExitCode {
    let page = match pagesync_actors::PageId::parse(page) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --page: {e}");
            return ExitCode::from(2);
        }
    };
    let Some((secret, _)) = sources.get("FACEBOOK_APP_SECRET").filter(|(s, _)| !s.is_empty()) else {
        eprintln!("config error: FACEBOOK_APP_SECRET: missing (needed to sign the delivery)");
        return ExitCode::FAILURE;
    };
    let target = match url.map(str::to_owned).or_else(|| sources.get("FACEBOOK_WEBHOOK_ADDRESS").map(|(v, _)| v)) {
        Some(t) => t,
        None => {
            eprintln!("config error: FACEBOOK_WEBHOOK_ADDRESS: missing (or pass --url)");
            return ExitCode::FAILURE;
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
            return ExitCode::FAILURE;
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
            println!("HTTP {}", status.as_u16());
            println!("{text}");
            if status.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
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
