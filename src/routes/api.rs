//! The consumer API (docs/contract.md §7): `/api/v1`, for the bot and other trusted programs that
//! hold a key from `pagesync api-key create`.
//!
//! Every request carries `Authorization: Bearer psk_…`. The key is checked first —
//! before an id in the path is even parsed, so that a caller without a key learns
//! nothing, not even which ids exist — by the ApiKeyActor (a point read by the key's
//! hash). Missing, malformed, unknown or revoked keys get 401 with
//! `WWW-Authenticate: Bearer`; a key without the route's scope gets 403. Scopes are
//! independent: `tokens:read` does not imply `pages:read`.
//!
//! Pages and tokens are read through the actors that own them (vault, writer, session,
//! subscriptions). `page_data.json` itself is read from disk here, off the async
//! threads: it is the published interface of pagesync (the bot reads the same file),
//! and the writer replaces it atomically, so a reader never sees a torn file.
//!
//! Token answers carry `Cache-Control: no-store`; every token handed out is logged at
//! `info` with the key's name and id and the Page or shop (never the token) and counted
//! in `/metrics` (`pagesync_api_token_reads_total{kind}`); every answer is counted in
//! `pagesync_api_requests_total{result}`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use pagesync_actors::api_keys::{self, ApiKeyInfo, Scope, VerifyApiKey};
use pagesync_actors::messages::{
    DescribePages, GetPageState, GetPageToken, GetShopToken, ListPages, ListPagesFrom, OwnerOfPage, PageState,
    PagesOfOwner, SyncStatus,
};
use pagesync_actors::session::{ShopOfUser, ShopsOfUsers, UserOfShop};
use pagesync_actors::subscription::GetPageSubscriptions;
use pagesync_actors::{PageId, Secret, ShopDomain, UserId, page_writer};
use serde_json::{Value, json};

use crate::app_state::{AppState, ask};
use crate::error::ApiError;
use crate::metrics::{ApiResult, TokenKind};

/// The longest `Authorization` value looked at; ours are 47 characters.
const MAX_CREDENTIAL: usize = 256;

/// Why a consumer API request was not answered with data. Rendered as JSON.
#[derive(Debug)]
enum Refusal {
    /// 401 with `WWW-Authenticate: Bearer`.
    Unauthenticated,
    /// 403: the key lacks this scope.
    Forbidden(Scope),
    /// 400.
    BadRequest(String),
    /// 404.
    NotFound(&'static str),
    /// 409 `{"status": ...}`: the Page has no usable token.
    NoUsableToken(&'static str),
    /// Anything else (a busy actor, a broken store), rendered by [`ApiError`].
    Other(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Other(e)
    }
}

fn unexpected(e: impl Into<anyhow::Error>) -> Refusal {
    Refusal::Other(ApiError::Unexpected(e.into()))
}

impl Refusal {
    fn result(&self) -> ApiResult {
        match self {
            Refusal::Unauthenticated => ApiResult::Unauthorized,
            Refusal::Forbidden(_) => ApiResult::Forbidden,
            Refusal::BadRequest(_) => ApiResult::BadRequest,
            Refusal::NotFound(_) => ApiResult::NotFound,
            Refusal::NoUsableToken(_) => ApiResult::Conflict,
            Refusal::Other(ApiError::Unavailable(_)) => ApiResult::Unavailable,
            Refusal::Other(_) => ApiResult::Error,
        }
    }

    fn render(self) -> HttpResponse {
        match self {
            Refusal::Unauthenticated => HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(json!({ "error": "a valid API key is needed: Authorization: Bearer psk_..." })),
            Refusal::Forbidden(scope) => {
                HttpResponse::Forbidden().json(json!({ "error": format!("this API key lacks the {scope} scope") }))
            }
            Refusal::BadRequest(message) => HttpResponse::BadRequest().json(json!({ "error": message })),
            Refusal::NotFound(what) => HttpResponse::NotFound().json(json!({ "error": what })),
            Refusal::NoUsableToken(status) => HttpResponse::Conflict().json(json!({ "status": status })),
            Refusal::Other(e) => actix_web::ResponseError::error_response(&e),
        }
    }
}

/// Counts the answer and renders a refusal.
fn finish(state: &AppState, result: Result<HttpResponse, Refusal>) -> HttpResponse {
    match result {
        Ok(response) => {
            let counted =
                if response.status() == StatusCode::NOT_MODIFIED { ApiResult::NotModified } else { ApiResult::Ok };
            state.metrics.api_request(counted);
            response
        }
        Err(refusal) => {
            state.metrics.api_request(refusal.result());
            refusal.render()
        }
    }
}

/// Like [`finish`], for answers that may hold a token: none of them may be cached.
fn finish_no_store(state: &AppState, result: Result<HttpResponse, Refusal>) -> HttpResponse {
    let mut response = finish(state, result);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The bearer key of the request, if it has the shape of one.
fn bearer(req: &HttpRequest) -> Option<Secret> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    if value.len() > MAX_CREDENTIAL {
        return None;
    }
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && api_keys::well_formed(key)).then(|| Secret::new(key))
}

/// Checks the request's key: a live key, whatever its scopes.
async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<ApiKeyInfo, Refusal> {
    let key = bearer(req).ok_or(Refusal::Unauthenticated)?;
    let info = ask(&state.actors.api_keys, VerifyApiKey { key }).await?.map_err(unexpected)?;
    info.ok_or(Refusal::Unauthenticated)
}

/// Checks the request's key and that it has `scope`.
async fn authorize(state: &AppState, req: &HttpRequest, scope: Scope) -> Result<ApiKeyInfo, Refusal> {
    let info = authenticate(state, req).await?;
    if info.allows(scope) { Ok(info) } else { Err(Refusal::Forbidden(scope)) }
}

/// The status name `pagesync pages --json` shows.
fn status_of(state: Option<&PageState>) -> &'static str {
    state.map_or(SyncStatus::Pending, |s| s.status).as_str()
}

/// `GET /api/v1/pages[?shop=SHOP]` (`pages:read`).
pub async fn list_pages(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = list_pages_inner(&req, &state).await;
    finish(&state, result)
}

/// Most rows one `GET /api/v1/pages?limit=` answer holds.
pub const MAX_PAGE_LIMIT: usize = 1000;

async fn list_pages_inner(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, Refusal> {
    authorize(state, req, Scope::PagesRead).await?;
    let query: HashMap<String, String> = form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let wanted = query
        .get("shop")
        .map(|v| ShopDomain::parse(v).map_err(|e| Refusal::BadRequest(format!("shop: {e}"))))
        .transpose()?;
    let limit = query
        .get("limit")
        .map(|v| match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
            _ => Err(Refusal::BadRequest(format!("limit: must be a whole number from 1 to {MAX_PAGE_LIMIT}"))),
        })
        .transpose()?;
    let after = query
        .get("after")
        .map(|v| PageId::parse(v).map_err(|_| Refusal::BadRequest("after: must be a Page id".into())))
        .transpose()?;
    let mut shops = HashMap::new();
    // With `?shop=`, only that merchant's rows are read: shop -> UUID -> its Pages.
    let owner = match &wanted {
        Some(shop) => {
            match ask(&state.actors.sessions, UserOfShop { shop: shop.clone() }).await?.map_err(unexpected)? {
                None => return Ok(HttpResponse::Ok().json(json!({ "pages": [], "next": null }))),
                Some(owner) => {
                    shops.insert(owner.clone(), Some(shop.clone()));
                    Some(owner)
                }
            }
        }
        None => None,
    };
    // `limit` or `after` asks for one slice, read from the cursor on; neither keeps the
    // whole list of old.
    let (pages, next): (Vec<(PageId, UserId)>, Option<PageId>) = match (limit, &after, owner) {
        (None, None, Some(owner)) => {
            let pages = ask(&state.actors.vault, PagesOfOwner { owner: owner.clone() }).await?.map_err(unexpected)?;
            (pages.into_iter().map(|p| (p, owner.clone())).collect(), None)
        }
        (None, None, None) => (ask(&state.actors.vault, ListPages).await?.map_err(unexpected)?, None),
        (limit, after, owner) => {
            let msg = ListPagesFrom { owner, after: after.clone(), limit: limit.unwrap_or(MAX_PAGE_LIMIT) };
            let slice = ask(&state.actors.vault, msg).await?.map_err(unexpected)?;
            (slice.pages, slice.next)
        }
    };
    let mut rows = Vec::with_capacity(pages.len());
    // Three actor messages per slice of rows, not three per row.
    for slice in pages.chunks(MAX_PAGE_LIMIT) {
        rows.extend(describe_rows(state, &mut shops, slice).await?);
    }
    Ok(HttpResponse::Ok().json(json!({ "pages": rows, "next": next.as_ref().map(PageId::as_str) })))
}

/// The `/api/v1/pages` rows of `pages` (Page, owner), in order. `shops` caches each
/// owner's shop across slices.
async fn describe_rows(
    state: &AppState,
    shops: &mut HashMap<UserId, Option<ShopDomain>>,
    pages: &[(PageId, UserId)],
) -> Result<Vec<Value>, Refusal> {
    let mut unknown: Vec<UserId> =
        pages.iter().map(|(_, owner)| owner.clone()).filter(|o| !shops.contains_key(o)).collect();
    unknown.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    unknown.dedup();
    let ids: Vec<PageId> = pages.iter().map(|(page, _)| page.clone()).collect();
    let (found, summaries, subscriptions) = tokio::join!(
        ask(&state.actors.sessions, ShopsOfUsers { users: unknown.clone() }),
        ask(&state.actors.page_writer, DescribePages { pages: ids.clone() }),
        ask(&state.actors.subscriptions, GetPageSubscriptions { pages: ids }),
    );
    shops.extend(unknown.into_iter().zip(found?.map_err(unexpected)?));
    let (summaries, subscriptions) = (summaries?, subscriptions?);
    // Each answer has one entry per Page asked; anything else is a bug worth a 500.
    if summaries.len() != pages.len() || subscriptions.len() != pages.len() {
        return Err(unexpected(anyhow::anyhow!("an actor answered for a different number of Pages")));
    }
    Ok(pages
        .iter()
        .zip(summaries)
        .zip(subscriptions)
        .map(|(((page, owner), summary), subscription)| {
            json!({
                "id": page.as_str(),
                "name": summary.name,
                "shop": shops.get(owner).cloned().flatten().as_ref().map(ShopDomain::as_str),
                "status": status_of(summary.state.as_ref()),
                "subscribed": subscription.is_some_and(|s| s.subscribed),
                "last_sync": summary.state.as_ref().and_then(|s| s.last_success),
            })
        })
        .collect())
}

/// The Page named in the path and its owner; 404 for a non-digit id or a Page nobody
/// connected.
async fn known_page(state: &AppState, raw: &str) -> Result<(PageId, UserId), Refusal> {
    let page = PageId::parse(raw).map_err(|_| Refusal::NotFound("no such Page"))?;
    let owner = ask(&state.actors.vault, OwnerOfPage { page: page.clone() }).await?.map_err(unexpected)?;
    Ok((page, owner.ok_or(Refusal::NotFound("no such Page"))?))
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags match too (RFC 9110's
/// weak comparison is the one for `If-None-Match`).
fn none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).filter_map(|v| v.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(etag)
        })
    })
}

/// `GET /api/v1/pages/{id}` (`pages:read`): the Page's state and its `page_data.json`,
/// with an `ETag`; `If-None-Match` with that tag gets 304. A Page not fetched yet has
/// `etag` and `data` null and no `ETag` header.
pub async fn get_page(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let result = get_page_inner(&req, &path, &state).await;
    finish(&state, result)
}

async fn get_page_inner(req: &HttpRequest, raw: &str, state: &AppState) -> Result<HttpResponse, Refusal> {
    authorize(state, req, Scope::PagesRead).await?;
    let (page, owner) = known_page(state, raw).await?;
    let pages_dir = state.settings.data_dir.join("facebook");
    let file_page = page.clone();
    let bytes = web::block(move || page_writer::read_page_file(&pages_dir, &file_page))
        .await
        .map_err(unexpected)?
        .map_err(unexpected)?;
    let etag = bytes.as_deref().map(page_writer::etag_of);
    if let Some(etag) = &etag
        && none_match(req, etag)
    {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, format!("\"{etag}\"")))
            .insert_header((header::CACHE_CONTROL, "private, no-cache"))
            .finish());
    }
    let data = match &bytes {
        Some(bytes) => Some(serde_json::from_slice::<Value>(bytes).map_err(unexpected)?),
        None => None,
    };
    let page_state = ask(&state.actors.page_writer, GetPageState { page: page.clone() }).await?.map_err(unexpected)?;
    let shop = ask(&state.actors.sessions, ShopOfUser { user: owner }).await?.map_err(unexpected)?;
    let mut response = HttpResponse::Ok();
    // The bot should revalidate (cheap with the ETag) rather than trust a stale copy.
    response.insert_header((header::CACHE_CONTROL, "private, no-cache"));
    if let Some(etag) = &etag {
        response.insert_header((header::ETAG, format!("\"{etag}\"")));
    }
    Ok(response.json(json!({
        "id": page.as_str(),
        "shop": shop.as_ref().map(ShopDomain::as_str),
        "status": status_of(page_state.as_ref()),
        "last_sync": page_state.as_ref().and_then(|s| s.last_success),
        "etag": etag,
        "data": data,
    })))
}

/// `GET /api/v1/pages/{id}/token` (`tokens:read`): the Page's access token; 409
/// `{"status"}` when it has none that works (`needs_reauth`, `disconnected`, or no
/// token stored).
pub async fn page_token(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let result = page_token_inner(&req, &path, &state).await;
    finish_no_store(&state, result)
}

async fn page_token_inner(req: &HttpRequest, raw: &str, state: &AppState) -> Result<HttpResponse, Refusal> {
    let key = authorize(state, req, Scope::TokensRead).await?;
    let (page, _) = known_page(state, raw).await?;
    let page_state = ask(&state.actors.page_writer, GetPageState { page: page.clone() }).await?.map_err(unexpected)?;
    let status = page_state.as_ref().map(|s| s.status);
    if let Some(status @ (SyncStatus::NeedsReauth | SyncStatus::Disconnected)) = status {
        return Err(Refusal::NoUsableToken(status.as_str()));
    }
    let Some(credentials) = ask(&state.actors.vault, GetPageToken { page: page.clone() }).await?.map_err(unexpected)?
    else {
        // Ownership without a token: the token was forgotten (a removal callback).
        return Err(Refusal::NoUsableToken(SyncStatus::Disconnected.as_str()));
    };
    tracing::info!(key_name = %key.name, key_id = key.id, page_id = %page, "API: Page token read");
    state.metrics.token_read(TokenKind::Page);
    Ok(HttpResponse::Ok().json(json!({
        "page_id": page.as_str(),
        "access_token": credentials.token.expose(),
    })))
}

/// `GET /api/v1/shops/{shop}/token` (`tokens:read`): the shop's Shopify access token.
pub async fn shop_token(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let result = shop_token_inner(&req, &path, &state).await;
    finish_no_store(&state, result)
}

async fn shop_token_inner(req: &HttpRequest, raw: &str, state: &AppState) -> Result<HttpResponse, Refusal> {
    let key = authorize(state, req, Scope::TokensRead).await?;
    let shop = ShopDomain::parse(raw).map_err(|_| Refusal::NotFound("no such shop"))?;
    let token = ask(&state.actors.vault, GetShopToken { shop: shop.clone() })
        .await?
        .map_err(unexpected)?
        .ok_or(Refusal::NotFound("no such shop"))?;
    tracing::info!(key_name = %key.name, key_id = key.id, shop = %shop, "API: shop token read");
    state.metrics.token_read(TokenKind::Shop);
    Ok(HttpResponse::Ok().json(json!({
        "shop": shop.as_str(),
        "access_token": token.access_token.expose(),
        "scope": token.scope,
    })))
}

/// Any other path or method below `/api/v1`: 404 as JSON, after the key check like
/// the rest (a caller without a key learns nothing about which routes exist).
pub async fn not_found(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = match authenticate(&state, &req).await {
        Ok(_) => Err(Refusal::NotFound("no such API route")),
        Err(refusal) => Err(refusal),
    };
    finish(&state, result)
}
