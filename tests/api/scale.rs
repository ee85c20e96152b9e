//! Issue 12, scaled down to a behaviour test: a data dir seeded with thousands of
//! Pages, shops, sessions and pending inbox records (the scale bench's own seeding,
//! `benches/scale/seed.rs`) is accepted by the app, every pending delivery is replayed
//! and written, and the requests the scale bench loads answer correctly. Timings are
//! the bench's business (docs/benchmarks.md, "Scale (issue 12)"), not this test's.

use std::collections::HashSet;

use pagesync_actors::EncryptionKey;
use pagesync_actors::store::trees;

use crate::helpers::{Options, TestApp, spawn_emulator, start_app};
use crate::metrics::{scrape, value};

#[allow(dead_code)]
#[path = "../../benches/scale/seed.rs"]
mod seed;

use seed::{Plan, page_id};

/// 5,000 Pages over 100 shops (shop 0 has the 500-Page dashboard), 1,000 sessions and
/// 300 pending deliveries: seeding, replay and the checks take a few seconds in a
/// debug build.
const PLAN: Plan = Plan { shops: 100, pages: 5_000, big_shop_pages: 500, sessions: 1_000, inbox: 300 };

#[actix_web::test]
async fn a_store_seeded_with_thousands_of_pages_replays_its_inbox_and_serves_every_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = EncryptionKey::generate().expect("key");
    let db = dir.path().join("data").join("db");
    std::fs::create_dir_all(&db).expect("create the db folder");
    let seeded = seed::seed(&db, &key, &PLAN).await.expect("the store is seeded");
    assert_eq!(seeded.shops.len(), PLAN.shops);
    let graph = spawn_emulator();
    seed::register_pages(&graph, &PLAN);

    // The app accepts the seeded store (same key) and replays the inbox: inbox record
    // k names Page k - 1, so Pages 0..300 are refreshed, once each.
    let app = start_app(dir, key, graph, Options::default()).await;
    let replayed = PLAN.inbox as usize;
    app.wait_idle().await;
    for i in 0..replayed {
        let page = page_id(i);
        let file = std::fs::read_to_string(app.page_file(&page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        let data: serde_json::Value = serde_json::from_str(&file).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert_eq!(data["id"], page.as_str(), "{page}: {file}");
        assert_eq!(app.graph.gets(&page), 1, "Page {page} was fetched once");
    }
    assert!(!app.page_file(&page_id(replayed)).exists(), "a Page with no pending delivery is not fetched");
    assert_eq!(app.graph.total_gets(), replayed as u64);

    // /metrics: nothing left in the inbox, the replayed Pages synced.
    let metrics = scrape(&app).await;
    assert_eq!(value(&metrics, "pagesync_inbox_depth"), Some(0.0), "{metrics}");
    assert_eq!(value(&metrics, "pagesync_pages{status=\"synced\"}"), Some(replayed as f64), "{metrics}");

    // The big shop's dashboard lists its own Pages and no one else's.
    let resp = app.get_with("/", Some(&seeded.big_shop_cookie), &[("Accept", "text/html")]).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.contains(&seeded.shops[0]), "the dashboard names its shop");
    let listed: HashSet<String> = body
        .split("<tr data-page-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect();
    let own: HashSet<String> = (0..PLAN.big_shop_pages).map(page_id).collect();
    assert!(!listed.is_empty(), "the dashboard lists the shop's Pages");
    assert!(listed.is_subset(&own), "the dashboard lists only shop 0's Pages");
    assert!(body.contains(&format!("<tr data-page-id=\"{}\">", page_id(0))));

    // /api/v1/pages lists every Page with its shop.
    let bearer = format!("Bearer {}", seeded.api_key);
    let resp = app.get_with("/api/v1/pages", None, &[("Authorization", &bearer)]).await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let pages = answer["pages"].as_array().expect("a list of Pages");
    assert_eq!(pages.len(), PLAN.pages);
    let by_id: std::collections::HashMap<&str, &serde_json::Value> =
        pages.iter().filter_map(|p| Some((p["id"].as_str()?, p))).collect();
    for i in [0, 499, 500, PLAN.pages - 1] {
        let page = by_id.get(page_id(i).as_str()).unwrap_or_else(|| panic!("Page {i} listed"));
        assert_eq!(page["shop"], seeded.shops[seed::owner_of(&PLAN, i)], "Page {i}: {page}");
        let status = if i < replayed { "synced" } else { "pending" };
        assert_eq!(page["status"], status, "Page {i}: {page}");
    }

    // A clean stop leaves nothing pending, and a restart replays nothing.
    let (dir, key, graph) = app.stop().await;
    assert_eq!(TestApp::tree_len(&dir, trees::INBOX), 0);
    let app = start_app(dir, key, graph, Options::default()).await;
    app.wait_idle().await;
    assert_eq!(app.graph.total_gets(), replayed as u64, "nothing was fetched again");
    app.stop().await;
}
