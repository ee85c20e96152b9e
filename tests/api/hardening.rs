//! The security review's fixes that live in the core (docs/contract.md §3, §4): replayed removal
//! callbacks, a disconnect racing a refresh, crash leftovers, file modes, Messenger
//! traffic that must not cost Graph calls, metric labels a client cannot grow, and
//! status gauges kept instead of counted.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use pagesync_actors::messages::{GetPageToken, MarkDisconnected, SyncStatus};
use pagesync_actors::{PageId, Store, StoreConfig};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, delivery, eventually, spawn_app, start_app, unix_now};
use pagesync::emulator::FbUser;

async fn has_token(app: &TestApp, page: &str) -> bool {
    let page = PageId::parse(page).unwrap();
    app.actors.vault.send(GetPageToken { page }).await.unwrap().unwrap().is_some()
}

fn payload(user: &FbUser, issued_at: u64) -> Value {
    json!({"algorithm": "HMAC-SHA256", "user_id": user.id, "issued_at": issued_at})
}

#[actix_web::test]
async fn a_deauthorize_issued_before_the_latest_connect_changes_nothing() {
    let app = spawn_app().await;
    let (_, user, _) = app.merchant(&[("6100000001", "Kept")]).await;
    app.wait_for_status("6100000001", SyncStatus::Synced).await;
    // A removal Meta signed a minute before this connect, replayed now.
    let resp = app.post_signed_request("/facebook/deauthorize", &payload(&user, unix_now() - 60)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ignored");
    assert!(has_token(&app, "6100000001").await, "a replayed deauthorize removed the token");
    assert_eq!(app.page_state("6100000001").await.unwrap().status, SyncStatus::Synced);

    let resp = app.post_signed_request("/facebook/data-deletion", &payload(&user, unix_now() - 60)).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer["confirmation_code"].is_string(), "{answer}");
    assert!(app.page_file("6100000001").exists(), "a replayed data deletion deleted the file");
    assert!(has_token(&app, "6100000001").await);

    // One issued now is acted on.
    let resp = app.post_signed_request("/facebook/deauthorize", &payload(&user, unix_now())).await;
    assert_eq!(resp.status(), 200);
    assert!(!has_token(&app, "6100000001").await);
    app.wait_for_status("6100000001", SyncStatus::Disconnected).await;
}

#[actix_web::test]
async fn a_disconnect_landing_during_a_refresh_is_not_overwritten_by_synced() {
    let app = spawn_app().await;
    app.connect_page("6200000001", "tok-race", "Racing").await;
    app.graph.set_latency(Duration::from_millis(800));
    assert_eq!(app.post_webhook(&delivery(&["6200000001"])).await.status(), 200);
    let running = eventually(Duration::from_secs(5), || async { app.stats().await.running == 1 }).await;
    assert!(running, "the refresh never started");
    let page = PageId::parse("6200000001").unwrap();
    app.actors.page_writer.send(MarkDisconnected { pages: vec![page], reason: "deauthorized" }).await.unwrap();
    app.wait_idle().await;
    let state = app.page_state("6200000001").await.unwrap();
    assert_eq!(state.status, SyncStatus::Disconnected, "{state:?}");
}

#[actix_web::test]
async fn leftover_temporary_files_are_removed_at_start() {
    let app = spawn_app().await;
    app.connect_page("6300000001", "tok-tmp", "Leftovers").await;
    assert_eq!(app.post_webhook(&delivery(&["6300000001"])).await.status(), 200);
    app.wait_for_name("6300000001", "Leftovers").await;
    let folder = app.page_dir("6300000001");
    let (dir, key, graph) = app.stop().await;
    // What a crash between create and rename leaves, in this and the earlier naming.
    let leftovers = [
        folder.join(".page_data.json.00000000000000aa.00000000000000bb.tmp"),
        folder.join(".page_data.json.12345678901234.tmp"),
    ];
    for path in &leftovers {
        std::fs::write(path, b"{\"torn\":").unwrap();
    }
    let app = start_app(dir, key, graph, Options::default()).await;
    let gone = eventually(Duration::from_secs(10), || async { leftovers.iter().all(|p| !p.exists()) }).await;
    assert!(gone, "temporary files survived the start");
    assert!(app.page_file("6300000001").exists(), "the page file itself must stay");
}

#[actix_web::test]
async fn page_files_are_group_readable_and_the_database_is_not() {
    let app = spawn_app().await;
    app.connect_page("6400000001", "tok-modes", "Modes").await;
    assert_eq!(app.post_webhook(&delivery(&["6400000001"])).await.status(), 200);
    app.wait_for_name("6400000001", "Modes").await;
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    let data = app.data_dir();
    assert_eq!(mode(data.clone()), 0o750, "data dir");
    assert_eq!(mode(data.join("facebook")), 0o750, "facebook/");
    assert_eq!(mode(app.page_dir("6400000001")), 0o750, "Page folder");
    assert_eq!(mode(app.page_file("6400000001")), 0o640, "page_data.json");
    assert_eq!(mode(data.join("db")), 0o700, "db/");
}

#[actix_web::test]
async fn messenger_traffic_and_unsubscribed_fields_cause_no_graph_call() {
    let app = spawn_app().await;
    app.connect_page("6500000001", "tok-msg", "Messages").await;
    let bodies = [
        r#"{"object":"page","entry":[{"id":"6500000001","time":1767225600,"messaging":[{"sender":{"id":"42"},"recipient":{"id":"6500000001"},"timestamp":1767225600,"message":{"mid":"m_1","text":"hello"}}]}]}"#,
        r#"{"object":"page","entry":[{"id":"6500000001","time":1767225600,"standby":[{"sender":{"id":"42"}}]}]}"#,
        r#"{"object":"page","entry":[{"id":"6500000001","time":1767225600,"changes":[{"field":"feed","value":{"item":"status"}}]}]}"#,
        r#"{"object":"page","entry":[{"id":"6500000001","time":1767225600,"changed_fields":["ratings"]}]}"#,
    ];
    for body in bodies {
        let resp = app.post_webhook(body).await;
        assert_eq!(resp.status(), 200, "{body}");
        assert_eq!(resp.json::<Value>().await.unwrap()["status"], "success");
    }
    app.wait_idle().await;
    assert_eq!(app.graph.gets("6500000001"), 0, "Messenger traffic cost a Graph call");
    // A subscribed field still refreshes.
    assert_eq!(app.post_webhook(&delivery(&["6500000001"])).await.status(), 200);
    app.wait_for_name("6500000001", "Messages").await;
    assert_eq!(app.graph.gets("6500000001"), 1);
}

#[actix_web::test]
async fn custom_request_methods_cannot_create_metric_series() {
    let app = spawn_app().await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let resp = app.client.request(method, format!("{}/healthz", app.address)).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("FOO"), "a client-chosen method became a label value");
    assert!(text.contains("method=\"other\""), "{text}");
}

#[actix_web::test]
async fn pages_by_status_follow_every_transition() {
    let app = spawn_app().await;
    let (_, user, _) = app.merchant(&[("6600000001", "One"), ("6600000002", "Two")]).await;
    app.wait_for_status("6600000001", SyncStatus::Synced).await;
    app.wait_for_status("6600000002", SyncStatus::Synced).await;
    let sample = |text: &str, status: &str| {
        let name = format!("pagesync_pages{{status=\"{status}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&name)?.parse::<u64>().ok())
    };
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&text, "synced"), Some(2), "{text}");
    let resp = app.post_signed_request("/facebook/deauthorize", &payload(&user, unix_now())).await;
    assert_eq!(resp.status(), 200);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!((sample(&text, "synced"), sample(&text, "disconnected")), (Some(0), Some(2)), "{text}");
    let resp = app.post_signed_request("/facebook/data-deletion", &payload(&user, unix_now())).await;
    assert_eq!(resp.status(), 200);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&text, "disconnected"), Some(0), "{text}");

    // The counts survive a restart (they are rebuilt from the store once, at start).
    app.connect_page("6600000003", "tok-3", "Three").await;
    assert_eq!(app.post_webhook(&delivery(&["6600000003"])).await.status(), 200);
    app.wait_for_status("6600000003", SyncStatus::Synced).await;
    let (dir, key, graph) = app.stop().await;
    let app = start_app(dir, key, graph, Options::default()).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&text, "synced"), Some(1), "{text}");
}

#[actix_web::test]
async fn a_token_record_that_does_not_open_never_marks_the_page_needs_reauth() {
    let app = spawn_app().await;
    app.connect_page("6700000001", "tok-damaged", "Damaged").await;
    assert_eq!(app.post_webhook(&delivery(&["6700000001"])).await.status(), 200);
    app.wait_for_status("6700000001", SyncStatus::Synced).await;
    let data = app.data_dir();
    let (dir, key, graph) = app.stop().await;
    {
        let store = Store::open(&StoreConfig::new(data.join("db"))).unwrap();
        let tree = store.tree("page_tokens").unwrap();
        let mut raw = tree.get(b"6700000001").unwrap().unwrap().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        tree.insert(b"6700000001", raw).unwrap();
        store.close().unwrap();
    }
    let app = start_app(dir, key, graph, Options::default()).await;
    assert_eq!(app.post_webhook(&delivery(&["6700000001"])).await.status(), 200);
    let failed = eventually(Duration::from_secs(10), || async {
        app.page_state("6700000001").await.is_some_and(|s| s.last_error.is_some())
    })
    .await;
    assert!(failed, "the refresh never failed");
    let state = app.page_state("6700000001").await.unwrap();
    assert_eq!(state.status, SyncStatus::Synced, "an internal failure changed the status: {state:?}");
}
