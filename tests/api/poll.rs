//! The daily re-sync (docs/contract.md §5), run here every second.

use std::time::{Duration, Instant};

use pagesync_actors::messages::SyncStatus;
use pagesync_actors::poller::{GetPollStats, PollStats};

use crate::helpers::{Options, TestApp, spawn_app_with};
use pagesync::emulator::Fault;

async fn polling_app() -> TestApp {
    spawn_app_with(Options { env: vec![("PAGESYNC_POLL_INTERVAL", "1s".into())], ..Options::default() }).await
}

async fn wait_for_runs(app: &TestApp, runs: u64) -> PollStats {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = app.actors.poller.send(GetPollStats).await.unwrap();
        if stats.runs >= runs && !stats.running {
            return stats;
        }
        assert!(Instant::now() < deadline, "only {} poll runs: {stats:?}", stats.runs);
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn the_poll_heals_a_page_whose_webhook_never_came() {
    let app = polling_app().await;
    app.connect_page("6001", "t", "Never notified").await;
    app.wait_for_name("6001", "Never notified").await;
    app.graph.set_name("6001", "Changed quietly");
    app.wait_for_name("6001", "Changed quietly").await;
    let stats = wait_for_runs(&app, 2).await;
    assert!(stats.written >= 2, "{stats:?}");
}

#[actix_web::test]
async fn the_poll_skips_pages_that_need_reauth() {
    let app = polling_app().await;
    app.connect_page("6002", "t", "Dead").await;
    app.graph.set_sticky_fault("6002", Some(Fault::GraphError(190)));
    app.wait_for_status("6002", SyncStatus::NeedsReauth).await;
    let before = wait_for_runs(&app, 1).await;
    let gets = app.graph.gets("6002");
    assert_eq!(gets, 1);
    wait_for_runs(&app, before.runs + 2).await;
    assert_eq!(app.graph.gets("6002"), 1, "a needs_reauth Page is not fetched by the poll");
}

#[actix_web::test]
async fn the_poll_backs_off_on_a_rate_limit_and_resumes() {
    let app = polling_app().await;
    app.connect_page("6003", "t", "Limited").await;
    app.graph.push_fault("6003", Fault::GraphError(4));
    app.wait_for_name("6003", "Limited").await;
    // The first fetch was refused with code 4; the Page was paused, then fetched again.
    assert!(app.graph.gets("6003") >= 2);
    app.wait_for_status("6003", SyncStatus::Synced).await;
}

#[actix_web::test]
async fn the_poll_checks_tokens_with_debug_token_and_marks_revoked_ones() {
    let app = polling_app().await;
    app.connect_page("6004", "tok-6004-valid", "Still good").await;
    app.connect_page("6005", "tok-6005-revoked", "Revoked").await;
    app.graph.revoke_token("tok-6005-revoked");
    app.wait_for_status("6005", SyncStatus::NeedsReauth).await;
    app.wait_for_status("6004", SyncStatus::Synced).await;
    let state = app.page_state("6005").await.unwrap();
    assert!(state.last_error.unwrap().contains("debug_token"));
    assert_eq!(app.graph.gets("6005"), 0, "a revoked token is not used to fetch");
    let checks = app.graph.calls_to("GET", "/v25.0/debug_token");
    assert!(checks.len() >= 2, "{checks:?}");
    let app_token = format!("{}|{}", pagesync::emulator::APP_ID, crate::helpers::APP_SECRET);
    assert!(checks.iter().all(|c| c.token.as_deref() == Some(app_token.as_str())));
    assert!(!app.page_file("6005").exists());
}

#[actix_web::test]
async fn high_graph_usage_slows_the_poll() {
    // 95 % in X-App-Usage: before each Page the poller now waits (2 s at 80 %, more
    // above), and counts the Pages it slowed down for.
    let app = polling_app().await;
    app.graph.set_usage_header(Some(r#"{"call_count":95,"total_cputime":10,"total_time":12}"#));
    app.connect_page("6006", "t6", "Busy app").await;
    app.connect_page("6007", "t7", "Busy app two").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = app.actors.poller.send(GetPollStats).await.unwrap();
        if stats.slowed >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the poll never slowed down: {stats:?}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn low_graph_usage_does_not_slow_the_poll() {
    let app = polling_app().await;
    app.graph.set_usage_header(Some(r#"{"call_count":12,"total_cputime":3,"total_time":4}"#));
    app.connect_page("6008", "t8", "Quiet app").await;
    let stats = wait_for_runs(&app, 2).await;
    assert_eq!(stats.slowed, 0, "{stats:?}");
    assert!(app.graph.gets("6008") >= 2);
}
