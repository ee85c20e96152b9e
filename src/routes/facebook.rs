//! Facebook: Login (connecting a merchant's Pages) and Meta's removal callbacks.
//!
//! `GET /facebook/login` needs a live session and redirects to the Login dialog with
//! a signed `state`. `GET /facebook/callback` turns the code into a long-lived user
//! token, lists every Page of `/me/accounts`, seals each Page token in the vault bound
//! to the merchant, makes sure of the webhook subscriptions (the app-level one in the
//! background, never waited on here), syncs each Page once through the
//! PageWriterActor, and rotates the session.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::join_all;
use pagesync_actors::messages::{
    ConnectPages, DeletePages, ForgetFacebookUser, ForgetPage, MarkDisconnected, PageConnected, Removal, SyncNow,
};
use pagesync_actors::session::{
    CheckSession, ConsumeFacebookNonce, DeletionRecord, DeletionStatus, RecordDeletion, RotateSession,
};
use pagesync_actors::subscription::{EnsureAppSubscription, EnsurePageSubscription, ForgetSubscriptions};
use pagesync_actors::{FacebookUserId, FetchError, PageId};

use crate::app_state::{AppState, ask};
use crate::body::{BodyLimits, read_body};
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::html::{escape, html_page};
use crate::oauth_state::{self, FacebookState, STATE_LIFETIME_SECS};
use crate::request::{session_cookie, session_cookie_header, wants_html};
use crate::verify::verify_signed_request;

/// Permissions asked in the Login dialog (docs/contract.md §4).
pub const SCOPES: &str = "pages_messaging,pages_show_list,pages_manage_metadata";

/// How long the callback waits for each Page's subscription and first sync before
/// answering; what is not done by then carries on in the background.
const PER_PAGE_WAIT: Duration = Duration::from_secs(20);

/// `GET /facebook/login`.
#[tracing::instrument(skip_all)]
pub async fn login(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    login_inner(&req, &state).await.unwrap_or_else(|e| e.render(wants_html(&req)))
}

async fn login_inner(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let id = session_cookie(req).ok_or(ApiError::Unauthorized("install the app from Shopify first"))?;
    let session = ask(&state.actors.sessions, CheckSession { id })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?
        .ok_or(ApiError::Unauthorized("your session has expired; open the app from Shopify again"))?;
    // Signed, not stored: only a used nonce is remembered (so /facebook/login writes
    // nothing, however often it is called).
    let nonce = pagesync_actors::hex(&rand::random::<[u8; 16]>());
    let signed = oauth_state::sign(
        &state.settings.state_token_secret,
        &FacebookState { user: session.user, nonce, expires_at: unix_now() + STATE_LIFETIME_SECS },
    );
    let fb = &state.settings.facebook;
    let params = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &fb.app_id)
        .append_pair("redirect_uri", &fb.redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("response_type", "code")
        .append_pair("state", &signed)
        .finish();
    let location = format!("{}/{}/dialog/oauth?{params}", fb.dialog_url, fb.graph_version);
    Ok(HttpResponse::Found().insert_header((header::LOCATION, location)).finish())
}

/// One row of the callback's answer.
#[derive(Debug, serde::Serialize)]
struct PageRow {
    id: PageId,
    name: String,
    category: String,
    subscribed: bool,
    synced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /facebook/callback?code&state` (or `?error=...` when the user said no).
#[tracing::instrument(skip_all)]
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    callback_inner(&req, &state).await.unwrap_or_else(|e| e.render(wants_html(&req)))
}

fn graph_error(step: &str, e: FetchError) -> ApiError {
    tracing::warn!(step, error = %e, "Facebook connect failed");
    match e {
        FetchError::Transient { .. } | FetchError::RateLimited { .. } => {
            ApiError::BadGateway("Facebook could not be reached; please try again in a moment".into())
        }
        FetchError::Auth { .. } | FetchError::Permanent { .. } => {
            ApiError::BadRequest("Facebook did not accept this login; please connect again".into())
        }
    }
}

async fn callback_inner(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::BadRequest("malformed query".into()))?;
    if let Some(error) = query.get("error") {
        tracing::info!(error, reason = query.get("error_reason").map(String::as_str), "Facebook login declined");
        return Err(ApiError::BadRequest(
            "Facebook connection was cancelled: pagesync needs access to your Pages to keep them in sync. \
             Connect again and choose Continue to allow it."
                .into(),
        ));
    }
    let raw_state = query.get("state").ok_or_else(|| ApiError::BadRequest("state missing".into()))?;
    let fb_state = oauth_state::verify(&state.settings.state_token_secret, raw_state, unix_now()).map_err(|e| {
        tracing::warn!(error = %e, "Facebook state refused");
        ApiError::BadRequest("invalid or expired state; please connect again".into())
    })?;
    // The callback belongs to the browser that started the connect: its live session
    // must be the state's user. Checked before the nonce is spent (a foreign click
    // must not burn the owner's link) and before any code exchange, and the session
    // is left as it is (a link from someone else's /facebook/login never logs the
    // clicker into another shop nor binds the clicker's Pages to it).
    let session_id = session_cookie(req);
    let session = match session_id.clone() {
        Some(id) => {
            ask(&state.actors.sessions, CheckSession { id }).await?.map_err(|e| ApiError::Unexpected(e.into()))?
        }
        None => None,
    };
    let Some(session) = session.filter(|s| s.user == fb_state.user) else {
        tracing::warn!("Facebook callback refused: the browser's session is not the one that started the connect");
        return Err(ApiError::BadRequest(
            "this connection link was started from another session; open the app from your Shopify admin and \
             connect again"
                .into(),
        ));
    };
    ask(
        &state.actors.sessions,
        ConsumeFacebookNonce { nonce: fb_state.nonce.clone(), expires_at: fb_state.expires_at },
    )
    .await?
    .map_err(|e| {
        tracing::warn!(error = %e, "Facebook state nonce refused");
        ApiError::BadRequest("this connection link was already used or has expired; please connect again".into())
    })?;
    let code =
        query.get("code").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::BadRequest("code missing".into()))?;
    let user = fb_state.user;

    let short = state.graph.exchange_code(code).await.map_err(|e| graph_error("code exchange", e))?;
    let long = state.graph.long_lived(&short).await.map_err(|e| graph_error("long-lived exchange", e))?;
    let me = state.graph.me(&long).await.map_err(|e| graph_error("/me", e))?;
    let accounts = state.graph.accounts(&long).await.map_err(|e| graph_error("/me/accounts", e))?;

    ask(
        &state.actors.vault,
        ConnectPages {
            owner: user.clone(),
            fb_user: me.id.clone(),
            user_token: long,
            pages: accounts.iter().map(|p| (p.id.clone(), p.token.clone())).collect(),
        },
    )
    .await?
    .map_err(|e| ApiError::Unexpected(e.into()))?;
    tracing::info!(user = %user, pages = accounts.len(), "Facebook Pages connected");

    // The app-level subscription: fire and forget (Meta calls our verification GET
    // while it runs; nothing here may wait for it).
    state.actors.subscriptions.do_send(EnsureAppSubscription);

    let rows = join_all(accounts.iter().map(|page| {
        let actors = state.actors.clone();
        let page_id = page.id.clone();
        let connected =
            PageConnected { page: page_id.clone(), shop: Some(session.shop.clone()), name: Some(page.name.clone()) };
        async move {
            actors.page_writer.do_send(connected);
            let subscribe =
                actors.subscriptions.send(EnsurePageSubscription { page: page_id.clone() }).timeout(PER_PAGE_WAIT);
            let sync = actors.page_writer.send(SyncNow { page: page_id.clone() }).timeout(PER_PAGE_WAIT);
            let (subscription, synced) = tokio::join!(subscribe, sync);
            let (subscribed, error) = match subscription {
                Ok(s) => (s.subscribed, s.last_error),
                Err(e) => (false, Some(format!("subscription still pending: {e}"))),
            };
            (subscribed, synced.unwrap_or(false), error)
        }
    }))
    .await;
    let rows: Vec<PageRow> = accounts
        .iter()
        .zip(rows)
        .map(|(page, (subscribed, synced, error))| PageRow {
            id: page.id.clone(),
            name: page.name.clone(),
            category: page.category.clone(),
            subscribed,
            synced,
            error,
        })
        .collect();

    let new_session =
        ask(&state.actors.sessions, RotateSession { old: session_id, user: user.clone(), shop: session.shop })
            .await?
            .map_err(|e| ApiError::Unexpected(e.into()))?;
    let secure = state.settings.facebook.redirect_uri.starts_with("https://");
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::SET_COOKIE, session_cookie_header(&new_session, state.settings.session_ttl, secure)));

    if wants_html(req) {
        let mut table = String::from(
            "<table id=\"pages\"><tr><th>Page</th><th>Id</th><th>Category</th><th>Webhooks</th><th>Synced</th></tr>",
        );
        for row in &rows {
            table.push_str(&format!(
                "<tr data-page-id=\"{1}\"><td class=\"name\">{0}</td><td class=\"id\">{1}</td><td \
                 class=\"category\">{2}</td><td class=\"subscribed\">{3}</td><td class=\"synced\">{4}</td></tr>",
                escape(&row.name),
                row.id,
                escape(&row.category),
                if row.subscribed { "subscribed" } else { "pending (retrying)" },
                if row.synced { "yes" } else { "not yet" },
            ));
        }
        table.push_str("</table>");
        let body = html_page(
            "pagesync: Pages connected",
            &format!(
                "<h1>{} Facebook Page(s) connected</h1>{table}<p><a id=\"dashboard\" href=\"/\">Go to the \
                 dashboard</a></p>",
                rows.len()
            ),
        );
        Ok(response.content_type("text/html; charset=utf-8").body(body))
    } else {
        Ok(response.json(serde_json::json!({ "user_uuid": user, "pages": rows })))
    }
}

/// The largest removal-callback form we read: a `signed_request` is a few hundred bytes.
const FORM_MAX_BYTES: usize = 64 * 1024;

/// Reads the form Meta posts to the removal callbacks (with the webhook body deadline:
/// a slow body never holds a connection), verifies its `signed_request` and returns
/// the Facebook user it names and its `issued_at`.
async fn signed_user(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(FacebookUserId, Option<u64>), ApiError> {
    let limits = BodyLimits { max_bytes: FORM_MAX_BYTES, deadline: state.webhook_body_deadline };
    let body = read_body(req, payload, limits).await?;
    let signed = form_urlencoded::parse(&body)
        .find_map(|(k, v)| (k == "signed_request").then(|| v.into_owned()))
        .ok_or_else(|| ApiError::BadRequest("signed_request missing".into()))?;
    let request = verify_signed_request(&state.settings.facebook.app_secret, &signed).map_err(|e| {
        tracing::warn!(error = %e, "signed_request refused");
        ApiError::BadRequest("invalid signed_request".into())
    })?;
    let request = request.into_inner();
    let user =
        FacebookUserId::parse(&request.user_id).map_err(|_| ApiError::BadRequest("invalid signed_request".into()))?;
    Ok((user, request.issued_at))
}

/// Forgets a Facebook user's tokens and marks their Pages disconnected. `None` when
/// the request was issued before the user's latest connect (a replay): nothing changed.
async fn disconnect(
    state: &AppState,
    fb_user: FacebookUserId,
    issued_at: Option<u64>,
    reason: &'static str,
) -> Result<Option<Vec<PageId>>, ApiError> {
    let removal = ask(&state.actors.vault, ForgetFacebookUser { fb_user, issued_at })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let pages = match removal {
        Removal::Forgotten(pages) => pages,
        Removal::Superseded { connected_at } => {
            tracing::warn!(issued_at, connected_at, "removal request older than the user's latest connect; ignored");
            return Ok(None);
        }
    };
    ask(&state.actors.page_writer, MarkDisconnected { pages: pages.clone(), reason }).await?;
    ask(&state.actors.subscriptions, ForgetSubscriptions { pages: pages.clone() }).await?;
    Ok(Some(pages))
}

/// `POST /facebook/deauthorize`: the user removed the app.
#[tracing::instrument(skip_all)]
pub async fn deauthorize(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (fb_user, issued_at) = signed_user(&req, payload, &state).await?;
    let Some(pages) = disconnect(&state, fb_user, issued_at, "deauthorized").await? else {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ignored" })));
    };
    tracing::info!(pages = pages.len(), "Facebook user deauthorized the app; Pages disconnected");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })))
}

/// `POST /facebook/data-deletion`: the user asked for their data to be deleted.
#[tracing::instrument(skip_all)]
pub async fn data_deletion(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (fb_user, issued_at) = signed_user(&req, payload, &state).await?;
    let code = pagesync_actors::hex(&rand::random::<[u8; 16]>());
    let record = match disconnect(&state, fb_user, issued_at, "data_deletion").await? {
        Some(pages) => {
            for page in &pages {
                ask(&state.actors.vault, ForgetPage { page: page.clone() })
                    .await?
                    .map_err(|e| ApiError::Unexpected(e.into()))?;
            }
            ask(&state.actors.page_writer, DeletePages { pages: pages.clone() })
                .await?
                .map_err(|e| ApiError::Unexpected(e.into()))?;
            tracing::info!(pages = pages.len(), "Facebook data deletion done");
            DeletionRecord { status: "done".into(), pages: pages.len(), completed_at: unix_now() }
        }
        // Meta still gets a code to show the user; its status says why nothing was
        // deleted (the user connected again after asking).
        None => DeletionRecord { status: "superseded".into(), pages: 0, completed_at: unix_now() },
    };
    ask(&state.actors.sessions, RecordDeletion { code: code.clone(), record })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let url =
        format!("{}/facebook/data-deletion/status?code={code}", public_origin(&state.settings.facebook.redirect_uri));
    Ok(HttpResponse::Ok().json(serde_json::json!({ "url": url, "confirmation_code": code })))
}

/// `GET /facebook/data-deletion/status?code=C`.
pub async fn deletion_status(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::BadRequest("malformed query".into()))?;
    let code = query.get("code").filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    let Some(code) = code else { return Err(ApiError::NotFound("unknown confirmation code")) };
    let record = ask(&state.actors.sessions, DeletionStatus { code: code.clone() })
        .await?
        .map_err(|e| ApiError::Unexpected(e.into()))?
        .ok_or(ApiError::NotFound("unknown confirmation code"))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "confirmation_code": code,
        "status": record.status,
        "pages_deleted": record.pages,
        "completed_at": record.completed_at,
    })))
}

/// `scheme://host[:port]` of a URL (the public base of this app, taken from its
/// Facebook redirect URI).
fn public_origin(url: &str) -> String {
    reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
}
