//! Events (docs/contract.md §7): Standard Webhooks signed, one per real change, in order per Page.

use std::time::Duration;

use base64::Engine as _;
use pagesync::verify::hmac_sha256;
use pagesync_actors::messages::SyncStatus;
use serde_json::Value;

use crate::helpers::{Options, TestApp, delivery, eventually, spawn_app_with, unix_now};
use crate::sink::{Received, Sink};
use pagesync::emulator::Fault;

/// 32 random-looking bytes, as `pagesync keygen --events-secret` would print them.
const SECRET: &str = "whsec_c2VjcmV0LWJ5dGVzLWZvci1ldmVudHMtaW4tdGVzdHMhIQ==";

async fn app_with_events() -> (TestApp, Sink) {
    let sink = Sink::start();
    let env = vec![("PAGESYNC_EVENTS_URL", sink.url.clone()), ("PAGESYNC_EVENTS_SECRET", SECRET.to_owned())];
    (spawn_app_with(Options { env, ..Options::default() }).await, sink)
}

/// Checks a request the way a Standard Webhooks library does and returns its body.
fn verified(request: &Received) -> Value {
    let id = request.header("webhook-id").expect("webhook-id");
    let timestamp = request.header("webhook-timestamp").expect("webhook-timestamp");
    let signatures = request.header("webhook-signature").expect("webhook-signature");
    let ts: u64 = timestamp.parse().expect("unix seconds");
    assert!(unix_now().abs_diff(ts) < 60, "timestamp {ts} is not now");
    let key = base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed)));
    assert!(signatures.split(' ').any(|s| s == expected), "bad signature {signatures}");
    assert_eq!(request.header("content-type"), Some("application/json"));
    serde_json::from_slice(&request.body).expect("a JSON event")
}

fn events(sink: &Sink) -> Vec<Value> {
    sink.received().iter().map(verified).collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn wait_for(sink: &Sink, kind: &str, n: usize) -> Vec<Value> {
    let ok = eventually(Duration::from_secs(10), || async {
        types(&events(sink)).iter().filter(|t| *t == kind).count() >= n
    })
    .await;
    assert!(ok, "never got {n} {kind}: {:?}", types(&events(sink)));
    events(sink)
}

#[actix_web::test]
async fn connecting_and_renaming_a_page_emit_verified_events_with_the_files_etag() {
    let (app, sink) = app_with_events().await;
    let (install, _, _) = app.merchant(&[("7200000001", "First Name")]).await;
    app.wait_for_status("7200000001", SyncStatus::Synced).await;
    let all = wait_for(&sink, "page.updated", 1).await;
    assert_eq!(types(&all), ["page.connected", "page.updated"]);
    let connected = &all[0];
    assert_eq!(connected["data"]["page_id"], "7200000001");
    assert_eq!(connected["data"]["shop"], install.shop.as_str());
    assert_eq!(connected["data"]["name"], "First Name");
    assert!(connected["timestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')));
    let file = std::fs::read(app.page_file("7200000001")).unwrap();
    assert_eq!(all[1]["data"]["etag"], pagesync_actors::page_writer::etag_of(&file).as_str());

    // A refresh with the same answer changes nothing and says nothing.
    assert_eq!(app.post_webhook(&delivery(&["7200000001"])).await.status(), 200);
    app.wait_idle().await;
    // A real change: exactly one more page.updated, carrying the new file's etag.
    app.graph.set_name("7200000001", "Second Name");
    assert_eq!(app.post_webhook(&delivery(&["7200000001"])).await.status(), 200);
    app.wait_for_name("7200000001", "Second Name").await;
    let all = wait_for(&sink, "page.updated", 2).await;
    assert_eq!(types(&all), ["page.connected", "page.updated", "page.updated"]);
    let file = std::fs::read(app.page_file("7200000001")).unwrap();
    assert_eq!(all[2]["data"]["etag"], pagesync_actors::page_writer::etag_of(&file).as_str());
    assert_eq!(all[2]["data"]["shop"], install.shop.as_str());
    let ids: Vec<_> = sink.received().iter().map(|r| r.header("webhook-id").unwrap().to_owned()).collect();
    assert!(ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len(), "ids repeat: {ids:?}");
}

#[actix_web::test]
async fn reauth_disconnect_and_removal_each_emit_their_event_once() {
    let (app, sink) = app_with_events().await;
    let (install, user, _) = app.merchant(&[("7200000002", "Refused")]).await;
    app.wait_for_status("7200000002", SyncStatus::Synced).await;
    app.graph.set_sticky_fault("7200000002", Some(Fault::GraphError(190)));
    for _ in 0..2 {
        assert_eq!(app.post_webhook(&delivery(&["7200000002"])).await.status(), 200);
        app.wait_idle().await;
    }
    app.wait_for_status("7200000002", SyncStatus::NeedsReauth).await;
    let all = wait_for(&sink, "page.needs_reauth", 1).await;
    let reauth: Vec<_> = all.iter().filter(|e| e["type"] == "page.needs_reauth").collect();
    assert_eq!(reauth.len(), 1, "{:?}", types(&all));
    assert_eq!(reauth[0]["data"]["shop"], install.shop.as_str());

    let payload = serde_json::json!({"algorithm": "HMAC-SHA256", "user_id": user.id, "issued_at": unix_now()});
    assert_eq!(app.post_signed_request("/facebook/deauthorize", &payload).await.status(), 200);
    let all = wait_for(&sink, "page.disconnected", 1).await;
    let disconnected = all.iter().find(|e| e["type"] == "page.disconnected").unwrap();
    assert_eq!(disconnected["data"]["reason"], "deauthorized");
    assert_eq!(disconnected["data"]["page_id"], "7200000002");

    assert_eq!(app.post_signed_request("/facebook/data-deletion", &payload).await.status(), 200);
    let all = wait_for(&sink, "page.removed", 1).await;
    let removed = all.iter().find(|e| e["type"] == "page.removed").unwrap();
    assert_eq!(removed["data"], serde_json::json!({"page_id": "7200000002", "shop": install.shop}));
    assert_eq!(
        types(&all),
        ["page.connected", "page.updated", "page.needs_reauth", "page.disconnected", "page.removed"],
        "one Page's events arrive in the order of its changes"
    );
}

/// The Python that has the official `standardwebhooks` package (`.ci/run` makes it).
fn interop_python() -> std::path::PathBuf {
    std::env::var_os("PAGESYNC_INTEROP_PYTHON").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python"),
        std::path::PathBuf::from,
    )
}

#[actix_web::test]
async fn events_verify_with_the_official_standard_webhooks_library() {
    let python = interop_python();
    assert!(
        python.exists(),
        "{} is missing: run `python3 -m venv target/interop-venv && target/interop-venv/bin/pip install \
         standardwebhooks` (.ci/run does)",
        python.display()
    );
    let (app, sink) = app_with_events().await;
    app.merchant(&[("7200000003", "Interop")]).await;
    wait_for(&sink, "page.updated", 1).await;
    let exported: Vec<Value> = sink
        .received()
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, Value> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
                .iter()
                .map(|h| ((*h).to_owned(), Value::from(r.header(h).unwrap_or_default())))
                .collect();
            serde_json::json!({ "headers": headers, "body": String::from_utf8_lossy(&r.body) })
        })
        .collect();
    let file = app.dir.path().join("events.json");
    std::fs::write(&file, serde_json::to_vec(&exported).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_events.py");
    let out = std::process::Command::new(&python).arg(script).arg(SECRET).arg(&file).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the standardwebhooks library refused our events: {text}");
    assert!(text.contains("2 events verified"), "{text}");
}
