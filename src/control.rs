//! The operator's control socket: `PAGESYNC_DATA_DIR/control.sock`, mode 0600, owner
//! only. `pagesync pages`, `resync`, `status`, `api-key` and `outbox` ask a running daemon
//! through it, one JSON request line and one JSON answer line per connection; without
//! a daemon they open the store themselves and run the same function ([`answer`])
//! against actors of their own. A new API key travels back over this socket once
//! (it is owner-only, like the store the key would be read from otherwise).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use pagesync_actors::api_keys::{ApiKeyInfo, CreateApiKey, KeyName, ListApiKeys, RevokeApiKey, Scope};
use pagesync_actors::messages::{
    DescribePages, GetWriterStats, ListPages, PageState, PageSummary, SyncNow, SyncStatus,
};
use pagesync_actors::outbox::{GetOutboxStats, ListOutbox, RetryDead};
use pagesync_actors::subscription::{GetPageSubscriptions, GetSubscription, SubscriptionState, SubscriptionStatus};
use pagesync_actors::{Actors, PageId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The socket's file name in the data dir.
pub const SOCKET_NAME: &str = "control.sock";

/// Largest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Pages,
    Resync {
        pages: Vec<String>,
        all: bool,
    },
    /// `api-key create NAME --scope SCOPES` (both parsed again here: the line is input).
    ApiKeyCreate {
        name: String,
        scopes: String,
    },
    ApiKeyList,
    ApiKeyRevoke {
        name: String,
    },
    /// `outbox`: counts and the oldest items.
    Outbox,
    /// `outbox retry [ID...] [--all-dead]`.
    OutboxRetry {
        ids: Vec<String>,
        all: bool,
    },
    /// `backup PATH`: `path` is absolute (the CLI resolves it).
    Backup {
        path: String,
    },
    /// `status`: one screen for an operator.
    Status,
}

/// Most items of each state (pending, dead) that `pagesync outbox` lists; the counts
/// cover all of them.
pub const OUTBOX_LIST_LIMIT: usize = 1000;

/// One item of `pagesync outbox` (its `--json` output has an `items` array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The delivery id (`fwd_…`) or event id (`msg_…`), as `outbox retry` takes it.
    pub id: String,
    /// `forward` or `event`.
    pub kind: String,
    /// `pending` or `dead`.
    pub state: String,
    /// The Page id the item is ordered behind, or `object:<object>`.
    pub lane: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Seconds since it was queued (or put back in line).
    pub age_seconds: u64,
}

/// Items per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerKind {
    pub forward: u64,
    pub event: u64,
}

/// What `pagesync outbox` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxReport {
    pub pending: PerKind,
    pub dead: PerKind,
    /// Oldest first: pending items, then dead ones, at most [`OUTBOX_LIST_LIMIT`] each.
    pub items: Vec<OutboxItem>,
}

/// One line of `pagesync pages` (its `--json` output is an array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRow {
    pub id: String,
    /// `name` from `page_data.json`; `null` before the first sync.
    pub name: Option<String>,
    /// The merchant's user UUID.
    pub owner: String,
    /// Whether our app is subscribed to the Page's webhooks (the Page level).
    pub subscribed: bool,
    /// Whether webhooks can reach pagesync for the Page, both levels together:
    /// `subscribed` (Page and app level in place), `pending` (not yet, or retrying),
    /// or `conflict` (the app's callback belongs to someone else and
    /// `PAGESYNC_FORWARD_URL` is not set: see the dashboard or the log).
    pub subscription: String,
    /// Unix seconds of the last successful sync.
    pub last_sync: Option<u64>,
    /// `pending`, `synced`, `error`, `rate_limited`, `needs_reauth` or `disconnected`.
    pub status: String,
}

/// One line of `pagesync resync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncRow {
    pub id: String,
    /// `page_data.json` was written by this refresh.
    pub written: bool,
    pub status: String,
}

/// What the daemon answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Pages {
        pages: Vec<PageRow>,
    },
    Resync {
        pages: Vec<ResyncRow>,
    },
    /// The new key (`key`, shown once) and its record.
    ApiKeyCreated {
        key: String,
        info: ApiKeyInfo,
    },
    ApiKeys {
        keys: Vec<ApiKeyInfo>,
    },
    ApiKeyRevoked {
        info: ApiKeyInfo,
    },
    Outbox {
        outbox: OutboxReport,
    },
    /// `moved` items put back in line; `named` ids were asked for (0 with `--all-dead`).
    OutboxRetried {
        moved: usize,
        named: usize,
    },
    /// The backup was written to `path`.
    Backup {
        path: String,
        summary: pagesync_actors::backup::BackupSummary,
    },
    Status {
        status: StatusReport,
    },
    Error {
        message: String,
    },
}

/// Most Pages with an error that `pagesync status` lists.
pub const STATUS_ERRORS_LIMIT: usize = 5;

/// What `pagesync status` shows (its `--json` output is this object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub daemon: DaemonStatus,
    pub pages: PagesByStatus,
    /// Deliveries acknowledged to Meta and not yet fully processed.
    pub inbox_depth: u64,
    /// Forwards and events for the bot, per kind.
    pub outbox: OutboxDepth,
    /// The Page whose data is oldest (see [`stalest`]); `null` without Pages.
    pub stalest: Option<StalePage>,
    /// Pages whose last refresh failed, newest failure first, at most
    /// [`STATUS_ERRORS_LIMIT`].
    pub errors: Vec<PageError>,
    /// Unix seconds when the report was made.
    pub generated_at: u64,
}

/// Whether a daemon answers on the data dir's control socket, and where it listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// A daemon answered on the control socket.
    pub running: bool,
    /// `PAGESYNC_BIND` as configured (the daemon's own when it runs, else the
    /// command's).
    pub bind: Option<String>,
    /// The address the running daemon is bound to (differs from `bind` with port 0);
    /// `null` when none runs.
    pub listen: Option<String>,
    /// The running daemon's process id; `null` when none runs.
    pub pid: Option<u32>,
}

/// Connected Pages, in total and per status (every status is present, 0 included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagesByStatus {
    pub total: u64,
    pub pending: u64,
    pub synced: u64,
    pub error: u64,
    pub rate_limited: u64,
    pub needs_reauth: u64,
    pub disconnected: u64,
}

/// Pending and dead items per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxDepth {
    pub pending: PerKind,
    pub dead: PerKind,
}

/// The stalest Page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StalePage {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    /// Unix seconds of its last successful sync; `null`: never synced.
    pub last_sync: Option<u64>,
    /// Seconds since `last_sync`; `null` when never synced.
    pub age_seconds: Option<u64>,
}

/// A Page whose last refresh failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageError {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    /// Unix seconds of the failed attempt.
    pub at: Option<u64>,
    /// What went wrong (never a token).
    pub error: String,
    /// Meta's `error.code`, when Meta answered.
    pub code: Option<i64>,
}

/// Every connected Page with its sync state and name.
async fn page_states(actors: &Actors) -> Result<Vec<(PageId, Option<String>, Option<PageState>)>, String> {
    let pages = actors.vault.send(ListPages).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let mut rows = Vec::with_capacity(pages.len());
    for slice in pages.chunks(SLICE) {
        let ids: Vec<PageId> = slice.iter().map(|(page, _)| page.clone()).collect();
        let summaries = describe(actors, &ids).await?;
        rows.extend(ids.into_iter().zip(summaries).map(|(page, summary)| (page, summary.name, summary.state)));
    }
    Ok(rows)
}

/// Pages described per message by the commands that walk every Page.
const SLICE: usize = 1000;

/// One [`DescribePages`] answer, checked to have a summary per Page.
async fn describe(actors: &Actors, pages: &[PageId]) -> Result<Vec<PageSummary>, String> {
    let summaries =
        actors.page_writer.send(DescribePages { pages: pages.to_vec() }).await.map_err(|e| e.to_string())?;
    if summaries.len() != pages.len() {
        return Err("the page writer answered for a different number of Pages".into());
    }
    Ok(summaries)
}

/// The Page an operator should look at first for staleness: among Pages not
/// `disconnected` (those are not fetched on purpose), one never synced, else the one
/// whose last successful sync is oldest. Ties go to the smaller id (the input order).
fn stalest(pages: &[(PageId, Option<String>, Option<PageState>)], now: u64) -> Option<StalePage> {
    pages
        .iter()
        .filter(|(_, _, state)| state.as_ref().is_none_or(|s| s.status != SyncStatus::Disconnected))
        .min_by_key(|(_, _, state)| state.as_ref().and_then(|s| s.last_success).map_or((0, 0), |t| (1, t)))
        .map(|(id, name, state)| {
            let last_sync = state.as_ref().and_then(|s| s.last_success);
            StalePage {
                id: id.to_string(),
                name: name.clone(),
                status: status_name(state.as_ref()),
                last_sync,
                age_seconds: last_sync.map(|t| now.saturating_sub(t)),
            }
        })
}

/// Pages whose last refresh failed, newest failure first.
fn latest_errors(pages: &[(PageId, Option<String>, Option<PageState>)], limit: usize) -> Vec<PageError> {
    let mut errors: Vec<PageError> = pages
        .iter()
        .filter_map(|(id, name, state)| {
            let state = state.as_ref()?;
            Some(PageError {
                id: id.to_string(),
                name: name.clone(),
                status: status_name(Some(state)),
                at: state.last_attempt,
                error: state.last_error.clone()?,
                code: state.last_error_code,
            })
        })
        .collect();
    // Newest first; a failure with no time goes last.
    errors.sort_by_key(|e| std::cmp::Reverse(e.at));
    errors.truncate(limit);
    errors
}

/// `status`, from the actors alone; the caller fills in [`StatusReport::daemon`].
pub async fn status_report(actors: &Actors) -> Result<StatusReport, String> {
    let now = crate::clock::unix_now();
    let pages = page_states(actors).await?;
    let mut by_status = PagesByStatus { total: pages.len() as u64, ..PagesByStatus::default() };
    for (_, _, state) in &pages {
        let count = match state.as_ref().map_or(SyncStatus::Pending, |s| s.status) {
            SyncStatus::Pending => &mut by_status.pending,
            SyncStatus::Synced => &mut by_status.synced,
            SyncStatus::Error => &mut by_status.error,
            SyncStatus::RateLimited => &mut by_status.rate_limited,
            SyncStatus::NeedsReauth => &mut by_status.needs_reauth,
            SyncStatus::Disconnected => &mut by_status.disconnected,
        };
        *count += 1;
    }
    let writer = actors.page_writer.send(GetWriterStats).await.map_err(|e| e.to_string())?;
    let outbox = actors.outbox.addr.send(GetOutboxStats).await.map_err(|e| e.to_string())?;
    Ok(StatusReport {
        daemon: DaemonStatus::default(),
        pages: by_status,
        inbox_depth: writer.inbox_depth as u64,
        outbox: OutboxDepth {
            pending: PerKind { forward: outbox.pending_forwards, event: outbox.pending_events },
            dead: PerKind { forward: outbox.dead_forwards, event: outbox.dead_events },
        },
        stalest: stalest(&pages, now),
        errors: latest_errors(&pages, STATUS_ERRORS_LIMIT),
        generated_at: now,
    })
}

/// The status name shown by `pagesync pages --json` and the consumer API.
pub fn status_name(state: Option<&pagesync_actors::messages::PageState>) -> String {
    state
        .and_then(|s| serde_json::to_value(s.status).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "pending".to_owned())
}

/// The `subscription` of a `pages` row: a conflict at app level holds for every Page;
/// otherwise both levels must be in place.
fn subscription_name(app: Option<&SubscriptionState>, page: Option<&SubscriptionState>) -> &'static str {
    match (app.map(SubscriptionState::status), page.is_some_and(|p| p.subscribed)) {
        (Some(SubscriptionStatus::Conflict), _) => "conflict",
        (Some(SubscriptionStatus::Subscribed), true) => "subscribed",
        _ => "pending",
    }
}

/// Every connected Page with its state.
pub async fn list_pages(actors: &Actors) -> Result<Vec<PageRow>, String> {
    let pages = actors.vault.send(ListPages).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let app = actors.subscriptions.send(GetSubscription { page: None }).await.map_err(|e| e.to_string())?;
    let mut rows = Vec::with_capacity(pages.len());
    for slice in pages.chunks(SLICE) {
        let ids: Vec<PageId> = slice.iter().map(|(page, _)| page.clone()).collect();
        let summaries = describe(actors, &ids).await?;
        let subscriptions =
            actors.subscriptions.send(GetPageSubscriptions { pages: ids }).await.map_err(|e| e.to_string())?;
        if subscriptions.len() != slice.len() {
            return Err("the subscription actor answered for a different number of Pages".into());
        }
        for (((page, owner), summary), subscription) in slice.iter().zip(summaries).zip(subscriptions) {
            rows.push(PageRow {
                id: page.to_string(),
                name: summary.name,
                owner: owner.to_string(),
                subscription: subscription_name(app.as_ref(), subscription.as_ref()).to_owned(),
                subscribed: subscription.is_some_and(|s| s.subscribed),
                last_sync: summary.state.as_ref().and_then(|s| s.last_success),
                status: status_name(summary.state.as_ref()),
            });
        }
    }
    Ok(rows)
}

/// Refreshes the given Pages (or every connected Page with `all`) now, through the
/// writer's per-Page queue, and reports each.
pub async fn resync(actors: &Actors, pages: &[String], all: bool) -> Result<Vec<ResyncRow>, String> {
    let targets: Vec<PageId> = if all {
        actors
            .vault
            .send(ListPages)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    } else {
        pages.iter().map(|p| PageId::parse(p).map_err(|e| format!("{p:?}: {e}"))).collect::<Result<_, _>>()?
    };
    let mut rows = Vec::with_capacity(targets.len());
    for page in targets {
        let written = actors.page_writer.send(SyncNow { page: page.clone() }).await.unwrap_or(false);
        let state = describe(actors, std::slice::from_ref(&page)).await.ok().and_then(|s| s.into_iter().next()?.state);
        let status = match state.as_ref() {
            None if !written => "not connected".to_owned(),
            state => status_name(state),
        };
        rows.push(ResyncRow { id: page.to_string(), written, status });
    }
    Ok(rows)
}

/// `api-key create`: parses the name and scopes (a clear message for each mistake) and
/// creates the key.
pub async fn create_api_key(actors: &Actors, name: &str, scopes: &str) -> Result<Response, String> {
    let name = KeyName::parse(name).map_err(|e| e.to_string())?;
    let scopes = Scope::parse_list(scopes).map_err(|e| e.to_string())?;
    let new = actors
        .api_keys
        .send(CreateApiKey { name, scopes })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(Response::ApiKeyCreated { key: new.key.expose().to_owned(), info: new.info })
}

/// `api-key revoke`.
pub async fn revoke_api_key(actors: &Actors, name: &str) -> Result<Response, String> {
    let name = KeyName::parse(name).map_err(|e| e.to_string())?;
    let info =
        actors.api_keys.send(RevokeApiKey { name }).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(Response::ApiKeyRevoked { info })
}

/// `outbox`: counts per kind and state, and the oldest items of each state.
pub async fn outbox_report(actors: &Actors) -> Result<OutboxReport, String> {
    let listing = actors
        .outbox
        .addr
        .send(ListOutbox { limit: OUTBOX_LIST_LIMIT })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let s = &listing.stats;
    let items = listing
        .items
        .into_iter()
        .map(|row| OutboxItem {
            id: row.id,
            kind: row.kind.as_str().to_owned(),
            state: row.state.to_owned(),
            lane: row.lane,
            attempts: row.attempts,
            last_error: row.last_error,
            age_seconds: row.age_seconds,
        })
        .collect();
    Ok(OutboxReport {
        pending: PerKind { forward: s.pending_forwards, event: s.pending_events },
        dead: PerKind { forward: s.dead_forwards, event: s.dead_events },
        items,
    })
}

/// Runs one request against `actors`: what the socket answers, and what the CLI does
/// itself when no daemon runs.
pub async fn answer(actors: &Actors, request: Request) -> Response {
    let result = match request {
        Request::Pages => list_pages(actors).await.map(|pages| Response::Pages { pages }),
        Request::Resync { pages, all } => resync(actors, &pages, all).await.map(|pages| Response::Resync { pages }),
        Request::ApiKeyCreate { name, scopes } => create_api_key(actors, &name, &scopes).await,
        Request::ApiKeyList => match actors.api_keys.send(ListApiKeys).await {
            Ok(Ok(keys)) => Ok(Response::ApiKeys { keys }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Request::ApiKeyRevoke { name } => revoke_api_key(actors, &name).await,
        Request::Outbox => outbox_report(actors).await.map(|outbox| Response::Outbox { outbox }),
        Request::OutboxRetry { ids, all } => {
            let named = if all { 0 } else { ids.len() };
            match actors.outbox.addr.send(RetryDead { ids, all }).await {
                Ok(Ok(moved)) => Ok(Response::OutboxRetried { moved, named }),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Request::Backup { path } => backup(actors, path),
        Request::Status => status_report(actors).await.map(|status| Response::Status { status }),
    };
    result.unwrap_or_else(|message| Response::Error { message })
}

/// Writes a backup. Blocking on purpose: in the daemon this runs on the thread every
/// actor but the outbox runs on, so none of them changes anything until it is done
/// (see `pagesync_actors::backup`); deliveries meanwhile wait for their commit.
fn backup(actors: &Actors, path: String) -> Result<Response, String> {
    let dest = Path::new(&path);
    if !dest.is_absolute() {
        return Err(format!("the backup path must be absolute: {path}"));
    }
    let summary =
        pagesync_actors::backup::write_backup(&actors.store, &actors.pages_dir, dest).map_err(|e| e.to_string())?;
    tracing::info!(path = %dest.display(), records = summary.records, page_files = summary.page_files, "backup written");
    Ok(Response::Backup { path, summary })
}

/// Binds the socket (replacing a stale one), restricts it to the owner and serves it
/// until the returned task is aborted. `daemon` (with `running` set) is what `status`
/// answers about the process serving it.
pub fn serve(
    path: &Path,
    actors: Actors,
    daemon: DaemonStatus,
) -> std::io::Result<actix_web::rt::task::JoinHandle<()>> {
    let daemon = std::sync::Arc::new(DaemonStatus { running: true, ..daemon });
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(path)?.uid();
    Ok(actix_web::rt::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            // Mode 0600 already keeps other users out; the peer check is a second lock.
            // root is let in: it can read the data dir anyway, and an operator's
            // `sudo pagesync …` should reach the daemon, not open the store itself.
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == owner || cred.uid() == 0 => {}
                _ => {
                    tracing::warn!("control connection from another user refused");
                    continue;
                }
            }
            let actors = actors.clone();
            let daemon = daemon.clone();
            actix_web::rt::spawn(async move {
                if let Err(e) = handle(stream, &actors, &daemon).await {
                    tracing::debug!(error = %e, "control connection ended with an error");
                }
            });
        }
    }))
}

async fn handle(stream: UnixStream, actors: &Actors, daemon: &DaemonStatus) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => match answer(actors, request).await {
            Response::Status { mut status } => {
                status.daemon = daemon.clone();
                Response::Status { status }
            }
            response => response,
        },
        Err(e) => Response::Error { message: format!("bad request: {e}") },
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Asks the daemon listening on `path`. `Err` when nobody answers there.
pub async fn ask(path: &Path, request: &Request) -> std::io::Result<Response> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
