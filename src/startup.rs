//! Building and running the application: open the store, start the actors, bind,
//! serve; on stop, drain HTTP, stop the actors and flush the store.
//!
//! `main` and every integration test go through [`Application::build`], so tests run
//! the same wiring as production.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use pagesync_actors::messages::Shutdown;
use pagesync_actors::outbox::OutboxConfig;
use pagesync_actors::poller::PollConfig;
use pagesync_actors::subscription::RetryConfig;
use pagesync_actors::{Actors, ActorsConfig, Sealer, Store, StoreConfig, WriterConfig};
use tokio::sync::oneshot;

use crate::app_state::AppState;
use crate::clients::graph::{GraphClient, RetryPolicy};
use crate::clients::outbox::HttpOutboxSender;
use crate::clients::shopify::ShopifyClient;
use crate::config::Settings;
use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::routes;
use crate::systemd::Notifier;

/// Internal knobs that are not configuration variables; tests shorten the pauses.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub graph_retry: RetryPolicy,
    /// First back-off of a Page after a rate limit or a failed refresh.
    pub refresh_backoff_base: Duration,
    /// Longest such back-off.
    pub refresh_backoff_cap: Duration,
    /// First retry of a failed webhook subscription (doubles, capped at an hour).
    pub subscription_retry_base: Duration,
    /// About the first retry of a failed forward or event (doubles per attempt).
    pub outbox_retry_base: Duration,
    /// The longest pause between two attempts of one forward or event.
    pub outbox_retry_cap: Duration,
    /// Whether the outbox delivers (`false` for the offline CLI, which must not).
    pub outbox_sending: bool,
    /// HTTP worker threads; `None`: actix's default (one per core).
    pub workers: Option<usize>,
    /// How long a graceful stop lets requests in flight finish.
    pub shutdown_timeout: Duration,
    /// systemd's notify socket (`main` reads `$NOTIFY_SOCKET`).
    pub notifier: Option<Arc<Notifier>>,
    /// systemd's watchdog period (`$WATCHDOG_USEC`); pings go out at half of it.
    pub watchdog: Option<Duration>,
    /// How long a `POST /facebook/webhook` body may take to arrive once the headers are
    /// in (docs/contract.md §4: 10 s); a slower body gets 408.
    pub webhook_body_deadline: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            graph_retry: RetryPolicy::default(),
            refresh_backoff_base: Duration::from_secs(60),
            refresh_backoff_cap: Duration::from_secs(3600),
            subscription_retry_base: Duration::from_secs(30),
            outbox_retry_base: Duration::from_secs(1),
            outbox_retry_cap: Duration::from_secs(300),
            outbox_sending: true,
            workers: None,
            shutdown_timeout: Duration::from_secs(10),
            notifier: None,
            watchdog: None,
            webhook_body_deadline: Duration::from_secs(10),
        }
    }
}

/// A built, bound, not yet running pagesync.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    store: Store,
    actors: Actors,
    notifier: Option<Arc<Notifier>>,
    watchdog: Option<Duration>,
    /// The control socket's server task and path (removed at stop).
    control: (actix_web::rt::task::JoinHandle<()>, std::path::PathBuf),
    /// Where the background readiness check stores its result for `/metrics`
    /// (the task runs while the application serves).
    readiness: Readiness,
}

impl Application {
    /// Opens the store below `PAGESYNC_DATA_DIR`, starts the actors and binds
    /// `PAGESYNC_BIND` (port 0 picks a free port). Must run inside an actix `System`.
    pub fn build(settings: Settings, tuning: Tuning) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(settings.bind).with_context(|| format!("cannot bind {}", settings.bind))?;
        Application::build_on(settings, tuning, listener)
    }

    /// Like [`Application::build`], on a listener the caller already bound.
    pub fn build_on(settings: Settings, tuning: Tuning, listener: TcpListener) -> anyhow::Result<Application> {
        let data_dir = settings.data_dir.clone();
        let Core { store, actors, graph, shopify, metrics } = Core::start(&settings, &tuning)?;
        let control_path = crate::control::socket_path(&data_dir);
        let local = listener.local_addr()?;
        let daemon = crate::control::DaemonStatus {
            running: true,
            bind: Some(settings.bind.to_string()),
            listen: Some(local.to_string()),
            pid: Some(std::process::id()),
        };
        let control_task = crate::control::serve(&control_path, actors.clone(), daemon)
            .with_context(|| format!("cannot create the control socket {}", control_path.display()))?;
        let port = local.port();
        let readiness = Readiness::default();
        let state = AppState {
            settings: Arc::new(settings),
            actors: actors.clone(),
            store: store.clone(),
            graph,
            shopify,
            metrics,
            readiness: readiness.clone(),
            webhook_body_deadline: tuning.webhook_body_deadline,
        };
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                // Read by the `observe` middleware, which sits below the app state.
                .app_data(web::Data::new(state.metrics.clone()))
                .wrap(actix_web::middleware::from_fn(crate::metrics::observe))
                .configure(routes::configure)
        })
        // Signals are ours: SIGTERM and SIGINT both stop gracefully (see main.rs).
        .disable_signals()
        .shutdown_timeout(tuning.shutdown_timeout.as_secs());
        if let Some(workers) = tuning.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(port, "pagesync listening");
        Ok(Application {
            port,
            server,
            store,
            actors,
            notifier: tuning.notifier,
            watchdog: tuning.watchdog,
            control: (control_task, control_path),
            readiness,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The actors' addresses (tests fill the vault through them).
    pub fn actors(&self) -> &Actors {
        &self.actors
    }

    /// Runs [`Application::run_until_stopped`] on the current actix System (the
    /// sandbox's and the tests' way): sending on the returned sender stops it, the
    /// receiver gets its result.
    pub fn spawn(self) -> (oneshot::Sender<()>, oneshot::Receiver<anyhow::Result<()>>) {
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel();
        actix_web::rt::spawn(async move {
            let _ = done.send(self.run_until_stopped(async move { stop_rx.await.unwrap_or(()) }).await);
        });
        (stop, finished)
    }

    /// Serves until `shutdown` resolves (or the server fails), then stops in order:
    /// stop accepting and let requests in flight finish (up to the shutdown timeout),
    /// stop the actors (unfinished deliveries stay in the inbox), flush and close the
    /// store.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Application { server, store, actors, notifier, watchdog, port, control, readiness } = self;
        let handle = server.handle();
        let readiness_task = actix_web::rt::spawn(crate::health::watch(
            readiness,
            store.clone(),
            actors.clone(),
            crate::health::CHECK_EVERY,
        ));
        let watchdog_task = notifier.clone().map(|notifier| {
            notifier.notify(&["READY=1", &format!("STATUS=serving on port {port}")]);
            tracing::info!("told systemd we are ready");
            actix_web::rt::spawn(keep_alive(notifier, watchdog, store.clone(), actors.clone()))
        });
        let mut server = std::pin::pin!(server);
        let served = tokio::select! {
            result = &mut server => result,
            () = shutdown => {
                tracing::info!("stopping: draining HTTP requests");
                if let Some(notifier) = &notifier {
                    notifier.notify(&["STOPPING=1", "STATUS=stopping: draining requests"]);
                }
                // The server future itself carries out the stop, so keep polling it while
                // the stop command is sent from a separate task.
                actix_web::rt::spawn(async move { handle.stop(true).await });
                server.await
            }
        };
        if let Some(task) = watchdog_task {
            task.abort();
        }
        readiness_task.abort();
        control.0.abort();
        let _ = std::fs::remove_file(&control.1);
        stop_actors(&actors).await;
        drop(actors);
        let closed = tokio::task::spawn_blocking(move || store.close()).await;
        served.context("HTTP server failed")?;
        closed.context("store closer panicked")?.context("final store flush failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The store, the actors and the clients: everything but HTTP.
struct Core {
    store: Store,
    actors: Actors,
    graph: GraphClient,
    shopify: ShopifyClient,
    metrics: Metrics,
}

impl Core {
    fn start(settings: &Settings, tuning: &Tuning) -> anyhow::Result<Core> {
        let data_dir = settings.data_dir.clone();
        // The bot reads the page files through the daemon's group: the data dir and
        // facebook/ let the group in, the database never does.
        create_dir_with_mode(&data_dir, 0o750)?;
        let pages_dir = data_dir.join("facebook");
        create_dir_with_mode(&pages_dir, 0o750)?;
        let db_dir = data_dir.join("db");
        create_dir_with_mode(&db_dir, 0o700)?;
        let store = Store::open(&StoreConfig::new(db_dir))?;
        let sealer = Sealer::new(&settings.encryption_key);
        // Before any actor can open a token with the wrong key and report it as
        // Meta's refusal: a store remembers the key that sealed it.
        pagesync_actors::verify_key(&store, &sealer)?;

        let http = crate::clients::http::http_client(&settings.proxy).context("cannot build the HTTP client")?;
        let metrics = Metrics::new();
        let graph = GraphClient::new(&settings.facebook, http.clone(), tuning.graph_retry.clone(), metrics.clone())
            .with_bot(&settings.bot);
        let shopify = ShopifyClient::new(&settings.shopify, http.clone());
        let mut writer = WriterConfig::new(pages_dir);
        writer.backoff_base = tuning.refresh_backoff_base;
        writer.backoff_cap = tuning.refresh_backoff_cap;
        let subscription_retry = RetryConfig { base: tuning.subscription_retry_base, ..RetryConfig::default() };
        let actors = pagesync_actors::start(
            &store,
            ActorsConfig {
                sealer,
                source: Arc::new(graph.clone()),
                subscriptions: Arc::new(graph.clone()),
                writer,
                subscription_retry,
                session_ttl: settings.session_ttl,
                poll: PollConfig { interval: settings.poll_interval, concurrency: 4 },
                usage: graph.usage(),
                outbox_sender: Arc::new(HttpOutboxSender::new(&settings.bot, http.clone())),
                events: settings.bot.events.is_some(),
                outbox: OutboxConfig {
                    max_age: settings.bot.max_age,
                    base: tuning.outbox_retry_base,
                    cap: tuning.outbox_retry_cap,
                    sending: tuning.outbox_sending,
                    ..OutboxConfig::default()
                },
            },
        )?;

        Ok(Core { store, actors, graph, shopify, metrics })
    }
}

/// The actors on an open store, without HTTP: what `pagesync pages`, `resync`,
/// `api-key` and `outbox` use when no daemon runs. Polling is off.
pub struct Offline {
    store: Store,
    actors: Actors,
}

impl Offline {
    /// Opens the store (fails while a daemon holds it) and starts the actors.
    pub fn open(mut settings: Settings, mut tuning: Tuning) -> anyhow::Result<Offline> {
        settings.poll_interval = None;
        // Deliveries to the bot are the daemon's; a CLI run only reads and re-queues.
        tuning.outbox_sending = false;
        let Core { store, actors, .. } = Core::start(&settings, &tuning)?;
        Ok(Offline { store, actors })
    }

    pub fn actors(&self) -> &Actors {
        &self.actors
    }

    /// Stops the actors and closes the store.
    pub async fn close(self) -> anyhow::Result<()> {
        stop_actors(&self.actors).await;
        drop(self.actors);
        let store = self.store;
        tokio::task::spawn_blocking(move || store.close()).await.context("store closer panicked")??;
        Ok(())
    }
}

/// Sends `Shutdown` to every actor, the writer first.
async fn stop_actors(actors: &Actors) {
    let _ = actors.poller.send(Shutdown).await;
    let _ = actors.page_writer.send(Shutdown).await;
    // After the writer: nothing adds items any more; what is pending stays in the tree.
    let _ = actors.outbox.addr.send(Shutdown).await;
    if let Some(thread) = actors.outbox.thread.clone() {
        // Joined, so that the actor's database handles are gone before the store closes.
        let _ = tokio::task::spawn_blocking(move || thread.stop()).await;
    }
    let _ = actors.subscriptions.send(Shutdown).await;
    let _ = actors.sessions.send(Shutdown).await;
    let _ = actors.api_keys.send(Shutdown).await;
    let _ = actors.vault.send(Shutdown).await;
}

/// Sends `WATCHDOG=1` at half the watchdog period while every actor answers, and a
/// `STATUS=` line with the writer's figures. Without a watchdog, only the status.
async fn keep_alive(notifier: Arc<Notifier>, watchdog: Option<Duration>, store: Store, actors: Actors) {
    let period = watchdog.map_or(Duration::from_secs(30), |w| w / 2);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // An actor has a quarter of the period to answer; a wedged one stops the pings.
        let missing = crate::health::not_ready(&store, &actors, period / 2).await;
        if !missing.is_empty() {
            tracing::error!(not_answering = ?missing, "withholding the systemd watchdog ping");
            notifier.notify(&[&format!("STATUS=not answering: {}", missing.join(", "))]);
            continue;
        }
        // Read from what the writer publishes: the status line never waits in its mailbox.
        let stats = actors.published.writer.stats();
        let status = format!(
            "STATUS=inbox {} | refreshing {} | pages written {} | refresh errors {}",
            stats.inbox_depth, stats.running, stats.pages_written, stats.refresh_errors
        );
        if watchdog.is_some() {
            notifier.notify(&["WATCHDOG=1", &status]);
        } else {
            notifier.notify(&[&status]);
        }
    }
}

/// Creates a folder (and its parents) and sets `mode` on it, also when it already
/// exists: the mode is set explicitly so neither the umask nor an older version's
/// stricter modes decide who can read it.
fn create_dir_with_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode {mode:o} on {}", path.display()))
}
