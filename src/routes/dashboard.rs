//! `GET /`: the merchant's dashboard, plain server-rendered HTML that works without
//! JavaScript. Without a live session it is the start page (install on a shop);
//! with one it lists the merchant's Pages with their subscription and sync state, and
//! a reconnect link where Meta refused a token. When the app-level subscription is in
//! `conflict` (another callback URL holds the app's Page webhooks), a line above the
//! table names that URL and what the operator should do.

use actix_web::{HttpRequest, HttpResponse, web};
use pagesync_actors::PageId;
use pagesync_actors::messages::{DescribePages, ListPagesFrom, PageSummary, SyncStatus};
use pagesync_actors::session::{CheckSession, SessionInfo};
use pagesync_actors::subscription::{GetPageSubscriptions, GetSubscription, SubscriptionState, SubscriptionStatus};

use crate::app_state::{AppState, ask};
use crate::clock::format_unix;
use crate::error::ApiError;
use crate::html::{escape, html_page};
use crate::request::session_cookie;

/// Pages one dashboard screen lists; `?after=ID` shows the next ones.
pub const DASHBOARD_ROWS: usize = 100;

/// `GET /[?after=PAGE_ID]`.
#[tracing::instrument(skip_all)]
pub async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match render(&req, &state).await {
        Ok(body) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body),
        Err(e) => e.render(true),
    }
}

async fn render(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let session = match session_cookie(req) {
        Some(id) => {
            ask(&state.actors.sessions, CheckSession { id }).await?.map_err(|e| ApiError::Unexpected(e.into()))?
        }
        None => None,
    };
    let Some(session) = session else { return Ok(start_page()) };
    // A cursor that is not a Page id (a hand-edited link) starts from the first Page.
    let after = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "after")
        .and_then(|(_, v)| PageId::parse(&v).ok());
    let first = after.is_none();
    let msg = ListPagesFrom { owner: Some(session.user.clone()), after, limit: DASHBOARD_ROWS };
    let slice = ask(&state.actors.vault, msg).await?.map_err(|e| ApiError::Unexpected(e.into()))?;
    let pages: Vec<PageId> = slice.pages.into_iter().map(|(page, _)| page).collect();
    let (summaries, subscriptions, app) = tokio::join!(
        state.actors.page_writer.send(DescribePages { pages: pages.clone() }),
        state.actors.subscriptions.send(GetPageSubscriptions { pages: pages.clone() }),
        state.actors.subscriptions.send(GetSubscription { page: None }),
    );
    // An actor that cannot answer leaves its columns empty rather than the screen.
    let (mut summaries, mut subscriptions) =
        (summaries.unwrap_or_default().into_iter(), subscriptions.unwrap_or_default().into_iter());
    let rows: Vec<Row> = pages
        .into_iter()
        .map(|page| Row {
            page,
            summary: summaries.next().unwrap_or_default(),
            subscription: subscriptions.next().flatten(),
        })
        .collect();
    // The conflict line is advice; an actor that cannot answer just leaves it out.
    let conflict = app.ok().flatten().filter(|s| s.status() == SubscriptionStatus::Conflict).and_then(|s| s.conflict);
    Ok(dashboard(&session, &rows, conflict.as_deref(), Paging { first, next: slice.next }))
}

/// Where this screen is in the merchant's list.
struct Paging {
    first: bool,
    next: Option<PageId>,
}

/// One dashboard row.
struct Row {
    page: PageId,
    summary: PageSummary,
    subscription: Option<SubscriptionState>,
}

fn start_page() -> String {
    html_page(
        "pagesync",
        "<h1>pagesync</h1><p>pagesync keeps your Facebook Pages' details current for your sales bot. \
         Install it on your Shopify store to begin.</p>\
         <form id=\"install-form\" method=\"get\" action=\"/shopify/login\">\
         <label for=\"shop\">Shop domain</label> \
         <input id=\"shop\" name=\"shop\" required placeholder=\"your-shop.myshopify.com\" \
         pattern=\"[a-z0-9][a-z0-9\\-]*\\.myshopify\\.com\"> \
         <button id=\"install\" type=\"submit\">Install</button></form>",
    )
}

fn status_text(status: Option<SyncStatus>) -> &'static str {
    status.unwrap_or(SyncStatus::Pending).as_str()
}

/// `conflict`: the other callback URL holding the app's Page webhooks, if any.
fn dashboard(session: &SessionInfo, rows: &[Row], conflict: Option<&str>, paging: Paging) -> String {
    let mut body = format!("<h1>pagesync for {}</h1>", escape(session.shop.as_str()));
    if let Some(other) = conflict {
        body.push_str(&format!(
            "<p id=\"subscription-conflict\" class=\"error\">Meta sends this app's Page webhooks to \
             <code>{other}</code>, not to pagesync, so Page changes are picked up only by the periodic re-sync. \
             pagesync left that address alone so as not to cut off whoever uses it. If it is the sales \
             bot's, set <code>PAGESYNC_FORWARD_URL</code> to <code>{other}</code> and restart pagesync: \
             it then takes the webhooks over and relays every delivery to the bot.</p>",
            other = escape(other)
        ));
    }
    if rows.is_empty() && !paging.first {
        body.push_str("<p>No more Pages. <a id=\"first-pages\" href=\"/\">First Pages</a></p>");
        return html_page("pagesync: dashboard", &body);
    }
    if rows.is_empty() {
        body.push_str(
            "<p>No Facebook Pages are connected yet.</p>\
             <p><a id=\"connect-facebook\" href=\"/facebook/login\">Connect Facebook</a></p>",
        );
        return html_page("pagesync: dashboard", &body);
    }
    body.push_str(
        "<table id=\"pages\"><tr><th>Page</th><th>Id</th><th>Category</th><th>Webhooks</th><th>Status</th>\
         <th>Last sync (UTC)</th></tr>",
    );
    for row in rows {
        let state = row.summary.state.as_ref();
        let status = status_text(state.map(|s| s.status));
        let mut status_cell = escape(status);
        if status == "needs_reauth" {
            status_cell.push_str(" <a class=\"reconnect\" href=\"/facebook/login\">Reconnect</a>");
        } else if let Some(error) = state.and_then(|s| s.last_error.as_deref()).filter(|_| status != "synced") {
            status_cell.push_str(&format!(" <small>{}</small>", escape(error)));
        }
        let subscribed = match &row.subscription {
            _ if conflict.is_some() => "conflict",
            Some(s) if s.subscribed => "subscribed",
            Some(_) => "pending (retrying)",
            None => "not yet",
        };
        let last_sync = state.and_then(|s| s.last_success).map(format_unix).unwrap_or_else(|| "never".into());
        body.push_str(&format!(
            "<tr data-page-id=\"{id}\"><td class=\"name\">{name}</td><td class=\"id\">{id}</td>\
             <td class=\"category\">{category}</td><td class=\"subscribed\">{subscribed}</td>\
             <td class=\"status\">{status_cell}</td><td class=\"last-sync\">{last_sync}</td></tr>",
            id = row.page.as_str(),
            name = escape(row.summary.name.as_deref().unwrap_or("(not fetched yet)")),
            category = escape(row.summary.category.as_deref().unwrap_or("")),
        ));
    }
    body.push_str("</table><p>");
    if let Some(next) = &paging.next {
        body.push_str(&format!("<a id=\"next-pages\" href=\"/?after={}\">Next Pages</a> · ", next.as_str()));
    }
    if !paging.first {
        body.push_str("<a id=\"first-pages\" href=\"/\">First Pages</a> · ");
    }
    body.push_str(
        "<a id=\"refresh\" href=\"/\">Refresh</a> · \
         <a id=\"connect-facebook\" href=\"/facebook/login\">Connect more Pages</a></p>",
    );
    html_page("pagesync: dashboard", &body)
}
