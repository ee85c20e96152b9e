//! Merchants leaving (docs/contract.md §4): Shopify's `POST /shopify/webhooks` (compliance topics and
//! `app/uninstalled`) and Meta's `POST /facebook/deauthorize` and
//! `POST /facebook/data-deletion` with their `signed_request`. Each removal takes exactly
//! that merchant's data and leaves everyone else's alone.

use std::time::Duration;

use pagesync_actors::PageId;
use pagesync_actors::messages::GetPageToken;
use serde_json::{Value, json};

use crate::helpers::{
    Install, TestApp, delivery, eventually, rfc3339, shopify_webhook_hmac, signed_request, spawn_app, unix_millis,
};
use pagesync::emulator::FbUser;

const FIRST: [(&str, &str); 2] = [("104857600012345", "First A"), ("209715200067890", "First B")];
const SECOND: [(&str, &str); 2] = [("314572800098765", "Second A"), ("419430400011111", "Second B")];

async fn has_token(app: &TestApp, page: &str) -> bool {
    let page = PageId::parse(page).unwrap();
    app.actors.vault.send(GetPageToken { page }).await.unwrap().unwrap().is_some()
}

/// Everything of `user`'s Pages is gone and `install`'s session is dead.
async fn assert_merchant_gone(app: &TestApp, install: &Install, user: &FbUser) {
    assert_eq!(app.facebook_login(Some(&install.cookie)).await.status(), 401, "the session of {} lives", install.shop);
    for page in &user.pages {
        assert!(!app.page_dir(&page.id).exists(), "facebook/{}/ is still there", page.id);
        assert!(app.page_state(&page.id).await.is_none(), "the state of {} is still there", page.id);
        assert!(!has_token(app, &page.id).await, "the token of {} is still there", page.id);
    }
    // A later delivery for those Pages makes no Graph call.
    let before: Vec<usize> = user.pages.iter().map(|p| app.graph.gets(&p.id)).collect();
    let ids: Vec<&str> = user.pages.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(app.post_webhook(&delivery(&ids)).await.status(), 200);
    app.wait_idle().await;
    let after: Vec<usize> = user.pages.iter().map(|p| app.graph.gets(&p.id)).collect();
    assert_eq!(before, after, "removed Pages were fetched again");
    for page in &user.pages {
        assert!(!app.page_dir(&page.id).exists(), "facebook/{}/ came back", page.id);
    }
}

/// `install`'s session works and every Page of `user` is intact.
async fn assert_merchant_intact(app: &TestApp, install: &Install, user: &FbUser) {
    assert_eq!(app.facebook_login(Some(&install.cookie)).await.status(), 302, "the session of {} died", install.shop);
    for page in &user.pages {
        assert!(app.page_file(&page.id).exists(), "page_data.json of {} is gone", page.id);
        assert!(app.page_state(&page.id).await.is_some(), "the state of {} is gone", page.id);
        assert!(has_token(app, &page.id).await, "the token of {} is gone", page.id);
    }
}

/// Two merchants with two Pages each; returns them with their current session cookie.
async fn two_merchants(app: &TestApp) -> ((Install, FbUser), (Install, FbUser)) {
    let (mut first, first_user, connected) = app.merchant(&FIRST).await;
    first.cookie = connected.cookie;
    let (mut second, second_user, connected) = app.merchant(&SECOND).await;
    second.cookie = connected.cookie;
    app.wait_idle().await;
    ((first, first_user), (second, second_user))
}

#[actix_web::test]
async fn a_shopify_webhook_with_a_wrong_hmac_is_401() {
    let app = spawn_app().await;
    let (install, user, _) = app.merchant(&FIRST).await;
    let body = TestApp::shop_body(&install.shop);
    let wrong = shopify_webhook_hmac("not-the-shopify-secret", body.as_bytes());
    for topic in ["app/uninstalled", "shop/redact", "customers/redact", "customers/data_request"] {
        let resp = app.post_shopify_webhook_with(topic, &install.shop, &body, Some(&wrong)).await;
        assert_eq!(resp.status(), 401, "{topic}");
    }
    // A right signature over other bytes is wrong too.
    let right_for_other = shopify_webhook_hmac(app.var("SHOPIFY_API_SECRET"), format!("{body} ").as_bytes());
    let resp = app.post_shopify_webhook_with("app/uninstalled", &install.shop, &body, Some(&right_for_other)).await;
    assert_eq!(resp.status(), 401);
    assert!(app.page_file(&user.pages[0].id).exists(), "nothing was deleted");
}

#[actix_web::test]
async fn a_shopify_webhook_without_hmac_is_401() {
    let app = spawn_app().await;
    let (install, user, _) = app.merchant(&FIRST).await;
    let body = TestApp::shop_body(&install.shop);
    for topic in ["app/uninstalled", "shop/redact", "customers/redact", "customers/data_request"] {
        assert_eq!(app.post_shopify_webhook_with(topic, &install.shop, &body, None).await.status(), 401, "{topic}");
    }
    assert!(app.page_file(&user.pages[0].id).exists(), "nothing was deleted");
}

#[actix_web::test]
async fn customers_data_request_is_acknowledged() {
    let app = spawn_app().await;
    let (install, user, connected) = app.merchant(&FIRST).await;
    let body = json!({
        "shop_id": 954_889, "shop_domain": install.shop, "orders_requested": [299_938, 280_263],
        "customer": {"id": 191_167, "email": "john@example.com", "phone": "555-625-1199"},
        "data_request": {"id": 9999}
    })
    .to_string();
    assert_eq!(app.post_shopify_webhook("customers/data_request", &install.shop, &body).await.status(), 200);
    assert!(app.page_file(&user.pages[0].id).exists());
    assert_eq!(app.facebook_login(Some(&connected.cookie)).await.status(), 302);
}

#[actix_web::test]
async fn customers_redact_is_acknowledged() {
    let app = spawn_app().await;
    let (install, user, connected) = app.merchant(&FIRST).await;
    let body = json!({
        "shop_id": 954_889, "shop_domain": install.shop,
        "customer": {"id": 191_167, "email": "john@example.com", "phone": "555-625-1199"},
        "orders_to_redact": [299_938, 280_263]
    })
    .to_string();
    assert_eq!(app.post_shopify_webhook("customers/redact", &install.shop, &body).await.status(), 200);
    assert!(app.page_file(&user.pages[0].id).exists());
    assert_eq!(app.facebook_login(Some(&connected.cookie)).await.status(), 302);
}

#[actix_web::test]
async fn app_uninstalled_deletes_exactly_that_shops_data() {
    let app = spawn_app().await;
    let ((first, first_user), (second, second_user)) = two_merchants(&app).await;
    let resp = app.post_shopify_webhook("app/uninstalled", &first.shop, &TestApp::shop_body(&first.shop)).await;
    assert_eq!(resp.status(), 200);
    assert_merchant_gone(&app, &first, &first_user).await;
    assert_merchant_intact(&app, &second, &second_user).await;
}

#[actix_web::test]
async fn shop_redact_deletes_exactly_that_shops_data() {
    let app = spawn_app().await;
    let ((first, first_user), (second, second_user)) = two_merchants(&app).await;
    let resp = app.post_shopify_webhook("shop/redact", &first.shop, &TestApp::shop_body(&first.shop)).await;
    assert_eq!(resp.status(), 200);
    assert_merchant_gone(&app, &first, &first_user).await;
    assert_merchant_intact(&app, &second, &second_user).await;
}

#[actix_web::test]
async fn removing_a_shop_twice_is_fine() {
    let app = spawn_app().await;
    let ((first, first_user), (second, second_user)) = two_merchants(&app).await;
    let body = TestApp::shop_body(&first.shop);
    assert_eq!(app.post_shopify_webhook("app/uninstalled", &first.shop, &body).await.status(), 200);
    assert_eq!(app.post_shopify_webhook("app/uninstalled", &first.shop, &body).await.status(), 200);
    // Shopify's shop/redact follows 48 h after the uninstall.
    assert_eq!(app.post_shopify_webhook("shop/redact", &first.shop, &body).await.status(), 200);
    assert_merchant_gone(&app, &first, &first_user).await;
    assert_merchant_intact(&app, &second, &second_user).await;

    // A shop pagesync never saw is acknowledged too.
    let stranger = "never-installed.myshopify.com";
    assert_eq!(app.post_shopify_webhook("shop/redact", stranger, &TestApp::shop_body(stranger)).await.status(), 200);
}

#[actix_web::test]
async fn a_shop_reinstalled_after_uninstall_can_connect_again() {
    let app = spawn_app().await;
    let (install, user, _) = app.merchant(&FIRST).await;
    let body = TestApp::shop_body(&install.shop);
    assert_eq!(app.post_shopify_webhook("app/uninstalled", &install.shop, &body).await.status(), 200);
    let again = app.install_shop(&install.shop).await;
    let connected = app.connect_facebook(&again.cookie, &user).await;
    for page in &user.pages {
        assert_eq!(
            connected.body["pages"].as_array().unwrap().iter().filter(|r| r["id"] == page.id.as_str()).count(),
            1
        );
        assert!(app.page_file(&page.id).exists());
    }
}

// ----- Shopify webhooks: the signed body names the shop, and replays change nothing -----

/// Headers of a Shopify delivery: the shop it claims, its webhook id, when it fired.
fn delivery_headers(shop: Option<&str>, id: Option<&str>, triggered_at: Option<String>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("X-Shopify-API-Version", "2026-04".to_owned())];
    if let Some(shop) = shop {
        headers.push(("X-Shopify-Shop-Domain", shop.to_owned()));
    }
    if let Some(id) = id {
        headers.push(("X-Shopify-Webhook-Id", id.to_owned()));
    }
    if let Some(at) = triggered_at {
        headers.push(("X-Shopify-Triggered-At", at));
    }
    headers
}

#[actix_web::test]
async fn a_shopify_webhook_whose_shop_header_names_another_shop_is_401() {
    let app = spawn_app().await;
    let ((first, first_user), (second, second_user)) = two_merchants(&app).await;
    for topic in ["app/uninstalled", "shop/redact"] {
        // A body signed for the first shop, the header pointing at the second.
        let headers = delivery_headers(Some(&second.shop), Some(&format!("{topic}-mismatch")), None);
        let resp = app.post_shopify_webhook_headers(topic, &TestApp::shop_body(&first.shop), &headers).await;
        assert_eq!(resp.status(), 401, "{topic}");
    }
    assert_merchant_intact(&app, &first, &first_user).await;
    assert_merchant_intact(&app, &second, &second_user).await;
}

#[actix_web::test]
async fn the_shop_header_alone_names_no_shop() {
    let app = spawn_app().await;
    let (install, user, connected) = app.merchant(&FIRST).await;
    let install = Install { cookie: connected.cookie, ..install };
    app.wait_idle().await;
    let headers = delivery_headers(Some(&install.shop), None, None);
    let resp = app.post_shopify_webhook_headers("app/uninstalled", r#"{"id": 954889}"#, &headers).await;
    assert_eq!(resp.status(), 400, "a signed body naming no shop acts on nothing");
    assert_merchant_intact(&app, &install, &user).await;
}

#[actix_web::test]
async fn app_uninstalled_acts_on_its_myshopify_domain_not_its_custom_domain() {
    let app = spawn_app().await;
    let ((first, first_user), (second, second_user)) = two_merchants(&app).await;
    // The shop object: `domain` is the shop's custom domain (here naming the other
    // shop's myshopify domain, to show it is never read); no `shop_domain`.
    let body =
        json!({"id": 954_889, "name": "First", "domain": second.shop, "myshopify_domain": first.shop}).to_string();
    let resp = app.post_shopify_webhook_headers("app/uninstalled", &body, &delivery_headers(None, None, None)).await;
    assert_eq!(resp.status(), 200);
    assert_merchant_gone(&app, &first, &first_user).await;
    assert_merchant_intact(&app, &second, &second_user).await;
}

#[actix_web::test]
async fn a_shopify_webhook_id_is_acted_on_once() {
    let app = spawn_app().await;
    let (install, user, _) = app.merchant(&FIRST).await;
    let body = TestApp::shop_body(&install.shop);
    let headers = delivery_headers(Some(&install.shop), Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"), None);
    assert_eq!(app.post_shopify_webhook_headers("app/uninstalled", &body, &headers).await.status(), 200);
    assert!(!app.page_file(&user.pages[0].id).exists(), "the first delivery acted");

    // The merchant comes back; Shopify's retry of the old delivery arrives after.
    let again = app.install_shop(&install.shop).await;
    let connected = app.connect_facebook(&again.cookie, &user).await;
    app.wait_idle().await;
    let again = Install { cookie: connected.cookie, ..again };
    assert_eq!(app.post_shopify_webhook_headers("app/uninstalled", &body, &headers).await.status(), 200);
    assert_merchant_intact(&app, &again, &user).await;
}

#[actix_web::test]
async fn an_uninstall_triggered_before_the_latest_install_changes_nothing() {
    let app = spawn_app().await;
    let (install, user, connected) = app.merchant(&FIRST).await;
    let install = Install { cookie: connected.cookie, ..install };
    app.wait_idle().await;
    let body = TestApp::shop_body(&install.shop);
    // An hour before the install, written with a +01:00 offset: an old delivery.
    let before = rfc3339(unix_millis() - 3_600_000, 60);
    let headers = delivery_headers(Some(&install.shop), Some("stale-uninstall"), Some(before));
    assert_eq!(app.post_shopify_webhook_headers("app/uninstalled", &body, &headers).await.status(), 200);
    assert_merchant_intact(&app, &install, &user).await;

    // One triggered after the install acts.
    let after = rfc3339(unix_millis() + 1000, 0);
    let headers = delivery_headers(Some(&install.shop), Some("fresh-uninstall"), Some(after));
    assert_eq!(app.post_shopify_webhook_headers("app/uninstalled", &body, &headers).await.status(), 200);
    assert_merchant_gone(&app, &install, &user).await;
}

#[actix_web::test]
async fn an_uninstall_with_an_unparsable_trigger_time_is_acted_on() {
    let app = spawn_app().await;
    let (install, user, connected) = app.merchant(&FIRST).await;
    let install = Install { cookie: connected.cookie, ..install };
    app.wait_idle().await;
    let headers = delivery_headers(Some(&install.shop), None, Some("yesterday".to_owned()));
    let resp = app.post_shopify_webhook_headers("app/uninstalled", &TestApp::shop_body(&install.shop), &headers).await;
    assert_eq!(resp.status(), 200);
    assert_merchant_gone(&app, &install, &user).await;
}

/// Bad `signed_request` values for `path`: each must get 400.
async fn assert_bad_signed_requests_refused(app: &TestApp, path: &str, user: &FbUser) {
    let payload = TestApp::user_payload(user);
    let good = signed_request(app.var("FACEBOOK_APP_SECRET"), &payload);
    let (sig, body) = good.split_once('.').unwrap();
    let under_other_secret = signed_request("not-the-app-secret", &payload);
    let other_body =
        signed_request(app.var("FACEBOOK_APP_SECRET"), &json!({"algorithm": "HMAC-SHA256", "user_id": "1"}));
    let swapped = format!("{sig}.{}", other_body.split_once('.').unwrap().1);
    let cases = [under_other_secret.as_str(), swapped.as_str(), body, "garbage", "a.b.c", "", &good[..good.len() - 2]];
    for bad in cases {
        let resp = app.post_form(path, &[("signed_request", bad)]).await;
        assert_eq!(resp.status(), 400, "{path} with signed_request={bad:?}");
    }
    assert_eq!(app.post_form(path, &[]).await.status(), 400, "{path} without signed_request");
}

#[actix_web::test]
async fn deauthorize_with_a_bad_signed_request_is_400() {
    let app = spawn_app().await;
    let (_, user, _) = app.merchant(&FIRST).await;
    assert_bad_signed_requests_refused(&app, "/facebook/deauthorize", &user).await;
    app.wait_idle().await;
    for page in &user.pages {
        assert!(has_token(&app, &page.id).await, "a bad request forgot the token of {}", page.id);
    }
}

#[actix_web::test]
async fn deauthorize_stops_fetching_the_users_pages_but_keeps_their_files() {
    let app = spawn_app().await;
    let ((first, first_user), (second, second_user)) = two_merchants(&app).await;
    let resp = app.post_signed_request("/facebook/deauthorize", &TestApp::user_payload(&first_user)).await;
    assert_eq!(resp.status(), 200);
    app.wait_idle().await;

    let ids: Vec<&str> = first_user.pages.iter().map(|p| p.id.as_str()).collect();
    let before: Vec<usize> = ids.iter().map(|p| app.graph.gets(p)).collect();
    assert_eq!(app.post_webhook(&delivery(&ids)).await.status(), 200);
    app.wait_idle().await;
    let after: Vec<usize> = ids.iter().map(|p| app.graph.gets(p)).collect();
    assert_eq!(before, after, "a deauthorized user's Pages were fetched");
    for page in &first_user.pages {
        assert!(app.page_file(&page.id).exists(), "deauthorize keeps page_data.json of {}", page.id);
        assert!(!has_token(&app, &page.id).await, "the token of {} is still there", page.id);
        let state = app.page_state(&page.id).await.expect("the Page is still known, disconnected");
        assert!(
            format!("{:?}", state.status).to_lowercase().contains("disconnected"),
            "Page {} should be marked disconnected: {state:?}",
            page.id
        );
    }
    assert_eq!(app.facebook_login(Some(&first.cookie)).await.status(), 302, "the Shopify session is not Meta's to end");
    assert_merchant_intact(&app, &second, &second_user).await;
}

#[actix_web::test]
async fn data_deletion_with_a_bad_signed_request_is_400() {
    let app = spawn_app().await;
    let (_, user, _) = app.merchant(&FIRST).await;
    assert_bad_signed_requests_refused(&app, "/facebook/data-deletion", &user).await;
    app.wait_idle().await;
    for page in &user.pages {
        assert!(app.page_file(&page.id).exists(), "a bad request deleted {}", page.id);
    }
}

/// `GET /facebook/data-deletion/status?code=C`: the status and the JSON answer.
async fn deletion_status(app: &TestApp, code: &str) -> (u16, Value) {
    let resp = app
        .client
        .get(format!("{}/facebook/data-deletion/status", app.address))
        .query(&[("code", code)])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn says_done(answer: &Value) -> bool {
    let status = answer["status"].as_str().unwrap_or_default().to_lowercase();
    ["done", "complete", "completed", "deleted"].contains(&status.as_str())
}

#[actix_web::test]
async fn data_deletion_deletes_the_users_pages_and_reports_it_done() {
    let app = spawn_app().await;
    let ((_, first_user), (second, second_user)) = two_merchants(&app).await;
    let resp = app.post_signed_request("/facebook/data-deletion", &TestApp::user_payload(&first_user)).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let code = answer["confirmation_code"].as_str().unwrap_or_else(|| panic!("no confirmation_code: {answer}"));
    assert!(!code.is_empty());
    let url = answer["url"].as_str().unwrap_or_else(|| panic!("no url: {answer}"));
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("url {url:?} is not absolute: {e}"));
    assert_eq!(parsed.path(), "/facebook/data-deletion/status", "{url}");
    assert_eq!(parsed.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()), Some(code.to_owned()));

    let done = eventually(Duration::from_secs(10), || async { says_done(&deletion_status(&app, code).await.1) }).await;
    let (status, last) = deletion_status(&app, code).await;
    assert!(done, "the deletion never reported done: {status} {last}");
    assert_eq!(status, 200);

    for page in &first_user.pages {
        assert!(!app.page_dir(&page.id).exists(), "facebook/{}/ is still there", page.id);
        assert!(!has_token(&app, &page.id).await, "the token of {} is still there", page.id);
        let state = app.page_state(&page.id).await;
        assert!(state.is_none(), "the sync state of {} is still there: {state:?}", page.id);
    }
    let ids: Vec<&str> = first_user.pages.iter().map(|p| p.id.as_str()).collect();
    let before: Vec<usize> = ids.iter().map(|p| app.graph.gets(p)).collect();
    assert_eq!(app.post_webhook(&delivery(&ids)).await.status(), 200);
    app.wait_idle().await;
    assert_eq!(ids.iter().map(|p| app.graph.gets(p)).collect::<Vec<_>>(), before);
    assert_merchant_intact(&app, &second, &second_user).await;

    // Asked again, Meta gets an answer again.
    let resp = app.post_signed_request("/facebook/data-deletion", &TestApp::user_payload(&first_user)).await;
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn data_deletion_status_of_an_unknown_code_is_not_done() {
    let app = spawn_app().await;
    let (status, answer) = deletion_status(&app, "no-such-confirmation-code").await;
    assert!(status != 200 || !says_done(&answer), "an unknown code is reported done: {answer}");
    assert!((400..500).contains(&status) || status == 200, "{status} {answer}");
}
