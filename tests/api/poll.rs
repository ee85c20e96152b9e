//! The daily re-sync (SPEC §5), run here every second.

use std::time::{Duration, Instant};

use pagesync_actors::messages::SyncStatus;
use pagesync_actors::poller::{GetPollStats, PollStats};

use crate::fake_graph::Fault;
use crate::helpers::{Options, TestApp, spawn_app_with};

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
