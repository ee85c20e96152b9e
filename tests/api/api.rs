//! The consumer API (docs/contract.md §7, `/api/v1`): bearer keys from `pagesync api-key`, scopes
//! that do not imply each other, the Page list and its `?shop=` filter, one Page with
//! its `ETag`, Page and shop tokens (never cached, audited, counted, never logged).

use pagesync_actors::PageId;
use pagesync_actors::api_keys::{CreateApiKey, KeyName, RevokeApiKey, Scope};
use pagesync_actors::messages::{SyncNow, SyncStatus};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, spawn_app};
use crate::secrets::Capture;
use pagesync::emulator::Fault;

/// Creates a key with `scopes` (comma-separated) through the actor, as the CLI would.
async fn key(app: &TestApp, name: &str, scopes: &str) -> String {
    let new = app
        .actors
        .api_keys
        .send(CreateApiKey { name: KeyName::parse(name).unwrap(), scopes: Scope::parse_list(scopes).unwrap() })
        .await
        .unwrap()
        .unwrap();
    new.key.expose().to_owned()
}

/// `GET path` with `Authorization: Bearer key` (when given) and more headers.
async fn api(app: &TestApp, path: &str, key: Option<&str>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.address));
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

async fn json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn assert_401(resp: &reqwest::Response, what: &str) {
    assert_eq!(resp.status(), 401, "{what}");
    assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"), "{what}");
}

const ROUTES: [&str; 4] =
    ["/api/v1/pages", "/api/v1/pages/7401", "/api/v1/pages/7401/token", "/api/v1/shops/a.myshopify.com/token"];

#[actix_web::test]
async fn missing_malformed_unknown_and_revoked_keys_get_401_with_www_authenticate() {
    let app = spawn_app().await;
    let good = key(&app, "full", "pages:read,tokens:read").await;
    let unknown = format!("psk_{}", "A".repeat(43));
    let with_space = format!("Bearer  {good} extra");
    for route in ROUTES {
        assert_401(&api(&app, route, None, &[]).await, &format!("{route} without a key"));
        for (label, value) in [
            ("Basic", format!("Basic {good}")),
            ("bare key", good.clone()),
            ("empty bearer", "Bearer ".to_owned()),
            ("short", "Bearer psk_short".to_owned()),
            ("other prefix", format!("Bearer sk_{}", &good[4..])),
            ("unknown", format!("Bearer {unknown}")),
            ("trailing junk", with_space.clone()),
        ] {
            let resp = api(&app, route, None, &[("Authorization", &value)]).await;
            assert_401(&resp, &format!("{route}: {label}"));
            assert!(json(resp).await["error"].is_string());
        }
    }
    // A JSON 404 for other paths, after the key check as well.
    assert_401(&api(&app, "/api/v1/nothing", None, &[]).await, "unknown route without a key");
    assert_eq!(api(&app, "/api/v1/nothing", Some(&good), &[]).await.status(), 404);

    // Revoked: refused by the very next request.
    assert_eq!(api(&app, "/api/v1/pages", Some(&good), &[]).await.status(), 200);
    app.actors.api_keys.send(RevokeApiKey { name: KeyName::parse("full").unwrap() }).await.unwrap().unwrap();
    assert_401(&api(&app, "/api/v1/pages", Some(&good), &[]).await, "revoked key");
}

#[actix_web::test]
async fn scopes_are_independent_and_a_missing_scope_is_403() {
    let app = spawn_app().await;
    let (install, _, _) = app.merchant(&[("7401", "Scoped Page")]).await;
    let pages_only = key(&app, "pages-only", "pages:read").await;
    let tokens_only = key(&app, "tokens-only", "tokens:read").await;
    let shop_token = format!("/api/v1/shops/{}/token", install.shop);
    for route in ["/api/v1/pages/7401/token", shop_token.as_str()] {
        let resp = api(&app, route, Some(&pages_only), &[]).await;
        assert_eq!(resp.status(), 403, "{route} with pages:read only");
        assert!(json(resp).await["error"].as_str().unwrap().contains("tokens:read"));
        assert_eq!(api(&app, route, Some(&tokens_only), &[]).await.status(), 200, "{route}");
    }
    for route in ["/api/v1/pages", "/api/v1/pages/7401"] {
        let resp = api(&app, route, Some(&tokens_only), &[]).await;
        assert_eq!(resp.status(), 403, "{route} with tokens:read only");
        assert!(json(resp).await["error"].as_str().unwrap().contains("pages:read"));
        assert_eq!(api(&app, route, Some(&pages_only), &[]).await.status(), 200, "{route}");
    }
}

#[actix_web::test]
async fn pages_are_listed_with_their_shop_and_filtered_by_shop() {
    let app = spawn_app().await;
    let (a, _, _) = app.merchant(&[("7411", "Alpha One"), ("7412", "Alpha Two")]).await;
    let (b, _, _) = app.merchant(&[("7421", "Beta")]).await;
    app.wait_for_status("7421", SyncStatus::Synced).await;
    let k = key(&app, "lister", "pages:read").await;

    let all = json(api(&app, "/api/v1/pages", Some(&k), &[]).await).await;
    let rows = all["pages"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["7411", "7412", "7421"]);
    // Each row's name and shop are its own Page's (the rows are described in batches).
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["Alpha One", "Alpha Two", "Beta"]);
    let shops: Vec<&str> = rows.iter().map(|r| r["shop"].as_str().unwrap_or("")).collect();
    assert_eq!(shops, [a.shop.as_str(), a.shop.as_str(), b.shop.as_str()]);
    let beta = &rows[2];
    let keys: Vec<&String> = beta.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "last_sync", "name", "shop", "status", "subscribed"]);
    assert_eq!(beta["name"], "Beta");
    assert_eq!(beta["shop"], b.shop.as_str());
    assert_eq!(beta["status"], "synced");
    assert!(beta["subscribed"].is_boolean());
    assert!(beta["last_sync"].as_u64().is_some());
    assert_eq!(rows[0]["shop"], a.shop.as_str());

    let only_a = json(api(&app, &format!("/api/v1/pages?shop={}", a.shop), Some(&k), &[]).await).await;
    let ids: Vec<&str> = only_a["pages"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["7411", "7412"]);
    assert!(only_a["pages"].as_array().unwrap().iter().all(|r| r["shop"] == a.shop.as_str()));
    let only_b = json(api(&app, &format!("/api/v1/pages?shop={}", b.shop), Some(&k), &[]).await).await;
    assert_eq!(only_b["pages"].as_array().unwrap().len(), 1);

    let nobody = json(api(&app, "/api/v1/pages?shop=nobody.myshopify.com", Some(&k), &[]).await).await;
    assert_eq!(nobody["pages"], serde_json::json!([]));
    for bad in ["evil.com", "", "A.myshopify.com", "a.myshopify.com.evil.com"] {
        let resp = api(&app, &format!("/api/v1/pages?shop={bad}"), Some(&k), &[]).await;
        assert_eq!(resp.status(), 400, "shop={bad:?}");
    }
}

#[actix_web::test]
async fn pages_come_in_slices_with_a_cursor_for_one_shop_or_all() {
    let app = spawn_app().await;
    let (a, _, _) = app.merchant(&[("7431", "A1"), ("7432", "A2"), ("7433", "A3")]).await;
    app.merchant(&[("7441", "B1"), ("7442", "B2")]).await;
    let k = key(&app, "slicer", "pages:read").await;
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["pages"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    let all = json(api(&app, "/api/v1/pages", Some(&k), &[]).await).await;
    assert_eq!(all["next"], serde_json::Value::Null, "the whole list has no cursor");
    for (base, expected) in [
        ("/api/v1/pages?limit=2".to_owned(), ids(&all)),
        (format!("/api/v1/pages?shop={}&limit=2", a.shop), vec!["7431".into(), "7432".into(), "7433".into()]),
    ] {
        let mut seen = Vec::new();
        let mut url = base.clone();
        loop {
            let body = json(api(&app, &url, Some(&k), &[]).await).await;
            let got = ids(&body);
            assert!(got.len() <= 2, "{body}");
            seen.extend(got);
            match body["next"].as_str() {
                Some(next) => url = format!("{base}&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{base}");
    }
    for bad in ["limit=0", "limit=1001", "limit=x", "limit=-1", "after=abc", "after=", "after=12%2F..%2F"] {
        let resp = api(&app, &format!("/api/v1/pages?{bad}"), Some(&k), &[]).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

#[actix_web::test]
async fn a_page_answers_with_its_data_and_etag_and_304_when_unchanged() {
    let app = spawn_app().await;
    let (install, _, _) = app.merchant(&[("7431", "Tagged Page")]).await;
    app.wait_for_status("7431", SyncStatus::Synced).await;
    let k = key(&app, "reader", "pages:read").await;

    let resp = api(&app, "/api/v1/pages/7431", Some(&k), &[]).await;
    assert_eq!(resp.status(), 200);
    let header = resp.headers().get("etag").unwrap().to_str().unwrap().to_owned();
    let body = json(resp).await;
    let bytes = std::fs::read(app.page_file("7431")).unwrap();
    let expected = hex::encode(&Sha256::digest(&bytes)[..16]);
    assert_eq!(header, format!("\"{expected}\""));
    assert_eq!(body["etag"], expected.as_str());
    assert_eq!(body["etag"], pagesync_actors::page_writer::etag_of(&bytes).as_str());
    assert_eq!(body["id"], "7431");
    assert_eq!(body["shop"], install.shop.as_str());
    assert_eq!(body["status"], "synced");
    assert!(body["last_sync"].as_u64().is_some());
    assert_eq!(body["data"], serde_json::from_slice::<Value>(&bytes).unwrap());
    assert_eq!(body["data"]["name"], "Tagged Page");

    let resp = api(&app, "/api/v1/pages/7431", Some(&k), &[("If-None-Match", &header)]).await;
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers().get("etag").unwrap().to_str().unwrap(), header);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = api(&app, "/api/v1/pages/7431", Some(&k), &[("If-None-Match", "\"0000\", W/\"1111\"")]).await;
    assert_eq!(resp.status(), 200, "another tag must not match");

    // The Page changes on Facebook: a new tag, and the old one no longer matches.
    app.graph.set_name("7431", "Tagged Page, renamed");
    app.actors.page_writer.send(SyncNow { page: PageId::parse("7431").unwrap() }).await.unwrap();
    let resp = api(&app, "/api/v1/pages/7431", Some(&k), &[("If-None-Match", &header)]).await;
    assert_eq!(resp.status(), 200);
    assert_ne!(resp.headers().get("etag").unwrap().to_str().unwrap(), header);
    assert_eq!(json(resp).await["data"]["name"], "Tagged Page, renamed");

    for missing in ["/api/v1/pages/7439", "/api/v1/pages/abc", "/api/v1/pages/..%2F7431", "/api/v1/pages/-1"] {
        let resp = api(&app, missing, Some(&k), &[]).await;
        assert_eq!(resp.status(), 404, "{missing}");
        assert!(json(resp).await["error"].is_string());
    }
}

#[actix_web::test]
async fn page_tokens_are_not_cached_and_unusable_ones_get_409_with_the_status() {
    let app = spawn_app().await;
    let (_, user, _) = app.merchant(&[("7441", "Token Page"), ("7442", "Refused Page")]).await;
    app.wait_for_status("7442", SyncStatus::Synced).await;
    let k = key(&app, "tokens", "tokens:read").await;

    let resp = api(&app, "/api/v1/pages/7441/token", Some(&k), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    let body = json(resp).await;
    assert_eq!(body["page_id"], "7441");
    assert_eq!(body["access_token"], user.pages[0].token.as_str());
    assert_eq!(body.as_object().unwrap().len(), 2);

    // Meta refuses 7442's token: needs_reauth, no token handed out.
    app.graph.set_sticky_fault("7442", Some(Fault::GraphError(190)));
    app.actors.page_writer.send(SyncNow { page: PageId::parse("7442").unwrap() }).await.unwrap();
    app.wait_for_status("7442", SyncStatus::NeedsReauth).await;
    let resp = api(&app, "/api/v1/pages/7442/token", Some(&k), &[]).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(json(resp).await, serde_json::json!({"status": "needs_reauth"}));

    // The user removes the app: both Pages are disconnected.
    let resp = app.post_signed_request("/facebook/deauthorize", &TestApp::user_payload(&user)).await;
    assert_eq!(resp.status(), 200);
    app.wait_for_status("7441", SyncStatus::Disconnected).await;
    let resp = api(&app, "/api/v1/pages/7441/token", Some(&k), &[]).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(json(resp).await, serde_json::json!({"status": "disconnected"}));

    for missing in ["/api/v1/pages/7449/token", "/api/v1/pages/x1/token"] {
        assert_eq!(api(&app, missing, Some(&k), &[]).await.status(), 404, "{missing}");
    }
}

#[actix_web::test]
async fn shop_tokens_are_handed_out_uncached_and_unknown_shops_are_404() {
    let app = spawn_app().await;
    let install = app.install_shop(&crate::helpers::unique_shop()).await;
    let k = key(&app, "shop-tokens", "tokens:read").await;
    let resp = api(&app, &format!("/api/v1/shops/{}/token", install.shop), Some(&k), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    let body = json(resp).await;
    assert_eq!(body["shop"], install.shop.as_str());
    assert_eq!(body["scope"], "read_products");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("shpat_") && app.graph.issued_secrets().iter().any(|t| t == token), "{token}");
    for missing in ["nobody.myshopify.com", "evil.com", "UPPER.myshopify.com"] {
        let resp = api(&app, &format!("/api/v1/shops/{missing}/token"), Some(&k), &[]).await;
        assert_eq!(resp.status(), 404, "{missing}");
    }
}

#[actix_web::test]
async fn token_reads_are_audited_by_key_and_counted_but_never_logged() {
    let capture = Capture::start();
    let app = spawn_app().await;
    let (install, user, _) = app.merchant(&[("7451", "Audited Page")]).await;
    let k = key(&app, "audited-bot", "tokens:read,pages:read").await;
    let id = {
        let keys = app.actors.api_keys.send(pagesync_actors::api_keys::ListApiKeys).await.unwrap().unwrap();
        keys.into_iter().find(|i| i.name.as_str() == "audited-bot").unwrap().id
    };
    let page = json(api(&app, "/api/v1/pages/7451/token", Some(&k), &[]).await).await;
    let shop = json(api(&app, &format!("/api/v1/shops/{}/token", install.shop), Some(&k), &[]).await).await;
    assert_eq!(api(&app, "/api/v1/pages", None, &[]).await.status(), 401);

    let logs = capture.text();
    let page_line = logs.lines().find(|l| l.contains("Page token read") && l.contains(&id)).expect("audit line");
    assert!(page_line.contains("INFO"), "{page_line}");
    assert!(page_line.contains("key_name=audited-bot"), "{page_line}");
    assert!(page_line.contains("page_id=7451"), "{page_line}");
    let shop_line = logs.lines().find(|l| l.contains("shop token read") && l.contains(&id)).expect("audit line");
    assert!(shop_line.contains(&install.shop), "{shop_line}");
    for secret in [page["access_token"].as_str().unwrap(), shop["access_token"].as_str().unwrap(), &k, &k[4..]] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    assert_eq!(page["access_token"], user.pages[0].token.as_str());

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("pagesync_api_token_reads_total{kind=\"page\"} 1\n"), "{metrics}");
    assert!(metrics.contains("pagesync_api_token_reads_total{kind=\"shop\"} 1\n"), "{metrics}");
    assert!(metrics.contains("pagesync_api_requests_total{result=\"ok\"} 2\n"), "{metrics}");
    assert!(metrics.contains("pagesync_api_requests_total{result=\"unauthorized\"} 1\n"), "{metrics}");
    assert!(metrics.contains("pagesync_api_requests_total{result=\"forbidden\"} 0\n"), "{metrics}");
}
