//! `GET /metrics` (OpenMetrics text) and request ids.

use pagesync_actors::messages::SyncStatus;

use std::time::Duration;

use crate::helpers::{Options, TestApp, delivery, eventually, spawn_app, start_app, unix_now};
use pagesync::emulator::Fault;

pub(crate) async fn scrape(app: &TestApp) -> String {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    resp.text().await.unwrap()
}

/// The value of the sample named exactly `sample` (name plus labels).
pub(crate) fn value(text: &str, sample: &str) -> Option<f64> {
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
    assert_eq!(value(&text, "pagesync_graph_requests_total{endpoint=\"page\",result=\"ok\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_graph_requests_total{endpoint=\"page\",result=\"auth\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_graph_request_duration_seconds_count{endpoint=\"page\"}"), Some(2.0));
    assert_eq!(value(&text, "pagesync_page_refreshes_total{result=\"written\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_page_refreshes_total{result=\"error\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_inbox_depth"), Some(0.0));
    assert_eq!(value(&text, "pagesync_pages{status=\"synced\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_pages{status=\"needs_reauth\"}"), Some(1.0));
    assert_eq!(value(&text, "pagesync_pages{status=\"pending\"}"), Some(0.0));
    assert!(value(&text, "pagesync_poll_runs_total").is_some());
    let webhook_posts =
        "pagesync_http_request_duration_seconds_count{method=\"POST\",route=\"/facebook/webhook\",code=\"200\"}";
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

/// The names of every sample in an exposition (`name{labels} value` or `name value`).
fn sample_names(text: &str) -> std::collections::BTreeSet<&str> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect()
}

/// The age the scrape taken between `before` and `after` (unix seconds) must show for
/// a Page whose last success was `last_success`: bounds from the clock, no timing.
fn assert_age_between(text: &str, last_success: u64, before: u64, after: u64) {
    let age = value(text, "pagesync_stalest_sync_age_seconds").expect("the stalest age is exposed");
    let (low, high) = (before.saturating_sub(last_success) as f64, after.saturating_sub(last_success) as f64);
    assert!(low <= age && age <= high, "age {age} not in [{low}, {high}]");
}

async fn timed_scrape(app: &TestApp) -> (String, u64, u64) {
    let before = unix_now();
    let text = scrape(app).await;
    (text, before, unix_now())
}

#[actix_web::test]
async fn build_info_names_the_version() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    let sample = format!("pagesync_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION"));
    let line = text.lines().find(|l| l.starts_with(&sample)).unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(text.contains("# TYPE pagesync_build info\n"), "{text}");
}

#[cfg(target_os = "linux")]
#[actix_web::test]
async fn process_metrics_are_exposed_with_sane_values() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    let get = |name: &str| value(&text, name).unwrap_or_else(|| panic!("{name} missing: {text}"));
    let resident = get("process_resident_memory_bytes");
    assert!(resident > 0.0);
    assert!(get("process_virtual_memory_bytes") >= resident);
    let open = get("process_open_fds");
    assert!(open >= 3.0, "{open}");
    // The soft limit may be unlimited (then left out); when there, it holds what is open.
    if let Some(max) = value(&text, "process_max_fds") {
        assert!(max >= open, "{max} < {open}");
    }
    assert!(get("process_cpu_seconds_total") >= 0.0);
    let start = get("process_start_time_seconds");
    assert!(start > 1_577_836_800.0 && start <= unix_now() as f64 + 1.0, "{start}");
    assert!(!text.contains("pagesync_process_"), "process metrics carry their usual names");
}

#[actix_web::test]
async fn the_stalest_sync_age_follows_syncs_survives_a_restart_and_skips_pages_needing_reauth() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, "pagesync_stalest_sync_age_seconds"), None, "no Page synced yet: {text}");

    app.connect_page("8201", "t1", "First").await;
    assert_eq!(app.post_webhook(&delivery(&["8201"])).await.status(), 200);
    let first = app.wait_for_status("8201", SyncStatus::Synced).await.last_success.unwrap();
    let (text, before, after) = timed_scrape(&app).await;
    assert_age_between(&text, first, before, after);

    // A second Page syncing later (or in the same second) never makes it younger:
    // the stalest is the older of the two.
    app.connect_page("8202", "t2", "Second").await;
    assert_eq!(app.post_webhook(&delivery(&["8202"])).await.status(), 200);
    let second = app.wait_for_status("8202", SyncStatus::Synced).await.last_success.unwrap();
    assert!(second >= first);
    let (text, before, after) = timed_scrape(&app).await;
    assert_age_between(&text, first, before, after);
    app.wait_idle().await;

    // Built again from the store at start-up.
    let (dir, key, graph) = app.stop().await;
    let app = start_app(dir, key, graph, Options::default()).await;
    let (text, before, after) = timed_scrape(&app).await;
    assert_age_between(&text, first, before, after);

    // needs_reauth Pages leave the figure: the other Page's success counts.
    app.graph.set_sticky_fault("8201", Some(Fault::GraphError(190)));
    assert_eq!(app.post_webhook(&delivery(&["8201"])).await.status(), 200);
    app.wait_for_status("8201", SyncStatus::NeedsReauth).await;
    let (text, before, after) = timed_scrape(&app).await;
    assert_age_between(&text, second, before, after);

    app.graph.set_sticky_fault("8202", Some(Fault::GraphError(190)));
    assert_eq!(app.post_webhook(&delivery(&["8202"])).await.status(), 200);
    app.wait_for_status("8202", SyncStatus::NeedsReauth).await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, "pagesync_stalest_sync_age_seconds"), None, "{text}");
    assert_eq!(value(&text, "pagesync_pages{status=\"needs_reauth\"}"), Some(2.0), "{text}");
}

#[actix_web::test]
async fn every_refresh_result_is_one_series_of_page_refreshes_total() {
    let app = spawn_app().await;
    app.connect_page("8301", "t1", "Steady").await;
    app.connect_page("8302", "t2", "Refused").await;
    app.graph.set_sticky_fault("8302", Some(Fault::GraphError(190)));
    assert_eq!(app.post_webhook(&delivery(&["8301", "8302", "8399"])).await.status(), 200);
    app.wait_for_status("8301", SyncStatus::Synced).await;
    app.wait_for_status("8302", SyncStatus::NeedsReauth).await;
    app.wait_idle().await;
    // The same answer again (unchanged), and a Page that needs reauth (skipped).
    assert_eq!(app.post_webhook(&delivery(&["8301", "8302"])).await.status(), 200);
    app.wait_idle().await;

    let text = scrape(&app).await;
    let refreshes = |result: &str| value(&text, &format!("pagesync_page_refreshes_total{{result=\"{result}\"}}"));
    assert_eq!(refreshes("written"), Some(1.0), "{text}");
    assert_eq!(refreshes("unchanged"), Some(1.0), "{text}");
    assert_eq!(refreshes("error"), Some(1.0), "{text}");
    assert_eq!(refreshes("unknown_page"), Some(1.0), "{text}");
    assert_eq!(refreshes("skipped"), Some(1.0), "{text}");
    // The four counters this family replaced are gone.
    for old in [
        "pagesync_page_writes_total",
        "pagesync_page_refreshes_unchanged_total",
        "pagesync_page_refresh_errors_total",
        "pagesync_unknown_pages_total",
    ] {
        assert!(!text.contains(old), "{old} still exposed");
    }
    // Other events keep one family each, with every result present from the start.
    assert_eq!(value(&text, "pagesync_webhook_deliveries_total{result=\"too_large\"}"), Some(0.0), "{text}");
    assert_eq!(value(&text, "pagesync_poll_refreshes_total{result=\"synced\"}"), Some(0.0), "{text}");
    assert_eq!(value(&text, "pagesync_poll_refreshes_total{result=\"not_synced\"}"), Some(0.0), "{text}");
    assert_eq!(value(&text, "pagesync_graph_requests_total{endpoint=\"page\",result=\"ok\"}"), Some(2.0), "{text}");
}

#[actix_web::test]
async fn the_http_status_label_is_code() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/no/such/path").await.status(), 404);
    let text = scrape(&app).await;
    let count = |labels: &str| value(&text, &format!("pagesync_http_request_duration_seconds_count{{{labels}}}"));
    assert_eq!(count("method=\"GET\",route=\"/healthz\",code=\"200\""), Some(1.0), "{text}");
    assert_eq!(count("method=\"GET\",route=\"unmatched\",code=\"404\""), Some(1.0), "{text}");
    let http_lines: Vec<&str> =
        text.lines().filter(|l| l.starts_with("pagesync_http_request_duration_seconds")).collect();
    assert!(!http_lines.is_empty());
    assert!(http_lines.iter().all(|l| !l.contains("status=")), "{http_lines:?}");
}

#[actix_web::test]
async fn readiness_and_the_poll_interval_are_exposed() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, "pagesync_ready"), Some(1.0), "{text}");
    let expected = app.settings.poll_interval.map_or(0, |i| i.as_secs()) as f64;
    assert_eq!(value(&text, "pagesync_poll_interval_seconds"), Some(expected), "{text}");
}

/// docs/alerts.yml stays true: every pagesync or process metric its rules use is a
/// sample in a scrape of an app that synced a Page and called Graph.
#[actix_web::test]
async fn every_metric_the_example_alerts_use_is_exposed() {
    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.yml")).unwrap();
    let mut used = std::collections::BTreeSet::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = ["pagesync_", "process_"].iter().filter_map(|p| rest.find(p)).min() {
            let tail = &rest[at..];
            let end =
                tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
            // `at` must start a name, not sit inside one (e.g. `my_process_x`).
            let starts_name = rest[..at].chars().next_back().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            if starts_name {
                used.insert(tail[..end].to_owned());
            }
            rest = &tail[end.max(1)..];
        }
    }
    assert!(used.len() >= 10, "the rules name few metrics: {used:?}");

    let app = spawn_app().await;
    app.connect_page("8401", "t1", "Watched").await;
    assert_eq!(app.post_webhook(&delivery(&["8401"])).await.status(), 200);
    app.wait_for_status("8401", SyncStatus::Synced).await;
    let text = scrape(&app).await;
    let exposed = sample_names(&text);
    let missing: Vec<&String> = used.iter().filter(|name| !exposed.contains(name.as_str())).collect();
    assert!(missing.is_empty(), "docs/alerts.yml uses metrics /metrics does not expose: {missing:?}\n{text}");
}

/// Pages by status, refresh results, the inbox and the app subscription in a scrape
/// follow a merchant's Pages through connect, sync, a refused token, deauthorize and
/// uninstall: each scrape right after the event is acknowledged shows it (the figures
/// are published as they change, not refreshed on a timer).
#[actix_web::test]
async fn the_scraped_figures_follow_a_merchants_pages_through_every_change() {
    let app = spawn_app().await;
    let pages = |text: &str| -> Vec<f64> {
        ["pending", "synced", "error", "rate_limited", "needs_reauth", "disconnected"]
            .iter()
            .map(|status| value(text, &format!("pagesync_pages{{status=\"{status}\"}}")).unwrap_or(-1.0))
            .collect()
    };
    let refreshes =
        |text: &str, result: &str| value(text, &format!("pagesync_page_refreshes_total{{result=\"{result}\"}}"));
    let text = scrape(&app).await;
    assert_eq!(pages(&text), [0.0; 6], "{text}");
    assert_eq!(value(&text, "pagesync_app_subscription{state=\"pending\"}"), Some(1.0), "{text}");

    let (install, user, _) = app.merchant(&[("8501", "Kept"), ("8502", "Refused")]).await;
    app.wait_for_status("8501", SyncStatus::Synced).await;
    app.wait_for_status("8502", SyncStatus::Synced).await;
    app.wait_idle().await;
    let text = scrape(&app).await;
    assert_eq!(pages(&text), [0.0, 2.0, 0.0, 0.0, 0.0, 0.0], "{text}");
    assert_eq!(refreshes(&text, "written"), Some(2.0), "{text}");
    assert_eq!(value(&text, "pagesync_inbox_depth"), Some(0.0), "{text}");
    assert_eq!(value(&text, "pagesync_refreshes_running"), Some(0.0), "{text}");
    assert!(value(&text, "pagesync_stalest_sync_age_seconds").is_some(), "{text}");
    // The app-level subscription is made in the background of the connect.
    let subscribed = eventually(Duration::from_secs(10), || {
        let app = &app;
        async move { value(&scrape(app).await, "pagesync_app_subscription{state=\"subscribed\"}") == Some(1.0) }
    })
    .await;
    assert!(subscribed, "{}", scrape(&app).await);

    // A delivery: one Page unchanged, the other's token refused.
    app.graph.set_sticky_fault("8502", Some(Fault::GraphError(190)));
    assert_eq!(app.post_webhook(&delivery(&["8501", "8502"])).await.status(), 200);
    app.wait_for_status("8502", SyncStatus::NeedsReauth).await;
    app.wait_idle().await;
    let text = scrape(&app).await;
    assert_eq!(pages(&text), [0.0, 1.0, 0.0, 0.0, 1.0, 0.0], "{text}");
    assert_eq!(refreshes(&text, "unchanged"), Some(1.0), "{text}");
    assert_eq!(refreshes(&text, "error"), Some(1.0), "{text}");

    // The user removes the app: both Pages disconnected, none left to age.
    let resp = app.post_signed_request("/facebook/deauthorize", &TestApp::user_payload(&user)).await;
    assert_eq!(resp.status(), 200);
    app.wait_for_status("8501", SyncStatus::Disconnected).await;
    app.wait_for_status("8502", SyncStatus::Disconnected).await;
    let text = scrape(&app).await;
    assert_eq!(pages(&text), [0.0, 0.0, 0.0, 0.0, 0.0, 2.0], "{text}");
    assert_eq!(value(&text, "pagesync_stalest_sync_age_seconds"), None, "{text}");

    // The shop uninstalls: the Pages are forgotten.
    let resp = app.post_shopify_webhook("app/uninstalled", &install.shop, &TestApp::shop_body(&install.shop)).await;
    assert_eq!(resp.status(), 200);
    let forgotten = eventually(Duration::from_secs(10), || {
        let app = &app;
        async move { app.page_state("8501").await.is_none() && app.page_state("8502").await.is_none() }
    })
    .await;
    assert!(forgotten, "the Pages' states are still there");
    let text = scrape(&app).await;
    assert_eq!(pages(&text), [0.0; 6], "{text}");
}

/// `pagesync_ready` is the background readiness check's result: an actor that stops
/// answering turns it to 0 without `/readyz` being asked, and the scrape still has
/// every other figure.
#[actix_web::test]
async fn pagesync_ready_turns_to_0_when_an_actor_stops_answering() {
    let app = spawn_app().await;
    assert_eq!(value(&scrape(&app).await, "pagesync_ready"), Some(1.0));
    app.actors.vault.send(pagesync_actors::messages::Shutdown).await.unwrap();
    let turned = eventually(Duration::from_secs(10), || {
        let app = &app;
        async move { value(&scrape(app).await, "pagesync_ready") == Some(0.0) }
    })
    .await;
    let text = scrape(&app).await;
    assert!(turned, "{text}");
    assert_eq!(value(&text, "pagesync_inbox_depth"), Some(0.0), "{text}");
    assert_eq!(value(&text, "pagesync_pages{status=\"synced\"}"), Some(0.0), "{text}");
}
