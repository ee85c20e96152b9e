//! `pagesync sandbox`: the daemon wired to a built-in emulator of Meta and Shopify on
//! loopback, so that the whole merchant flow works offline in a browser.
//!
//! [`Sandbox::start`] generates a fresh configuration (app id, secrets, verify token,
//! state secret, encryption key, events secret), binds the daemon, the [`emulator`]
//! and the [`demo_bot`], points the daemon's Graph, dialog and Shopify admin URLs at
//! the emulator and its relay and events at the demo bot, starts the three servers in
//! the current actix System and waits until the daemon answers `/readyz`. Nothing is
//! read from the environment or `.env` for Meta and Shopify: the sandbox works
//! whatever the shell has.
//!
//! The generated configuration is written as a `.env` in a folder beside the data dir
//! (never inside it: nothing under the data dir may hold a secret), so that
//! `cd THAT_FOLDER && pagesync webhook send --page ID` and `pagesync pages` work
//! against the running sandbox. See docs/sandbox.md.
//!
//! This module is not on any production code path: `serve` never reaches it.

pub mod demo_bot;
mod files;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use pagesync_actors::EncryptionKey;
use tokio::sync::oneshot;

use crate::config::{self, EventsKey, LogFormat, Sources};
use crate::emulator::{DEMO_PAGES, DEMO_SHOP, Emulator, EmulatorConfig};
use crate::startup::{Application, Tuning};
use demo_bot::{DemoBot, DemoBotConfig};
use files::{config_dir_for, encryption_key_for, prepare_data_dir, write_env};

/// Where the daemon listens when `--bind` is not given (the documented default), if free.
pub const DEFAULT_BIND: &str = "127.0.0.1:5000";

/// The Page fields the demo bot needs (`PAGESYNC_BOT_FIELDS`), as a Messenger sales bot
/// would name them: customer messages and button taps.
const BOT_FIELDS: &str = "messages,messaging_postbacks";

/// How long the daemon may take to answer `/readyz` after it is built.
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// The variables `pagesync sandbox` takes from its command line: the only
/// configuration flags `sandbox` offers (`cli::flags::Sandbox`); any other in the map
/// [`main`] gets is ignored with a warning.
pub const HONOURED_FLAGS: [&str; 4] = ["PAGESYNC_BIND", "PAGESYNC_DATA_DIR", "PAGESYNC_LOG", "PAGESYNC_LOG_FORMAT"];

/// How to start a sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// The daemon's address; `None`: 127.0.0.1:5000, or a free loopback port when
    /// that is taken. Port 0 picks a free port.
    pub bind: Option<SocketAddr>,
    /// The data dir (created if missing); `None`: a new folder under the system temp
    /// dir, kept after exit.
    pub data_dir: Option<PathBuf>,
    /// The daemon's internal knobs.
    pub tuning: Tuning,
}

/// A running sandbox: the daemon, the emulator and the demo bot, all serving.
pub struct Sandbox {
    /// `http://127.0.0.1:D`, no trailing slash.
    daemon_url: String,
    emulator: Emulator,
    bot: DemoBot,
    data_dir: PathBuf,
    /// The generated `.env`, beside the data dir.
    config_file: PathBuf,
    /// Tells the daemon to stop gracefully.
    stop: Option<oneshot::Sender<()>>,
    /// The daemon's `run_until_stopped` result.
    finished: Option<oneshot::Receiver<anyhow::Result<()>>>,
    emulator_server: actix_web::dev::ServerHandle,
    emulator_task: Option<actix_web::rt::task::JoinHandle<std::io::Result<()>>>,
    bot_server: actix_web::dev::ServerHandle,
    bot_task: Option<actix_web::rt::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("daemon_url", &self.daemon_url)
            .field("emulator", &self.emulator)
            .field("bot", &self.bot)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// The generated values that are not URLs.
struct Generated {
    app_id: String,
    app_secret: String,
    verify_token: String,
    shopify_key: String,
    shopify_secret: String,
    state_secret: String,
    encryption_key: EncryptionKey,
    /// `PAGESYNC_EVENTS_SECRET`: `whsec_` and the base64 of 32 random bytes.
    events_secret: String,
}

impl Generated {
    fn new(encryption_key: EncryptionKey) -> Generated {
        let hex = |n: usize| {
            let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
            hex::encode(bytes)
        };
        Generated {
            // Meta app ids are 15-16 digits.
            app_id: rand::random_range(100_000_000_000_000u64..1_000_000_000_000_000).to_string(),
            app_secret: hex(16),
            verify_token: hex(24),
            shopify_key: hex(16),
            shopify_secret: format!("shpss_{}", hex(16)),
            state_secret: hex(32),
            encryption_key,
            events_secret: format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
            ),
        }
    }
}

impl Sandbox {
    /// Starts the emulator and the daemon, and returns once the daemon is ready. Must
    /// run inside an actix System (the daemon's actors need one).
    pub async fn start(options: SandboxOptions) -> anyhow::Result<Sandbox> {
        crate::clients::http::install_crypto_provider();
        let data_dir = prepare_data_dir(options.data_dir)?;
        let config_dir = config_dir_for(&data_dir)?;
        let config_file = config_dir.join(".env");
        let encryption_key = encryption_key_for(&data_dir, &config_file)?;

        let listener = bind_daemon(options.bind)?;
        let daemon_addr = listener.local_addr().context("the daemon's listener has no address")?;
        let daemon_url = loopback_url(daemon_addr);
        let emulator_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind the emulator")?;
        let emulator_url =
            loopback_url(emulator_listener.local_addr().context("the emulator's listener has no address")?);
        let bot_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind the demo bot")?;
        let bot_url = loopback_url(bot_listener.local_addr().context("the demo bot's listener has no address")?);

        let generated = Generated::new(encryption_key);
        let vars = daemon_vars(&generated, &daemon_url, &emulator_url, &bot_url, daemon_addr, &data_dir);
        let sources =
            Sources { flags: vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(), ..Sources::default() };
        let settings = config::load(&sources)
            .map_err(|problems| anyhow!("the generated configuration is invalid: {}", problems.join("; ")))?;
        write_env(&config_dir, &config_file, &vars)?;
        let events_key = EventsKey::parse(&generated.events_secret)
            .map_err(|why| anyhow!("the generated PAGESYNC_EVENTS_SECRET is invalid: {why}"))?;

        // The bot first: the daemon may relay and send events as soon as it runs.
        let (bot, server) = DemoBot::start(
            DemoBotConfig { url: bot_url.clone(), app_secret: settings.facebook.app_secret.clone(), events_key },
            bot_listener,
        )?;
        let bot_server = server.handle();
        let bot_task = actix_web::rt::spawn(server);

        let (emulator, server) = match Emulator::start(
            emulator_listener,
            EmulatorConfig {
                start_url: start_url(&daemon_url),
                dashboard_url: format!("{daemon_url}/"),
                bot_url: format!("{bot_url}/"),
                ..EmulatorConfig::for_settings(&settings)
            },
        ) {
            Ok(started) => started,
            Err(e) => {
                bot_server.stop(false).await;
                return Err(e);
            }
        };
        emulator.load_demo();
        let emulator_server = server.handle();
        let emulator_task = actix_web::rt::spawn(server);

        let app = match Application::build_on(settings, options.tuning, listener) {
            Ok(app) => app,
            Err(e) => {
                emulator_server.stop(false).await;
                bot_server.stop(false).await;
                return Err(e.context(format!("the daemon could not start on {}", data_dir.display())));
            }
        };
        let (stop, finished) = app.spawn();
        let sandbox = Sandbox {
            daemon_url,
            emulator,
            bot,
            data_dir,
            config_file,
            stop: Some(stop),
            finished: Some(finished),
            emulator_server,
            emulator_task: Some(emulator_task),
            bot_server,
            bot_task: Some(bot_task),
        };
        if let Err(e) = wait_ready(&sandbox.daemon_url).await {
            let _ = sandbox.stop().await;
            return Err(e);
        }
        tracing::info!(daemon = %sandbox.daemon_url, emulator = %sandbox.emulator.url, bot = %sandbox.bot.url(), "sandbox ready");
        Ok(sandbox)
    }

    /// The daemon's base URL (`http://127.0.0.1:D`).
    pub fn daemon_url(&self) -> &str {
        &self.daemon_url
    }

    /// The emulator's base URL (`http://127.0.0.1:E`).
    pub fn emulator_url(&self) -> &str {
        &self.emulator.url
    }

    /// The emulator's Page editor.
    pub fn editor_url(&self) -> String {
        format!("{}/emulator", self.emulator.url)
    }

    /// The daemon's dashboard.
    pub fn dashboard_url(&self) -> String {
        format!("{}/", self.daemon_url)
    }

    /// The demo bot's page: what pagesync relayed and the events it sent.
    pub fn bot_url(&self) -> String {
        format!("{}/", self.bot.url())
    }

    /// Where a merchant starts: the Shopify install of the demo shop.
    pub fn open_url(&self) -> String {
        start_url(&self.daemon_url)
    }

    /// The daemon's data dir (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The generated configuration (`.env`, beside the data dir).
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// The folder holding [`Sandbox::config_file`]: run operator commands from it.
    pub fn config_dir(&self) -> &Path {
        self.config_file.parent().unwrap_or(Path::new("."))
    }

    /// The emulator, for inspection.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// The demo bot, for inspection.
    pub fn bot(&self) -> &DemoBot {
        &self.bot
    }

    /// The shell command that sends a signed sample delivery to this sandbox.
    pub fn webhook_send_command(&self, program: &str) -> String {
        format!(
            "cd {} && {} webhook send --page {}",
            shell_quote(&self.config_dir().display().to_string()),
            shell_quote(program),
            DEMO_PAGES[0].0
        )
    }

    /// What `pagesync sandbox` prints once ready: the four `key: value` lines other
    /// tools parse (`open:` last of them), the demo bot's page, then help for humans.
    /// Only paths and URLs: never a value from the generated configuration, which
    /// holds secrets (the `.env` is named, not shown).
    pub fn banner(&self, program: &str) -> String {
        let dir = shell_quote(&self.config_dir().display().to_string());
        format!(
            "data dir: {}\nemulator: {}\ndashboard: {}\nopen: {}\nbot: {}\n\
             config: {} (generated for this run; beside the data dir, never inside it)\n\
             webhook send: {}\n\
             pages: cd {dir} && {} pages\n\
             Open the start URL in a browser, then edit Pages and send customer messages in the emulator; the bot \
             page shows what pagesync relayed. Stop with Ctrl-C; the data dir is kept.",
            self.data_dir.display(),
            self.editor_url(),
            self.dashboard_url(),
            self.open_url(),
            self.bot_url(),
            self.config_file.display(),
            self.webhook_send_command(program),
            shell_quote(program),
        )
    }

    /// Stops the daemon gracefully (requests drained, actors stopped, store flushed),
    /// then the emulator and the demo bot. Returns the daemon's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let daemon = match self.finished.take() {
            Some(finished) => {
                finished.await.unwrap_or_else(|_| Err(anyhow!("the daemon's task ended without a result")))
            }
            None => Ok(()),
        };
        self.stop_helpers().await;
        daemon
    }

    /// Serves until `shutdown` resolves (or the daemon stops by itself), then stops
    /// every server.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Some(mut finished) = self.finished.take() else { return self.stop().await };
        tokio::select! {
            () = shutdown => {
                tracing::info!("stopping the sandbox");
                self.finished = Some(finished);
                self.stop().await
            }
            result = &mut finished => {
                self.stop_helpers().await;
                result.unwrap_or_else(|_| Err(anyhow!("the daemon's task ended without a result")))
                    .and_then(|()| Err(anyhow!("the daemon stopped by itself")))
            }
        }
    }

    /// Stops the emulator and the demo bot (after the daemon, which talks to both).
    async fn stop_helpers(&mut self) {
        for (name, server, task) in [
            ("the emulator", &self.emulator_server, self.emulator_task.take()),
            ("the demo bot", &self.bot_server, self.bot_task.take()),
        ] {
            server.stop(true).await;
            if let Some(task) = task {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "{name} stopped with an error"),
                    Err(e) => tracing::warn!(error = %e, "{name}'s task failed"),
                }
            }
        }
    }
}

/// `pagesync sandbox`: reads `--bind`, `--data-dir`, `--log` and `--log-format` from
/// the command line, starts the sandbox, prints the banner, runs until `shutdown`.
pub fn main(flags: &HashMap<String, String>, shutdown: impl Future<Output = ()>) -> ExitCode {
    let mut options = SandboxOptions::default();
    if let Some(bind) = flags.get("PAGESYNC_BIND") {
        match bind.parse::<SocketAddr>() {
            Ok(addr) => options.bind = Some(addr),
            Err(_) => {
                eprintln!("error: --bind: must be an address like 127.0.0.1:5000");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(dir) = flags.get("PAGESYNC_DATA_DIR") {
        if dir.is_empty() {
            eprintln!("error: --data-dir: must not be empty");
            return ExitCode::from(2);
        }
        options.data_dir = Some(PathBuf::from(dir));
    }
    for var in config::VARS {
        if flags.contains_key(var.name) && !HONOURED_FLAGS.contains(&var.name) {
            eprintln!("warning: --{} is ignored: the sandbox generates its own configuration", var.flag);
        }
    }
    let setting = |name: &str| flags.get(name).cloned().or_else(|| std::env::var(name).ok());
    let log = setting("PAGESYNC_LOG").unwrap_or_else(|| "info".to_owned());
    let format = match setting("PAGESYNC_LOG_FORMAT").as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        _ if std::io::IsTerminal::is_terminal(&std::io::stderr()) => LogFormat::Text,
        _ => LogFormat::Json,
    };
    crate::telemetry::init(&log, format);
    let program = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "pagesync".to_owned());

    let result = actix_web::rt::System::new().block_on(async move {
        // Poll `shutdown` once before anything else, so that its signal handlers are in
        // place before the banner tells anyone we are ready: a Ctrl-C from then on (or
        // during start-up) is a graceful stop, never the default kill.
        let mut shutdown = std::pin::pin!(shutdown);
        let early = tokio::select! {
            biased;
            () = &mut shutdown => true,
            () = std::future::ready(()) => false,
        };
        let sandbox = Sandbox::start(options).await?;
        if early {
            return sandbox.stop().await;
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", sandbox.banner(&program)).context("cannot write to stdout")?;
        stdout.flush().context("cannot write to stdout")?;
        drop(stdout);
        sandbox.run_until(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the sandbox failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start_url(daemon_url: &str) -> String {
    format!("{daemon_url}/shopify/login?shop={DEMO_SHOP}")
}

/// Every variable the daemon runs with. Graph and the dialog live at the emulator's
/// root; Shopify admins under `/shopify/{shop}`; the relay and events go to the demo
/// bot.
fn daemon_vars(
    generated: &Generated,
    daemon_url: &str,
    emulator_url: &str,
    bot_url: &str,
    bound: SocketAddr,
    data_dir: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("FACEBOOK_APP_ID", generated.app_id.clone()),
        ("FACEBOOK_APP_SECRET", generated.app_secret.clone()),
        ("FACEBOOK_REDIRECT_URI", format!("{daemon_url}/facebook/callback")),
        ("FACEBOOK_WEBHOOK_ADDRESS", format!("{daemon_url}/facebook/webhook")),
        ("FACEBOOK_VERIFY_TOKEN", generated.verify_token.clone()),
        ("FACEBOOK_GRAPH_URL", emulator_url.to_owned()),
        ("FACEBOOK_DIALOG_URL", emulator_url.to_owned()),
        ("FACEBOOK_GRAPH_VERSION", "v25.0".to_owned()),
        ("SHOPIFY_API_KEY", generated.shopify_key.clone()),
        ("SHOPIFY_API_SECRET", generated.shopify_secret.clone()),
        ("SHOPIFY_REDIRECT_URI", format!("{daemon_url}/shopify/callback")),
        ("SHOPIFY_ADMIN_URL", format!("{emulator_url}/shopify/{{shop}}")),
        ("STATE_TOKEN_SECRET", generated.state_secret.clone()),
        ("PAGESYNC_ENCRYPTION_KEY", generated.encryption_key.to_base64()),
        ("PAGESYNC_BIND", bound.to_string()),
        ("PAGESYNC_DATA_DIR", data_dir.display().to_string()),
        ("PAGESYNC_BOT_FIELDS", BOT_FIELDS.to_owned()),
        ("PAGESYNC_FORWARD_URL", format!("{bot_url}/webhook")),
        ("PAGESYNC_EVENTS_URL", format!("{bot_url}/events")),
        ("PAGESYNC_EVENTS_SECRET", generated.events_secret.clone()),
    ]
}

/// `http://ADDR`, with an unspecified address (0.0.0.0, ::) replaced by loopback.
fn loopback_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// `--bind` exactly, else 127.0.0.1:5000, else any free loopback port.
fn bind_daemon(bind: Option<SocketAddr>) -> anyhow::Result<TcpListener> {
    match bind {
        Some(addr) => TcpListener::bind(addr).with_context(|| format!("cannot bind {addr} (--bind)")),
        None => TcpListener::bind(DEFAULT_BIND)
            .or_else(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .context("cannot bind a loopback port for the daemon"),
    }
}

/// Polls the daemon's `/readyz` until it answers 200.
async fn wait_ready(daemon_url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .context("cannot build the readiness client")?;
    let url = format!("{daemon_url}/readyz");
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let last = match client.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("the daemon did not become ready within {READY_DEADLINE:?} ({url}: {last})");
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `text` quoted for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,%".contains(&b));
    if plain { text.to_owned() } else { format!("'{}'", text.replace('\'', "'\\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_become_loopback_urls() {
        assert_eq!(loopback_url("0.0.0.0:5000".parse().unwrap()), "http://127.0.0.1:5000");
        assert_eq!(loopback_url("[::]:5000".parse().unwrap()), "http://[::1]:5000");
        assert_eq!(loopback_url("127.0.0.1:7".parse().unwrap()), "http://127.0.0.1:7");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/tmp/a-b"), "/tmp/a-b");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
