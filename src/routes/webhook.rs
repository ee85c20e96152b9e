//! Meta webhooks: the verification GET and the delivery POST (docs/contract.md §4).
//!
//! The POST path, in order: a declared length over the limit is refused (413) before
//! a byte is read; the signature headers must be present and well formed (401); the
//! body is read up to the limit (413 past it) and within the deadline (408 after it,
//! see [`crate::body`]); the signature is checked on those raw bytes (401); only then
//! is JSON parsed (400). A delivery for the `page` object is
//! handed to the PageWriterActor, which answers once it is durable in the inbox; the
//! Graph API is never called here.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use pagesync_actors::PageId;
use pagesync_actors::messages::{AcceptDelivery, Forward, InboxError};

use crate::app_state::AppState;
use crate::body::{self, BodyLimits};
use crate::delivery::{self, Parsed};
use crate::error::ApiError;
use crate::metrics::DeliveryResult;
use crate::verify::{MetaSignatures, constant_time_eq};

/// How long a request waits for the writer's mailbox and the inbox commit before it
/// answers 503 (Meta retries). Far below Meta's 5 s answer budget for Messenger.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /facebook/webhook`: Meta's verification request.
#[tracing::instrument(skip_all)]
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Ok(query) = web::Query::<HashMap<String, String>>::from_query(req.query_string()) else {
        return HttpResponse::Forbidden().finish();
    };
    let mode_ok = query.get("hub.mode").is_some_and(|m| m == "subscribe");
    let token_ok = query
        .get("hub.verify_token")
        .is_some_and(|t| constant_time_eq(t, state.settings.facebook.verify_token.expose()));
    match query.get("hub.challenge") {
        Some(challenge) if mode_ok && token_ok && !challenge.is_empty() => {
            tracing::info!("webhook verification accepted");
            HttpResponse::Ok().content_type("text/plain").body(challenge.clone())
        }
        _ => {
            tracing::warn!(mode_ok, token_ok, "webhook verification refused");
            HttpResponse::Forbidden().finish()
        }
    }
}

/// `POST /facebook/webhook`: a delivery.
#[tracing::instrument(skip_all)]
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let answer = receive_inner(&req, payload, &state).await;
    state.metrics.delivery(match &answer {
        Ok((_, result)) => *result,
        Err(ApiError::PayloadTooLarge(_)) => DeliveryResult::TooLarge,
        Err(ApiError::RequestTimeout) => DeliveryResult::TimedOut,
        Err(ApiError::Unauthorized(_)) => DeliveryResult::Unauthorized,
        Err(ApiError::BadRequest(_)) => DeliveryResult::BadRequest,
        Err(ApiError::Unavailable(_)) => DeliveryResult::Unavailable,
        Err(_) => DeliveryResult::Error,
    });
    answer.map(|(response, _)| response)
}

async fn receive_inner(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(HttpResponse, DeliveryResult), ApiError> {
    let limits = BodyLimits { max_bytes: state.settings.webhook_max_bytes, deadline: state.webhook_body_deadline };
    body::check_declared(req, limits)?;
    let signatures = MetaSignatures::from_headers(req.headers()).map_err(|e| {
        tracing::warn!(error = %e, "delivery refused");
        ApiError::Unauthorized("invalid signature")
    })?;

    let body = body::read_body(req, payload, limits).await.map_err(|e| {
        tracing::warn!(error = %e, "delivery body not read");
        ApiError::from(e)
    })?;

    let verified = signatures.verify(&state.settings.facebook.app_secret, body).map_err(|e| {
        tracing::warn!(error = %e, "delivery refused");
        ApiError::Unauthorized("invalid signature")
    })?;
    let raw = verified.get().clone();
    let parsed = delivery::parse(verified, &state.settings.facebook.subscribed_fields)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Every verified JSON delivery, of any object, is the bot's too (docs/contract.md §7).
    let forward = |lane: String| {
        state.settings.bot.forward_url.as_ref().map(|_| Forward {
            lane,
            headers: relayed_headers(req),
            body: raw.clone(),
        })
    };
    match parsed.into_inner() {
        Parsed::Ignored { lane } => {
            let forward = forward(lane);
            if forward.is_some() {
                accept(state, Vec::new(), forward).await?;
            }
            tracing::debug!("delivery for another object: not refreshed");
            Ok((HttpResponse::Ok().json(serde_json::json!({ "status": "ignored" })), DeliveryResult::Ignored))
        }
        Parsed::Page(delivery) => {
            if delivery.rejected > 0 {
                tracing::warn!(rejected = delivery.rejected, "entries with invalid Page ids skipped");
            }
            let forward = forward(delivery.lane);
            accept(state, delivery.pages, forward).await?;
            Ok((HttpResponse::Ok().json(serde_json::json!({ "status": "success" })), DeliveryResult::Success))
        }
    }
}

/// The headers a relayed delivery carries exactly as Meta sent them (only those
/// present), so the bot's own signature check works unchanged.
fn relayed_headers(req: &HttpRequest) -> Vec<(String, String)> {
    ["content-type", "x-hub-signature-256", "x-hub-signature"]
        .into_iter()
        .filter_map(|name| {
            let value = req.headers().get(name)?.to_str().ok()?;
            let canonical = match name {
                "content-type" => "Content-Type",
                "x-hub-signature-256" => "X-Hub-Signature-256",
                _ => "X-Hub-Signature",
            };
            Some((canonical.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Hands a verified delivery (the Pages to refresh and the forward, if any) to the
/// writer and waits until it is durable.
async fn accept(state: &AppState, pages: Vec<PageId>, forward: Option<Forward>) -> Result<(), ApiError> {
    let sent = state.actors.page_writer.send(AcceptDelivery { pages, forward }).timeout(ACCEPT_TIMEOUT).await;
    match sent {
        Ok(Ok(receipt)) => {
            tracing::debug!(seq = ?receipt.seq, pages = receipt.pages, forwarded = receipt.forwarded, "delivery stored");
            Ok(())
        }
        Ok(Err(InboxError::ShuttingDown)) => Err(ApiError::Unavailable("shutting down")),
        Ok(Err(InboxError::Store(e))) => Err(ApiError::Unexpected(e.into())),
        Err(e) => {
            tracing::warn!(error = %e, "page writer did not take the delivery in time");
            Err(ApiError::Unavailable("busy, try again"))
        }
    }
}
