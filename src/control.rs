//! The operator's control socket: `PAGESYNC_DATA_DIR/control.sock`, mode 0600, owner
//! only. `pagesync pages` and `pagesync resync` ask a running daemon through it, one
//! JSON request line and one JSON answer line per connection; without a daemon they
//! open the store themselves and run the same functions ([`list_pages`],
//! [`resync`]) against actors of their own.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use pagesync_actors::messages::{DescribePage, ListPages, SyncNow};
use pagesync_actors::subscription::{GetSubscription, SubscriptionState, SubscriptionStatus};
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
    Resync { pages: Vec<String>, all: bool },
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
    Pages { pages: Vec<PageRow> },
    Resync { pages: Vec<ResyncRow> },
    Error { message: String },
}

fn status_name(state: Option<&pagesync_actors::messages::PageState>) -> String {
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
    for (page, owner) in pages {
        let summary = actors.page_writer.send(DescribePage { page: page.clone() }).await.map_err(|e| e.to_string())?;
        let subscription =
            actors.subscriptions.send(GetSubscription { page: Some(page.clone()) }).await.map_err(|e| e.to_string())?;
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
        let summary = actors.page_writer.send(DescribePage { page: page.clone() }).await.unwrap_or_default();
        let status = match summary.state.as_ref() {
            None if !written => "not connected".to_owned(),
            state => status_name(state),
        };
        rows.push(ResyncRow { id: page.to_string(), written, status });
    }
    Ok(rows)
}

async fn answer(actors: &Actors, request: Request) -> Response {
    let result = match request {
        Request::Pages => list_pages(actors).await.map(|pages| Response::Pages { pages }),
        Request::Resync { pages, all } => resync(actors, &pages, all).await.map(|pages| Response::Resync { pages }),
    };
    result.unwrap_or_else(|message| Response::Error { message })
}

/// Binds the socket (replacing a stale one), restricts it to the owner and serves it
/// until the returned task is aborted.
pub fn serve(path: &Path, actors: Actors) -> std::io::Result<actix_web::rt::task::JoinHandle<()>> {
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
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == owner => {}
                _ => {
                    tracing::warn!("control connection from another user refused");
                    continue;
                }
            }
            let actors = actors.clone();
            actix_web::rt::spawn(async move {
                if let Err(e) = handle(stream, &actors).await {
                    tracing::debug!(error = %e, "control connection ended with an error");
                }
            });
        }
    }))
}

async fn handle(stream: UnixStream, actors: &Actors) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => answer(actors, request).await,
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
