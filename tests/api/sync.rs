//! From an accepted delivery to `page_data.json`: content, batching, coalescing,
//! unknown and hostile ids, and how Graph failures are handled.

use std::time::Duration;

use pagesync_actors::messages::SyncStatus;
use serde_json::json;

use crate::helpers::{delivery, eventually, spawn_app};
use pagesync::emulator::Fault;

#[actix_web::test]
async fn a_delivery_for_a_known_page_writes_its_data_without_the_token() {
    let app = spawn_app().await;
    app.connect_page("104857600012345", "EAAG-page-token-1", "Maple & Oak Candle Co.").await;
    assert_eq!(app.post_webhook(&delivery(&["104857600012345"])).await.status(), 200);

    let data = app.wait_for_name("104857600012345", "Maple & Oak Candle Co.").await;
    assert_eq!(
        data,
        json!({"id": "104857600012345", "name": "Maple & Oak Candle Co.", "category": "Home Decor", "fan_count": 12})
    );
    let text = std::fs::read_to_string(app.page_file("104857600012345")).unwrap();
    assert!(!text.contains("EAAG-page-token-1"));

    // The emulator checked the token and the appsecret_proof; look at what it got.
    let seen = app.graph.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v25.0/104857600012345");
    let fields = &seen[0].query["fields"];
    assert!(fields.starts_with("id,name,category"), "{fields}");
    assert!(seen[0].query["appsecret_time"].parse::<u64>().is_ok());
    assert_eq!(seen[0].query["appsecret_proof"].len(), 64);

    let state = app.wait_for_status("104857600012345", SyncStatus::Synced).await;
    assert!(state.last_success.is_some());
    app.wait_idle().await;
}

#[actix_web::test]
async fn a_batched_delivery_refreshes_every_page_it_names() {
    let app = spawn_app().await;
    app.connect_page("104857600012345", "t1", "Maple").await;
    app.connect_page("209715200067890", "t2", "Northwind Outfitters").await;
    // A made-up delivery in Meta's shape (docs/platform.md, "Webhook deliveries"): two entries, three changes.
    let body = r#"{"object":"page","entry":[{"id":"104857600012345","time":1767225660,"changes":[{"field":"category","value":"Home Decor"}]},{"id":"209715200067890","time":1767225661,"changes":[{"field":"name","value":"Northwind Outfitters"},{"field":"category","value":"Sporting Goods Store"}]}]}"#;
    assert_eq!(app.post_webhook(body).await.status(), 200);
    app.wait_for_name("104857600012345", "Maple").await;
    app.wait_for_name("209715200067890", "Northwind Outfitters").await;
    app.wait_idle().await;
    assert_eq!(app.graph.gets("104857600012345"), 1);
    assert_eq!(app.graph.gets("209715200067890"), 1);
}

#[actix_web::test]
async fn the_same_page_twice_in_one_delivery_is_fetched_once() {
    let app = spawn_app().await;
    app.connect_page("42", "t", "Twice").await;
    let body = r#"{"object":"page","entry":[{"id":"42","changes":[{"field":"name"}]},{"id":"42","changed_fields":["category"]}]}"#;
    assert_eq!(app.post_webhook(body).await.status(), 200);
    app.wait_for_name("42", "Twice").await;
    app.wait_idle().await;
    assert_eq!(app.graph.gets("42"), 1);
}

#[actix_web::test]
async fn a_burst_for_one_page_is_coalesced_and_the_latest_name_wins() {
    let app = spawn_app().await;
    app.connect_page("777", "t", "First").await;
    app.graph.set_latency(Duration::from_millis(150));
    let body = delivery(&["777"]);
    let mut burst = Vec::new();
    for _ in 0..100 {
        burst.push(app.post_webhook(&body));
    }
    for resp in futures_util::future::join_all(burst).await {
        assert_eq!(resp.status(), 200);
    }
    app.graph.set_name("777", "Latest");
    let mut burst = Vec::new();
    for _ in 0..100 {
        burst.push(app.post_webhook(&body));
    }
    for resp in futures_util::future::join_all(burst).await {
        assert_eq!(resp.status(), 200);
    }
    app.wait_for_name("777", "Latest").await;
    let stats = app.wait_idle().await;
    assert_eq!(stats.accepted, 200);
    let gets = app.graph.gets("777");
    assert!(gets <= 20, "200 deliveries caused {gets} Graph GETs");
}

#[actix_web::test]
async fn a_delivery_for_an_unknown_page_is_counted_and_skipped() {
    let app = spawn_app().await;
    assert_eq!(app.post_webhook(&delivery(&["999000999"])).await.status(), 200);
    let stats = app.wait_idle().await;
    assert_eq!(stats.unknown_pages, 1);
    assert_eq!(app.graph.total_gets(), 0);
    assert!(!app.page_file("999000999").exists());
    assert!(app.page_state("999000999").await.is_none());
}

#[actix_web::test]
async fn hostile_page_ids_never_reach_a_path_or_graph() {
    let app = spawn_app().await;
    app.connect_page("55", "t", "Safe").await;
    // Every entry names a subscribed field, so only the id decides (docs/contract.md §4).
    let body = r#"{"object":"page","entry":[{"id":"../../etc","changed_fields":["name"]},{"id":"1/../2","changed_fields":["name"]},{"id":"..%2F..%2Fetc","changed_fields":["name"]},{"id":"55","changed_fields":["name"]}]}"#;
    assert_eq!(app.post_webhook(body).await.status(), 200);
    app.wait_for_name("55", "Safe").await;
    app.wait_idle().await;
    assert_eq!(app.graph.total_gets(), 1);
    let entries: Vec<String> = std::fs::read_dir(app.data_dir().join("facebook"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, vec!["55".to_owned()]);
    assert!(!app.data_dir().join("etc").exists());
}

#[actix_web::test]
async fn a_190_from_graph_marks_the_page_needs_reauth_and_stops_fetching_it() {
    let app = spawn_app().await;
    app.connect_page("190190", "t", "Dead token").await;
    app.graph.set_sticky_fault("190190", Some(Fault::GraphError(190)));
    assert_eq!(app.post_webhook(&delivery(&["190190"])).await.status(), 200);
    app.wait_idle().await;
    let state = app.page_state("190190").await.unwrap();
    assert_eq!(state.status, SyncStatus::NeedsReauth);
    assert_eq!(state.last_error_code, Some(190));
    assert_eq!(app.graph.gets("190190"), 1, "a 190 is never retried");

    // Later deliveries are acknowledged but do not call Graph for this Page.
    assert_eq!(app.post_webhook(&delivery(&["190190"])).await.status(), 200);
    app.wait_idle().await;
    assert_eq!(app.graph.gets("190190"), 1);
    assert!(!app.page_file("190190").exists());
}

#[actix_web::test]
async fn a_500_from_graph_is_retried_until_it_succeeds() {
    let app = spawn_app().await;
    app.connect_page("500500", "t", "Eventually").await;
    app.graph.push_fault("500500", Fault::Status(500, json!({"error": {"message": "boom", "code": 2}})));
    app.graph.push_fault("500500", Fault::Status(503, json!("unavailable")));
    assert_eq!(app.post_webhook(&delivery(&["500500"])).await.status(), 200);
    app.wait_for_name("500500", "Eventually").await;
    app.wait_idle().await;
    assert_eq!(app.graph.gets("500500"), 3);
    assert_eq!(app.page_state("500500").await.unwrap().status, SyncStatus::Synced);
}

#[actix_web::test]
async fn a_page_rate_limit_pauses_the_page_then_resumes() {
    let app = spawn_app().await;
    app.connect_page("80001", "t", "Limited").await;
    app.graph.push_fault("80001", Fault::GraphError(80001));
    assert_eq!(app.post_webhook(&delivery(&["80001"])).await.status(), 200);
    // Back-off (100-400 ms in tests) and a second fetch that succeeds.
    app.wait_for_name("80001", "Limited").await;
    app.wait_idle().await;
    assert_eq!(app.graph.gets("80001"), 2);
}

#[actix_web::test]
async fn a_page_that_stays_unavailable_ends_in_error_and_leaves_the_inbox() {
    let app = spawn_app().await;
    app.connect_page("502502", "t", "Never").await;
    app.graph.set_sticky_fault("502502", Some(Fault::Status(502, json!("bad gateway"))));
    assert_eq!(app.post_webhook(&delivery(&["502502"])).await.status(), 200);
    let stats = app.wait_idle().await;
    assert_eq!(stats.inbox_depth, 0);
    let state = app.page_state("502502").await.unwrap();
    assert_eq!(state.status, SyncStatus::Error);
    assert!(state.last_error.unwrap().contains("HTTP 502"));
}

#[actix_web::test]
async fn an_absurd_regain_access_estimate_does_not_take_the_daemon_down() {
    // Meta's usage header says to wait u64::MAX minutes (an app-level limit, code 4):
    // the pause must be clamped, not added to a clock until it overflows.
    let app = spawn_app().await;
    app.connect_page("4242", "t", "Limited").await;
    let usage = json!({"4242": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": u64::MAX}]});
    app.graph.push_fault(
        "4242",
        Fault::WithHeaders(
            400,
            json!({"error": {"message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4}}),
            vec![("X-Business-Use-Case-Usage".into(), usage.to_string())],
        ),
    );
    assert_eq!(app.post_webhook(&delivery(&["4242"])).await.status(), 200);

    let writer = app.actors.page_writer.clone();
    let page = pagesync_actors::PageId::parse("4242").unwrap();
    let limited = eventually(Duration::from_secs(10), || {
        let writer = writer.clone();
        let page = page.clone();
        async move {
            let state = writer.send(pagesync_actors::messages::GetPageState { page }).await;
            matches!(state, Ok(Ok(Some(s))) if s.status == SyncStatus::RateLimited)
        }
    })
    .await;
    assert!(limited, "the Page was never marked rate limited (is the writer still alive?)");
    assert_eq!(app.get("/readyz").await.status(), 200, "every actor still answers");
    assert_eq!(app.post_webhook(&delivery(&["4242"])).await.status(), 200);
    assert_eq!(app.post_webhook(&delivery(&["4243"])).await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

/// The JSON type name of `value`, as JSON Schema spells it.
fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[actix_web::test]
async fn page_files_match_the_published_json_schema() {
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/page_data.schema.json")).unwrap(),
    )
    .unwrap();
    let app = crate::helpers::spawn_app().await;
    let (_, _, _) = app.merchant(&[("7400000001", "Schema Checked")]).await;
    let file = app.wait_for_name("7400000001", "Schema Checked").await;
    let object = file.as_object().unwrap();
    for required in schema["required"].as_array().unwrap() {
        assert!(object.contains_key(required.as_str().unwrap()), "{required} missing in {file}");
    }
    assert!(!object.contains_key("access_token"));
    for (key, value) in object {
        let declared = &schema["properties"][key]["type"];
        let declared = declared.as_str().unwrap_or_else(|| panic!("{key} is not in the schema"));
        let actual = json_type(value);
        assert!(actual == declared || (declared == "number" && actual == "integer"), "{key}: {actual} vs {declared}");
    }
}
