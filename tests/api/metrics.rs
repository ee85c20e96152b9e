//! `GET /metrics` (OpenMetrics text) and request ids.

use pagesync_actors::messages::SyncStatus;

use crate::helpers::{TestApp, delivery, spawn_app};
use pagesync::emulator::Fault;

async fn scrape(app: &TestApp) -> String {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    resp.text().await.unwrap()
}

/// The value of the sample named exactly `sample` (name plus labels).
fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[actix_web::test]
async fn metrics_count_deliveries_graph_requests_writes_and_pages_by_status() {
    let app = spawn_app().await;
    app.connect_page("8101", "t1", "Counted").await;
    app.connect_page("8102", "t2", "Refused").await;
    app.graph.set_sticky_fault("8102", Some(Fault::GraphError(190)));

    assert_eq!(app.post_webhook(&delivery(&["8101", "8102"])).await.status(), 200);
    assert_eq!(app.post_webhook(r#"{"object":"user","entry":[]}"#).await.status(), 200);
    let unsigned = app.post_webhook_with(&delivery(&["8101"]), &[]).await;
    assert_eq!(unsigned.status(), 401);
    app.wait_for_status("8101", SyncStatus::Synced).await;
    app.wait_for_status("8102", SyncStatus::NeedsReauth).await;
    app.wait_idle().await;

    let text = scrape(&app).await;
    assert_eq!(value(&text, "pagesync_webhook_deliveries_total{result=\"success\"}"), Some(1.0), "{text}");
    assert_eq!(value(&text, "pagesync_webhook_deliveries_total{result=\"ignored\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_webhook_deliveries_total{result=\"unauthorized\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_graph_requests_total{endpoint=\"page\",outcome=\"ok\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_graph_requests_total{endpoint=\"page\",outcome=\"auth\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_graph_request_duration_seconds_count{endpoint=\"page\"}"), Some(2.0));
    assert_eq!(value(&text, "pagesync_page_writes_total"), Some(1.0));
    assert_eq!(value(&text, "pagesync_page_refresh_errors_total"), Some(1.0));
    assert_eq!(value(&text, "pagesync_inbox_depth"), Some(0.0));
    assert_eq!(value(&text, "pagesync_pages{status=\"synced\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_pages{status=\"needs_reauth\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_pages{status=\"pending\"}"), Some(0.0));
    assert!(value(&text, "pagesync_poll_runs_total").is_some());
    let webhook_posts =
        "pagesync_http_request_duration_seconds_count{method=\"POST\",route=\"/facebook/webhook\",status=\"200\"}";
    assert_eq!(value(&text, webhook_posts), Some(2.0), "{text}");
    assert!(text.contains("# TYPE pagesync_http_request_duration_seconds histogram"));
    assert!(text.ends_with("# EOF\n"));
}

#[actix_web::test]
async fn every_answer_carries_a_request_id_and_a_sane_one_is_kept() {
    let app = spawn_app().await;
    let first = app.get("/healthz").await;
    let generated = first.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 16);
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    let second = app.get("/healthz").await;
    assert_ne!(second.headers()["x-request-id"], generated.as_str(), "ids are per request");

    let kept = app.get_with("/healthz", None, &[("X-Request-Id", "edge-proxy-42")]).await;
    assert_eq!(kept.headers()["x-request-id"], "edge-proxy-42");
    // Anything else (too long, odd characters) is replaced, not echoed.
    let odd = app.get_with("/healthz", None, &[("X-Request-Id", "<script>")]).await;
    assert_ne!(odd.headers()["x-request-id"], "<script>");
    assert_eq!(odd.headers()["x-request-id"].len(), 16);
}
