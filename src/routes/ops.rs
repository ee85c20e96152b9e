//! Liveness, readiness and the metrics exposition.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use pagesync_actors::messages::{CountPagesByStatus, GetStalestSync, GetWriterStats};
use pagesync_actors::outbox::GetOutboxStats;
use pagesync_actors::poller::GetPollStats;
use pagesync_actors::subscription::{GetSubscription, SubscriptionStatus};

use crate::app_state::AppState;
use crate::clock::unix_now;
use crate::health::not_ready;
use crate::metrics::{CONTENT_TYPE, ProcessStats, Snapshot};

/// How long an actor may take to answer a readiness ping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 `ok` while the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

/// `GET /readyz`: 200 when the store is open and every actor answers a ping in time;
/// else 503 naming what is not ready.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = not_ready(&state.store, &state.actors, PING_TIMEOUT).await;
    if not_ready.is_empty() {
        HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("not ready: {}", not_ready.join(", ")))
    }
}

/// `GET /metrics`: the OpenMetrics exposition (see crate::metrics and
/// docs/operations.md). Figures an actor cannot give in time are left out rather
/// than reported wrong, and the failure is logged. `pagesync_ready` is the same check
/// as `GET /readyz`, asked in parallel with the rest, so a scrape still takes at most
/// one `PING_TIMEOUT` when an actor hangs.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let actors = &state.actors;
    let (not_ready, writer, counts, stalest, poll, outbox, subscription) = tokio::join!(
        not_ready(&state.store, actors, PING_TIMEOUT),
        actors.page_writer.send(GetWriterStats).timeout(PING_TIMEOUT),
        actors.page_writer.send(CountPagesByStatus).timeout(PING_TIMEOUT),
        actors.page_writer.send(GetStalestSync).timeout(PING_TIMEOUT),
        actors.poller.send(GetPollStats).timeout(PING_TIMEOUT),
        actors.outbox.addr.send(GetOutboxStats).timeout(PING_TIMEOUT),
        actors.subscriptions.send(GetSubscription { page: None }).timeout(PING_TIMEOUT),
    );
    let mut snapshot = Snapshot {
        ready: not_ready.is_empty(),
        poll_interval_seconds: state.settings.poll_interval.map_or(0, |i| i.as_secs()),
        process: ProcessStats::read(),
        ..Snapshot::default()
    };
    match writer {
        Ok(w) => {
            snapshot.inbox_depth = w.inbox_depth as u64;
            snapshot.refreshes_running = w.running as u64;
            snapshot.pages_written = w.pages_written;
            snapshot.pages_unchanged = w.pages_unchanged;
            snapshot.refresh_errors = w.refresh_errors;
            snapshot.unknown_pages = w.unknown_pages;
            snapshot.refreshes_skipped = w.refreshes_skipped;
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the page writer did not answer"),
    }
    match counts {
        Ok(Ok(counts)) => snapshot.pages_by_status = counts.into_iter().map(|(s, n)| (s.as_str(), n)).collect(),
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot count Pages by status"),
        Err(e) => tracing::warn!(error = %e, "metrics: the page writer did not answer"),
    }
    match stalest {
        // A clock set back makes a success look future: age 0, never an underflow.
        Ok(stalest) => snapshot.stalest_sync_age_seconds = stalest.map(|s| unix_now().saturating_sub(s.last_success)),
        Err(e) => tracing::warn!(error = %e, "metrics: the page writer did not answer"),
    }
    match poll {
        Ok(p) => {
            snapshot.poll_runs = p.runs;
            snapshot.poll_refreshes = p.refreshes;
            snapshot.poll_synced = p.written;
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the poller did not answer"),
    }
    match outbox {
        Ok(o) => snapshot.outbox = o,
        Err(e) => tracing::warn!(error = %e, "metrics: the outbox did not answer"),
    }
    match subscription {
        // Never made yet counts as pending.
        Ok(app) => snapshot.app_subscription = Some(app.map_or(SubscriptionStatus::Pending, |s| s.status())),
        Err(e) => tracing::warn!(error = %e, "metrics: the subscription actor did not answer"),
    }
    match state.metrics.render(&snapshot) {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot encode");
            HttpResponse::InternalServerError().finish()
        }
    }
}
