//! Liveness, readiness and the metrics exposition.

use actix_web::{HttpResponse, web};

use crate::app_state::AppState;
use crate::clock::unix_now;
use crate::health::{PING_TIMEOUT, not_ready};
use crate::metrics::{CONTENT_TYPE, ProcessStats, Snapshot};

/// `GET /healthz`: 200 `ok` while the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

/// `GET /readyz`: 200 when the store is open and every actor answers a ping in time;
/// else 503 naming what is not ready.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = not_ready(&state.store, &state.actors, PING_TIMEOUT).await;
    // A live result is as good as the background task's: the next scrape may use it.
    state.readiness.record(not_ready.is_empty());
    if not_ready.is_empty() {
        HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("not ready: {}", not_ready.join(", ")))
    }
}

/// `GET /metrics`: the OpenMetrics exposition (see crate::metrics and
/// docs/operations.md). The actors' figures are read from what they publish
/// (`Actors::published`: atomics they update as the figures change), never asked
/// through a mailbox, so a scrape does not wait behind webhook deliveries.
/// `pagesync_ready` is the background readiness check's latest result (see
/// `health`).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let ready = state.readiness.for_scrape(&state.store, &state.actors).await;
    let published = &state.actors.published;
    let (writer, poll) = (published.writer.stats(), published.poll.stats());
    let snapshot = Snapshot {
        ready,
        poll_interval_seconds: state.settings.poll_interval.map_or(0, |i| i.as_secs()),
        process: ProcessStats::read(),
        inbox_depth: writer.inbox_depth as u64,
        refreshes_running: writer.running as u64,
        pages_written: writer.pages_written,
        pages_unchanged: writer.pages_unchanged,
        refresh_errors: writer.refresh_errors,
        unknown_pages: writer.unknown_pages,
        refreshes_skipped: writer.refreshes_skipped,
        pages_by_status: published.writer.pages_by_status().into_iter().map(|(s, n)| (s.as_str(), n)).collect(),
        // A clock set back makes a success look future: age 0, never an underflow.
        stalest_sync_age_seconds: published.writer.stalest_success().map(|s| unix_now().saturating_sub(s)),
        outbox: published.outbox.stats(),
        app_subscription: Some(published.app_subscription.status()),
        poll_runs: poll.runs,
        poll_refreshes: poll.refreshes,
        poll_synced: poll.written,
    };
    match state.metrics.render(&snapshot) {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot encode");
            HttpResponse::InternalServerError().finish()
        }
    }
}
