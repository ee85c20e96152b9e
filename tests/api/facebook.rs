//! Facebook connect (docs/contract.md §4 "Facebook connect"): `/facebook/login` and
//! `/facebook/callback` from a Shopify session to synced `page_data.json` files, the
//! exact calls the fake Meta sees (docs/platform.md, "Login" and "Webhook subscriptions"), every rejection, idempotent
//! subscriptions at both levels, per-Page failures and the session rotation.

use std::time::{Duration, Instant};

use base64::Engine as _;
use pagesync_actors::PageId;
use pagesync_actors::messages::{GetPageToken, ListPages};
use serde_json::{Value, json};

use crate::helpers::{
    APP_SECRET, Options, TestApp, VERIFY_TOKEN, eventually, location, query_map, session_cookie, spawn_app,
    spawn_app_with, unique_shop, unix_now,
};
use pagesync::emulator::{APP_ID, Call, Endpoint, Fault, FbUser, field_list};

const FIVE_PAGES: [(&str, &str); 5] = [
    ("104857600012345", "Maple & Oak Candle Co."),
    ("209715200067890", "Northwind Outfitters"),
    ("314572800098765", "Café Lumière / Bakery"),
    ("419430400011111", "Fourth Page"),
    ("524288000022222", "Fifth Page"),
];

const THREE_PAGES: [(&str, &str); 3] =
    [("104857600012345", "Maple"), ("209715200067890", "Northwind"), ("314572800098765", "Lumière")];

/// The row of `page` in a connect answer.
fn row<'a>(body: &'a Value, page: &str) -> &'a Value {
    body["pages"]
        .as_array()
        .unwrap_or_else(|| panic!("no pages array in {body}"))
        .iter()
        .find(|r| r["id"] == page)
        .unwrap_or_else(|| panic!("no row for Page {page} in {body}"))
}

/// Page-level subscription POSTs for `page` so far.
fn page_posts(app: &TestApp, page: &str) -> Vec<Call> {
    app.graph.calls_to("POST", &format!("/v25.0/{page}/subscribed_apps"))
}

/// Page-level subscription POSTs for any Page so far.
fn all_page_posts(app: &TestApp) -> usize {
    app.graph.calls().iter().filter(|c| c.method == "POST" && c.path.ends_with("/subscribed_apps")).count()
}

/// Waits for the app-level subscription POST (it may run in the background) and returns
/// every attempt so far.
async fn wait_for_app_subscription(app: &TestApp) -> Vec<pagesync::emulator::AppSubscriptionAttempt> {
    let graph = app.graph.clone();
    let found = eventually(Duration::from_secs(10), || {
        let graph = graph.clone();
        async move { !graph.app_subscription_attempts().is_empty() }
    })
    .await;
    assert!(found, "no POST /{APP_ID}/subscriptions was made; calls: {:#?}", app.graph.calls());
    app.graph.app_subscription_attempts()
}

fn is_code_exchange(c: &Call) -> bool {
    c.is("GET", "/v25.0/oauth/access_token") && c.param("code").is_some()
}

fn code_exchanges(app: &TestApp) -> usize {
    app.graph.calls().iter().filter(|c| is_code_exchange(c)).count()
}

#[actix_web::test]
async fn facebook_login_without_a_session_cookie_is_401() {
    let app = spawn_app().await;
    let resp = app.facebook_login(None).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("location").is_none());
}

#[actix_web::test]
async fn facebook_login_with_an_unknown_session_cookie_is_401() {
    let app = spawn_app().await;
    app.install_shop(&unique_shop()).await;
    let made_up = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    assert_eq!(app.facebook_login(Some(&made_up)).await.status(), 401);
}

#[actix_web::test]
async fn facebook_login_with_an_expired_session_is_401() {
    let ttl = Duration::from_secs(2);
    let app = spawn_app_with(Options { env: vec![("PAGESYNC_SESSION_TTL", "2s".into())], ..Options::default() }).await;
    let started = Instant::now();
    let install = app.install_shop(&unique_shop()).await;
    let first = app.facebook_login(Some(&install.cookie)).await.status();
    if first == 401 {
        assert!(started.elapsed() >= ttl, "the session was refused before its TTL passed");
    } else {
        assert_eq!(first, 302, "a fresh session works");
    }
    let expired = eventually(Duration::from_secs(15), || async {
        app.facebook_login(Some(&install.cookie)).await.status() == 401
    })
    .await;
    assert!(expired, "the session still worked {:?} after it was opened (TTL 2s)", started.elapsed());
    assert!(started.elapsed() >= ttl);
}

#[actix_web::test]
async fn facebook_login_redirects_to_the_dialog_with_a_signed_state() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let resp = app.facebook_login(Some(&install.cookie)).await;
    assert_eq!(resp.status(), 302);
    let url = location(&resp);
    let base = format!("{}/v25.0/dialog/oauth", app.graph.url);
    assert_eq!(&url.as_str()[..url.as_str().find('?').expect("a query")], base);
    let query = query_map(&url);
    assert_eq!(query["client_id"], APP_ID);
    assert_eq!(query["redirect_uri"], app.var("FACEBOOK_REDIRECT_URI"));
    assert_eq!(query["scope"], "pages_messaging,pages_show_list,pages_manage_metadata");
    assert_eq!(query["response_type"], "code");
    assert!(query["state"].len() >= 32, "state too short to carry a uuid, nonce, expiry and MAC: {}", query["state"]);
    let again = app.facebook_state(&install.cookie).await;
    assert_ne!(again, query["state"], "every login has its own nonce");
}

#[actix_web::test]
async fn connecting_facebook_syncs_every_page_of_the_user_across_paged_accounts() {
    let app = spawn_app().await;
    app.graph.set_page_size(2);
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&FIVE_PAGES);
    let connected = app.connect_facebook(&install.cookie, &user).await;

    assert_eq!(connected.body["user_uuid"], install.user_uuid.as_str(), "{}", connected.text);
    assert_eq!(connected.body["pages"].as_array().map(Vec::len), Some(5), "{}", connected.text);
    for page in &user.pages {
        let row = row(&connected.body, &page.id);
        assert_eq!(row["name"], page.name.as_str(), "{row}");
        assert_eq!(row["category"], page.category.as_str(), "{row}");
        assert_eq!(row["subscribed"], true, "{row}");
        assert_eq!(row["synced"], true, "{row}");
        // "synced" means written: the file is there when the answer arrives.
        let data: Value = serde_json::from_slice(
            &std::fs::read(app.page_file(&page.id))
                .unwrap_or_else(|e| panic!("page_data.json of {} after synced=true: {e}", page.id)),
        )
        .unwrap();
        assert_eq!(data["id"], page.id.as_str());
        assert_eq!(data["name"], page.name.as_str());
        let text = std::fs::read_to_string(app.page_file(&page.id)).unwrap();
        assert!(!text.contains(&page.token));
    }
    for secret in app.graph.issued_secrets() {
        assert!(!connected.text.contains(&secret), "the answer holds a token or code: {}", connected.text);
    }
    assert_eq!(app.graph.calls_to("GET", "/v25.0/me/accounts").len(), 3, "5 Pages, 2 per answer: 3 answers");
    app.wait_idle().await;
}

#[actix_web::test]
async fn connecting_facebook_makes_exactly_the_calls_platform_describes() {
    let app = spawn_app().await;
    app.graph.set_page_size(2);
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES);
    app.connect_facebook(&install.cookie, &user).await;
    let attempts = wait_for_app_subscription(&app).await;
    app.wait_idle().await;
    let calls = app.graph.calls();
    let app_token = format!("{APP_ID}|{APP_SECRET}");

    // Code -> short-lived user token, with the secret and the dialog's redirect URI.
    let exchanges: Vec<&Call> = calls.iter().filter(|c| is_code_exchange(c)).collect();
    assert_eq!(exchanges.len(), 1, "{exchanges:#?}");
    assert_eq!(exchanges[0].param("client_id"), Some(APP_ID));
    assert_eq!(exchanges[0].param("client_secret"), Some(APP_SECRET));
    assert_eq!(exchanges[0].param("redirect_uri"), Some(app.var("FACEBOOK_REDIRECT_URI")));
    assert_eq!(exchanges[0].status, 200);

    // Short-lived -> long-lived.
    let long: Vec<&Call> = calls
        .iter()
        .filter(|c| c.is("GET", "/v25.0/oauth/access_token") && c.param("grant_type") == Some("fb_exchange_token"))
        .collect();
    assert_eq!(long.len(), 1, "{long:#?}");
    assert_eq!(long[0].param("client_id"), Some(APP_ID));
    assert_eq!(long[0].param("client_secret"), Some(APP_SECRET));
    assert!(long[0].param("fb_exchange_token").is_some_and(|t| t.starts_with("EAAGshort")), "{:?}", long[0]);
    assert_eq!(long[0].status, 200);

    // /me/accounts with the long-lived token, every page of it.
    let accounts: Vec<&Call> = calls.iter().filter(|c| c.is("GET", "/v25.0/me/accounts")).collect();
    assert_eq!(accounts.len(), 2, "3 Pages, 2 per answer");
    assert!(accounts.iter().all(|c| c.token.as_deref() == Some(user.long_token.as_str())), "{accounts:#?}");
    assert!(accounts[1].param("after").is_some(), "the second request follows the cursor");
    assert!(accounts.iter().all(|c| c.status == 200));

    // Every call made with a user or Page token carries a proof that verifies.
    let page_tokens: Vec<&str> = user.pages.iter().map(|p| p.token.as_str()).collect();
    for call in &calls {
        let Some(token) = call.token.as_deref() else { continue };
        if token == user.long_token || token.starts_with("EAAGshort") || page_tokens.contains(&token) {
            assert!(call.proof_ok, "appsecret_proof/appsecret_time missing or wrong: {call:#?}");
        }
    }

    // The app-level subscription, whose verification GET our daemon answered.
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let params = &attempts[0].params;
    assert_eq!(params.get("object").map(String::as_str), Some("page"));
    assert_eq!(params.get("callback_url").map(String::as_str), Some(app.var("FACEBOOK_WEBHOOK_ADDRESS")));
    assert_eq!(field_list(params.get("fields").map(String::as_str).unwrap_or("")), ["name", "category"]);
    assert_eq!(params.get("verify_token").map(String::as_str), Some(VERIFY_TOKEN));
    assert_eq!(params.get("include_values").map(String::as_str), Some("true"));
    assert_eq!(params.get("access_token").map(String::as_str), Some(app_token.as_str()));
    assert!(attempts[0].verified, "Meta's verification GET failed: {:?}", attempts[0].answer);

    // Per Page: GET subscribed_apps, then POST the wanted fields with the Page token.
    for page in &user.pages {
        let path = format!("/v25.0/{}/subscribed_apps", page.id);
        let get = calls.iter().position(|c| c.is("GET", &path)).unwrap_or_else(|| panic!("no GET {path}"));
        let posts: Vec<(usize, &Call)> = calls.iter().enumerate().filter(|(_, c)| c.is("POST", &path)).collect();
        assert_eq!(posts.len(), 1, "{path}: {posts:#?}");
        assert!(get < posts[0].0, "{path}: the GET comes before the POST");
        let post = posts[0].1;
        assert_eq!(post.token.as_deref(), Some(page.token.as_str()));
        assert_eq!(field_list(post.param("subscribed_fields").unwrap_or("")), ["name", "category"]);
        assert!(post.param("callback_url").is_none() && post.param("verify_token").is_none(), "{post:#?}");
        assert_eq!(app.graph.installed_fields(&page.id), Some(vec!["name".to_owned(), "category".to_owned()]));
        assert!(app.graph.gets(&page.id) >= 1, "Page {} was never fetched", page.id);
    }

    // Nothing else: every call is one docs/platform.md describes.
    for call in &calls {
        let p = call.path.as_str();
        let known = p == "/v25.0/oauth/access_token"
            || p == "/v25.0/me"
            || p == "/v25.0/me/accounts"
            || p == "/v25.0/debug_token"
            || p == format!("/v25.0/{APP_ID}/subscriptions")
            || user
                .pages
                .iter()
                .any(|pg| p == format!("/v25.0/{}", pg.id) || p == format!("/v25.0/{}/subscribed_apps", pg.id))
            || p == format!("/shopify/{}/admin/oauth/access_token", install.shop);
        assert!(known && call.method != "DELETE", "unexpected call: {call:#?}");
        assert!(call.status < 400 || p == "/v25.0/debug_token", "a call failed: {call:#?}");
    }
}

#[actix_web::test]
async fn connecting_facebook_rotates_the_session_id() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..1]);
    let connected = app.connect_facebook(&install.cookie, &user).await;
    assert_ne!(connected.cookie, install.cookie);
    assert_eq!(app.facebook_login(Some(&install.cookie)).await.status(), 401, "the old id stopped working");
    assert_eq!(app.facebook_login(Some(&connected.cookie)).await.status(), 302, "the new id works");
}

#[actix_web::test]
async fn facebook_callback_answers_html_without_tokens_when_asked() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES);
    let state = app.facebook_state(&install.cookie).await;
    let code = app.graph.new_code(&user);
    let resp = app
        .client
        .get(format!("{}/facebook/callback", app.address))
        .query(&[("code", code.as_str()), ("state", state.as_str())])
        .header("Cookie", format!("session_id={}", install.cookie))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    for page in &user.pages {
        assert!(html.contains(&page.id), "the page lists Page {}: {html}", page.id);
    }
    for secret in app.graph.issued_secrets() {
        assert!(!html.contains(&secret), "the page holds a token or code: {html}");
    }
}

#[actix_web::test]
async fn facebook_callback_when_the_user_said_no_is_400_with_a_clear_message() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let state = app.facebook_state(&install.cookie).await;
    let resp = app
        .facebook_callback(
            &[
                ("error", "access_denied"),
                ("error_reason", "user_denied"),
                ("error_description", "Permissions error."),
                ("state", &state),
            ],
            Some(&install.cookie),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap().to_lowercase();
    assert!(
        ["denied", "declined", "cancel", "did not allow", "didn't allow"].iter().any(|w| text.contains(w)),
        "the message should say the user said no: {text}"
    );
    assert_eq!(code_exchanges(&app), 0);
}

#[actix_web::test]
async fn facebook_callback_without_a_state_is_400() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..1]);
    let code = app.graph.new_code(&user);
    assert_eq!(app.facebook_callback(&[("code", &code)], Some(&install.cookie)).await.status(), 400);
    assert_eq!(code_exchanges(&app), 0);
}

#[actix_web::test]
async fn facebook_callback_with_a_forged_state_is_400() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..1]);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"user_uuid": install.user_uuid, "nonce": hex::encode(rand::random::<[u8; 16]>()), "exp": unix_now() + 600});
    let forged = format!("{}.{}", b64.encode(claims.to_string()), b64.encode(rand::random::<[u8; 32]>()));
    for state in [forged.as_str(), "forged", ""] {
        let code = app.graph.new_code(&user);
        let resp = app.facebook_callback(&[("code", &code), ("state", state)], Some(&install.cookie)).await;
        assert_eq!(resp.status(), 400, "state={state:?}");
    }
    assert_eq!(code_exchanges(&app), 0, "no code is exchanged on a forged state");
    app.connect_facebook(&install.cookie, &user).await;
}

#[actix_web::test]
async fn facebook_callback_with_a_tampered_state_is_400() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..1]);
    let state = app.facebook_state(&install.cookie).await;
    let mut chars: Vec<char> = state.chars().collect();
    let at = chars.len() / 3;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let code = app.graph.new_code(&user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &tampered)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(code_exchanges(&app), 0);

    // The genuine state is still good.
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
}

#[actix_web::test]
async fn facebook_callback_with_a_replayed_state_is_400() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..1]);
    let state = app.facebook_state(&install.cookie).await;
    let code = app.graph.new_code(&user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 200);
    let cookie = session_cookie(&resp).expect("a rotated session");

    let code = app.graph.new_code(&user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&cookie)).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(code_exchanges(&app), 1, "the replay reached Meta");
}

#[actix_web::test]
async fn facebook_callback_whose_code_meta_refuses_is_400_asking_to_connect_again() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let state = app.facebook_state(&install.cookie).await;
    let resp = app.facebook_callback(&[("code", "AQ-never-issued"), ("state", &state)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.to_lowercase().contains("again"), "the message should ask to connect again: {text}");
    assert_eq!(code_exchanges(&app), 1);
}

#[actix_web::test]
async fn facebook_callback_when_meta_answers_500_is_502() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..1]);
    app.graph.set_endpoint_sticky(Endpoint::CodeExchange, Some(Fault::unavailable()));
    let state = app.facebook_state(&install.cookie).await;
    let code = app.graph.new_code(&user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 502);
    assert!(session_cookie(&resp).is_none(), "no rotation on failure");
}

#[actix_web::test]
async fn a_page_whose_app_install_already_has_the_fields_gets_no_subscription_post() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..2]);
    let (done, todo) = (&user.pages[0].id, &user.pages[1].id);
    // A superset, in another order, still holds the wanted fields.
    app.graph.preinstall(done, &["category", "feed", "name"]);
    let connected = app.connect_facebook(&install.cookie, &user).await;
    assert_eq!(row(&connected.body, done)["subscribed"], true);
    assert_eq!(row(&connected.body, todo)["subscribed"], true);
    assert!(page_posts(&app, done).is_empty(), "posted although the fields were there");
    assert_eq!(page_posts(&app, todo).len(), 1);
    assert!(!app.graph.calls_to("GET", &format!("/v25.0/{done}/subscribed_apps")).is_empty(), "it was checked");
}

#[actix_web::test]
async fn a_second_connect_of_the_same_user_posts_no_subscription_again() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES);
    let first = app.connect_facebook(&install.cookie, &user).await;
    wait_for_app_subscription(&app).await;
    app.wait_idle().await;
    let (page_level, app_level) = (all_page_posts(&app), app.graph.app_subscription_attempts().len());
    assert_eq!(page_level, 3);

    let second = app.connect_facebook(&first.cookie, &user).await;
    app.wait_idle().await;
    for page in &user.pages {
        assert_eq!(row(&second.body, &page.id)["subscribed"], true);
        assert_eq!(row(&second.body, &page.id)["synced"], true);
    }
    assert_eq!(all_page_posts(&app), page_level, "page-level subscriptions were posted again");
    assert_eq!(app.graph.app_subscription_attempts().len(), app_level, "the app-level subscription was posted again");
}

#[actix_web::test]
async fn one_pages_failed_subscription_is_reported_in_its_row_and_retried_in_the_background() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES);
    let failing = user.pages[1].id.clone();
    app.graph.set_endpoint_sticky(Endpoint::SubscribedAppsPost(failing.clone()), Some(Fault::unavailable()));
    let connected = app.connect_facebook(&install.cookie, &user).await;
    for page in &user.pages {
        let row = row(&connected.body, &page.id);
        assert_eq!(row["subscribed"], page.id != failing, "{row}");
        assert_eq!(row["synced"], true, "{row}");
        assert!(app.page_file(&page.id).exists());
    }
    assert_eq!(app.graph.installed_fields(&failing), None);

    // Meta recovers; the daemon retries on its own.
    app.graph.set_endpoint_sticky(Endpoint::SubscribedAppsPost(failing.clone()), None);
    let started = Instant::now();
    let graph = app.graph.clone();
    let retried = eventually(Duration::from_secs(60), || {
        let graph = graph.clone();
        let failing = failing.clone();
        async move { graph.installed_fields(&failing).is_some() }
    })
    .await;
    assert!(
        retried,
        "Page {failing} was never subscribed in the background; POSTs: {:#?}",
        page_posts(&app, &failing).iter().map(|c| c.status).collect::<Vec<_>>()
    );
    eprintln!("background subscription retry succeeded {:?} after Meta recovered", started.elapsed());
}

#[actix_web::test]
async fn a_page_refusing_subscription_with_a_permission_error_does_not_fail_the_others() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES);
    let refusing = user.pages[0].id.clone();
    app.graph.set_endpoint_sticky(
        Endpoint::SubscribedAppsPost(refusing.clone()),
        Some(Fault::Status(
            400,
            json!({"error": {"message": "(#200) Permissions error", "type": "OAuthException", "code": 200}}),
        )),
    );
    let connected = app.connect_facebook(&install.cookie, &user).await;
    for page in &user.pages {
        let row = row(&connected.body, &page.id);
        assert_eq!(row["subscribed"], page.id != refusing, "{row}");
        assert_eq!(row["synced"], true, "{row}");
    }
}

#[actix_web::test]
async fn a_page_moving_to_another_merchant_is_rebound_not_duplicated() {
    let app = spawn_app().await;
    let shared = "104857600012345";
    let first_shop = app.install_shop(&unique_shop()).await;
    let first_user = app.graph.register_user(&[(shared, "Shared Page"), ("209715200067890", "First's own")]);
    app.connect_facebook(&first_shop.cookie, &first_user).await;

    let second_shop = app.install_shop(&unique_shop()).await;
    let second_user: FbUser = app.graph.register_user(&[(shared, "Shared Page"), ("314572800098765", "Second's own")]);
    let connected = app.connect_facebook(&second_shop.cookie, &second_user).await;
    assert_eq!(row(&connected.body, shared)["synced"], true);
    app.wait_idle().await;

    let page = PageId::parse(shared).unwrap();
    let credentials = app.actors.vault.send(GetPageToken { page: page.clone() }).await.unwrap().unwrap();
    let credentials = credentials.expect("the Page is still connected");
    assert_eq!(credentials.owner.as_str(), second_shop.user_uuid, "the Page belongs to the second merchant now");
    assert_eq!(credentials.token.expose(), second_user.pages[0].token, "with the second user's Page token");
    let listed = app.actors.vault.send(ListPages).await.unwrap().unwrap();
    assert_eq!(listed.iter().filter(|(p, _)| *p == page).count(), 1, "{listed:?}");
    assert_eq!(listed.len(), 3);

    // The first merchant leaving does not take the Page with it.
    let resp =
        app.post_shopify_webhook("app/uninstalled", &first_shop.shop, &TestApp::shop_body(&first_shop.shop)).await;
    assert_eq!(resp.status(), 200);
    assert!(app.page_file(shared).exists());
    assert!(!app.page_dir("209715200067890").exists());
    let credentials = app.actors.vault.send(GetPageToken { page }).await.unwrap().unwrap();
    assert_eq!(credentials.map(|c| c.owner.as_str().to_owned()), Some(second_shop.user_uuid.clone()));
}

#[actix_web::test]
async fn facebook_callback_when_meta_fails_listing_the_pages_is_502() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES);
    app.graph.set_endpoint_sticky(Endpoint::MeAccounts, Some(Fault::unavailable()));
    let state = app.facebook_state(&install.cookie).await;
    let code = app.graph.new_code(&user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 502);
    for page in &user.pages {
        assert!(!app.page_file(&page.id).exists());
    }
}

#[actix_web::test]
async fn facebook_callback_when_meta_is_unreachable_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(Options {
        env: vec![("FACEBOOK_GRAPH_URL", format!("http://127.0.0.1:{closed}"))],
        ..Options::default()
    })
    .await;
    let install = app.install_shop(&unique_shop()).await;
    let user = app.graph.register_user(&THREE_PAGES[..1]);
    let state = app.facebook_state(&install.cookie).await;
    let code = app.graph.new_code(&user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 502);
}
