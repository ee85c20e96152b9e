//! The Shopify install (docs/contract.md §4 "Shopify install"): `/shopify/login` and
//! `/shopify/callback` as Shopify and a browser drive them, every rejection the contract
//! names, and the code exchange at the fake shop's admin.

use serde_json::{Value, json};

use crate::helpers::{
    Options, SHOPIFY_KEY, SHOPIFY_STATE_COOKIE, TestApp, cookie_attributes, location, query_map, session_cookie,
    session_set_cookie, set_cookie_header, shopify_query_hmac, spawn_app, spawn_app_with, unique_shop, unix_now,
};
use pagesync::emulator::{Endpoint, Fault};
use pagesync::oauth_state::{ShopifyState, sign_token};
use pagesync_actors::store::trees;
use pagesync_actors::{Secret, ShopDomain};

/// How many bits of randomness a cookie value can hold at most, judged by its alphabet.
pub fn cookie_bits(value: &str) -> usize {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        value.len() * 4
    } else if value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        value.len() * 6
    } else {
        0
    }
}

/// Whether `s` is a UUID in its hyphenated form.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[actix_web::test]
async fn shopify_login_redirects_to_the_shops_authorize_page_with_a_single_use_state() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let resp = app.shopify_login(&shop).await;
    assert_eq!(resp.status(), 302);
    let url = location(&resp);
    let base = format!("{}/shopify/{shop}/admin/oauth/authorize", app.graph.url);
    assert_eq!(&url.as_str()[..url.as_str().find('?').expect("a query")], base);
    let query = query_map(&url);
    assert_eq!(query["client_id"], SHOPIFY_KEY);
    assert_eq!(query["scope"], "read_products");
    assert_eq!(query["redirect_uri"], app.var("SHOPIFY_REDIRECT_URI"));
    assert!(query["state"].len() >= 16, "state too short to be unguessable: {:?}", query["state"]);

    let again = query_map(&location(&app.shopify_login(&shop).await)).remove("state").unwrap();
    assert_ne!(again, query["state"], "every login issues its own state");
}

#[actix_web::test]
async fn shopify_login_rejects_shops_outside_the_myshopify_pattern() {
    let app = spawn_app().await;
    for bad in [
        "evil.com",
        "a.myshopify.com.evil.com",
        "-a.myshopify.com",
        "A.myshopify.com",
        "a_b.myshopify.com",
        "a..myshopify.com",
        "a.myshopify.com/evil",
        "https://a.myshopify.com",
        "a.myshopify.com\n",
        "",
    ] {
        let resp = app.shopify_login(bad).await;
        assert_eq!(resp.status(), 400, "shop={bad:?}");
        assert!(resp.headers().get("location").is_none(), "shop={bad:?} must not redirect");
    }
    assert_eq!(app.get("/shopify/login").await.status(), 400, "no shop parameter");
    assert_eq!(app.shopify_login("a-1.myshopify.com").await.status(), 302, "a valid shop still works");
}

#[actix_web::test]
async fn shopify_callback_answers_json_and_opens_a_session_with_a_strong_cookie() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let resp = app
        .shopify_callback(&app.shopify_callback_query(&shop, &code, &login.state, unix_now()), Some(&login.cookie))
        .await;
    assert_eq!(resp.status(), 200);
    let header = session_set_cookie(&resp).expect("Set-Cookie: session_id=...");
    let value = session_cookie(&resp).unwrap();
    let attributes: Vec<String> = header.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
    assert!(attributes.iter().any(|a| a == "httponly"), "{header}");
    assert!(attributes.iter().any(|a| a == "samesite=lax"), "{header}");
    assert!(attributes.iter().any(|a| a == "path=/"), "{header}");
    assert!(!attributes.iter().any(|a| a == "secure"), "no Secure for an http redirect URI: {header}");
    assert!(cookie_bits(&value) >= 128, "session id {value:?} cannot hold 128 random bits");

    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(body["shop"], shop.as_str());
    assert!(is_uuid(body["user_uuid"].as_str().unwrap_or_default()), "{body}");
    for secret in app.graph.issued_secrets() {
        assert!(!text.contains(&secret), "the answer holds a token or code: {text}");
    }

    // The code was exchanged once, with the app's credentials.
    let exchanges = app.graph.calls_to("POST", &format!("/shopify/{shop}/admin/oauth/access_token"));
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].param("client_id"), Some(SHOPIFY_KEY));
    assert_eq!(exchanges[0].param("client_secret"), Some(app.var("SHOPIFY_API_SECRET")));
    assert_eq!(exchanges[0].param("code"), Some(code.as_str()));
    assert_eq!(exchanges[0].status, 200);

    let other = app.install_shop(&unique_shop()).await;
    assert_ne!(other.cookie, value, "each session has its own id");
}

#[actix_web::test]
async fn shopify_callback_answers_html_with_a_connect_facebook_link_when_asked() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let query = app.shopify_callback_query(&shop, &code, &login.state, unix_now());
    let resp = app
        .shopify_callback_with(
            &query,
            Some(&login.cookie),
            &[("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(session_cookie(&resp).is_some());
    let html = resp.text().await.unwrap();
    assert!(html.contains("Connect Facebook"), "{html}");
    assert!(html.contains("href=\"/facebook/login\"") || html.contains("/facebook/login\""), "{html}");
}

#[actix_web::test]
async fn shopify_callback_with_a_wrong_hmac_is_401() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let mut query = app.shopify_callback_query(&shop, &code, &login.state, unix_now());
    let wrong = shopify_query_hmac("not-the-shopify-secret", &query);
    query.iter_mut().find(|(k, _)| k == "hmac").unwrap().1 = wrong;
    let resp = app.shopify_callback(&query, Some(&login.cookie)).await;
    assert_eq!(resp.status(), 401);
    assert!(session_cookie(&resp).is_none());
    assert!(app.graph.calls().is_empty(), "nothing is exchanged before the hmac checks out");
}

#[actix_web::test]
async fn shopify_callback_without_hmac_is_401() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let mut query = app.shopify_callback_query(&shop, &code, &login.state, unix_now());
    query.retain(|(k, _)| k != "hmac");
    assert_eq!(app.shopify_callback(&query, Some(&login.cookie)).await.status(), 401);
    assert!(app.graph.calls().is_empty());
}

#[actix_web::test]
async fn shopify_callback_with_a_parameter_changed_after_signing_is_401() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let mut query = app.shopify_callback_query(&shop, &code, &login.state, unix_now());
    query.iter_mut().find(|(k, _)| k == "host").unwrap().1.push('x');
    assert_eq!(app.shopify_callback(&query, Some(&login.cookie)).await.status(), 401);
    assert!(app.graph.calls().is_empty());
}

#[actix_web::test]
async fn shopify_callback_with_a_timestamp_older_than_90_seconds_is_400() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let resp = app.shopify_return(&shop, &login, unix_now() - 100).await;
    assert_eq!(resp.status(), 400);
    assert!(session_cookie(&resp).is_none());
    assert!(app.graph.calls().is_empty());
}

#[actix_web::test]
async fn shopify_callback_with_a_timestamp_more_than_90_seconds_ahead_is_400() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let resp = app.shopify_return(&shop, &login, unix_now() + 100).await;
    assert_eq!(resp.status(), 400);
    assert!(app.graph.calls().is_empty());
}

#[actix_web::test]
async fn shopify_callback_with_a_state_issued_for_another_shop_is_400() {
    let app = spawn_app().await;
    let (shop, other) = (unique_shop(), unique_shop());
    let login_of_other = app.shopify_state(&other).await;
    let resp = app.shopify_return(&shop, &login_of_other, unix_now()).await;
    assert_eq!(resp.status(), 400);
    assert!(session_cookie(&resp).is_none());
    assert!(app.graph.calls().is_empty());
}

#[actix_web::test]
async fn shopify_callback_with_a_replayed_state_is_400() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    assert_eq!(
        app.shopify_callback(&app.shopify_callback_query(&shop, &code, &login.state, unix_now()), Some(&login.cookie))
            .await
            .status(),
        200
    );

    let second_code = app.graph.shopify_code(&shop);
    let resp = app
        .shopify_callback(
            &app.shopify_callback_query(&shop, &second_code, &login.state, unix_now()),
            Some(&login.cookie),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert!(session_cookie(&resp).is_none());
    assert_eq!(app.graph.calls().len(), 1, "the replay reached Shopify");
}

#[actix_web::test]
async fn shopify_callback_with_a_state_never_issued_is_400() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let code = app.graph.shopify_code(&shop);
    let made_up = hex::encode(rand::random::<[u8; 16]>());
    let resp =
        app.shopify_callback(&app.shopify_callback_query(&shop, &code, &made_up, unix_now()), Some(&made_up)).await;
    assert_eq!(resp.status(), 400);
    assert!(app.graph.calls().is_empty());
}

#[actix_web::test]
async fn shopify_callback_whose_code_shopify_refuses_is_400_asking_to_connect_again() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let resp = app
        .shopify_callback(
            &app.shopify_callback_query(&shop, "0907a61c0c8d55e99db179b68161bc00", &login.state, unix_now()),
            Some(&login.cookie),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert!(session_cookie(&resp).is_none());
    let text = resp.text().await.unwrap();
    assert!(text.to_lowercase().contains("again"), "the message should ask to connect again: {text}");
    assert_eq!(app.graph.calls_to("POST", &format!("/shopify/{shop}/admin/oauth/access_token")).len(), 1);
}

#[actix_web::test]
async fn shopify_callback_when_shopify_answers_500_is_502() {
    let app = spawn_app().await;
    let shop = unique_shop();
    app.graph.set_endpoint_sticky(
        Endpoint::ShopifyToken(shop.clone()),
        Some(Fault::Status(500, json!({"errors": "Internal Server Error"}))),
    );
    let login = app.shopify_state(&shop).await;
    let resp = app.shopify_return(&shop, &login, unix_now()).await;
    assert_eq!(resp.status(), 502);
    assert!(session_cookie(&resp).is_none());
}

#[actix_web::test]
async fn a_second_install_of_the_same_shop_keeps_its_user_uuid() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let first = app.install_shop(&shop).await;
    let second = app.install_shop(&shop).await;
    assert_eq!(first.user_uuid, second.user_uuid);
    assert_ne!(first.cookie, second.cookie, "every install opens its own session");
    let other = app.install_shop(&unique_shop()).await;
    assert_ne!(other.user_uuid, first.user_uuid, "another shop is another merchant");
}

#[actix_web::test]
async fn shopify_callback_accepts_the_expiring_offline_token_answer() {
    let app = spawn_app().await;
    app.graph.set_shopify_expiring(true);
    let install = app.install_shop(&unique_shop()).await;
    assert_eq!(app.facebook_login(Some(&install.cookie)).await.status(), 302, "the session works");
}

#[actix_web::test]
async fn the_session_cookie_is_secure_when_the_redirect_uri_is_https() {
    let app = spawn_app_with(Options {
        env: vec![("SHOPIFY_REDIRECT_URI", "https://pagesync.example/shopify/callback".into())],
        ..Options::default()
    })
    .await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let resp = app.shopify_return(&shop, &login, unix_now()).await;
    assert_eq!(resp.status(), 200);
    let header = session_set_cookie(&resp).expect("Set-Cookie: session_id=...");
    assert!(header.split(';').skip(1).any(|a| a.trim().eq_ignore_ascii_case("secure")), "{header}");
    assert!(header.split(';').skip(1).any(|a| a.trim().eq_ignore_ascii_case("httponly")), "{header}");

    let login = app.shopify_login(&shop).await;
    let header = set_cookie_header(&login, SHOPIFY_STATE_COOKIE).expect("Set-Cookie: shopify_state=...");
    assert!(cookie_attributes(&header).iter().any(|a| a == "secure"), "{header}");
}

#[actix_web::test]
async fn shopify_callback_when_shopify_is_unreachable_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(Options {
        env: vec![("SHOPIFY_ADMIN_URL", format!("http://127.0.0.1:{closed}/{{shop}}"))],
        ..Options::default()
    })
    .await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let resp = app
        .shopify_callback(
            &app.shopify_callback_query(&shop, "0907a61c0c8d55e99db179b68161bc00", &login.state, unix_now()),
            Some(&login.cookie),
        )
        .await;
    assert_eq!(resp.status(), 502);
    assert!(session_cookie(&resp).is_none());
}

// ----- the state is bound to the browser, single use, and costs no storage ----------

#[actix_web::test]
async fn shopify_login_binds_the_state_to_the_browser_with_a_cookie() {
    let app = spawn_app().await;
    let resp = app.shopify_login(&unique_shop()).await;
    assert_eq!(resp.status(), 302);
    let header = set_cookie_header(&resp, SHOPIFY_STATE_COOKIE).expect("Set-Cookie: shopify_state=...");
    let attributes = cookie_attributes(&header);
    for wanted in ["httponly", "samesite=lax", "path=/shopify", "max-age=600"] {
        assert!(attributes.iter().any(|a| a == wanted), "{wanted} missing: {header}");
    }
    assert!(!attributes.iter().any(|a| a == "secure"), "no Secure for an http redirect URI: {header}");
    let value = header.split(';').next().unwrap().trim().trim_start_matches("shopify_state=").to_owned();
    assert!(cookie_bits(&value) >= 128, "state cookie {value:?} cannot hold 128 random bits");
}

#[actix_web::test]
async fn shopify_callback_without_the_state_cookie_is_400() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let resp = app.shopify_callback(&app.shopify_callback_query(&shop, &code, &login.state, unix_now()), None).await;
    assert_eq!(resp.status(), 400);
    assert!(session_cookie(&resp).is_none());
    assert!(app.graph.calls().is_empty(), "nothing is exchanged for a browser that did not start the install");

    // The same browser, with its cookie, still can (the refusal did not spend the state).
    let resp = app
        .shopify_callback(&app.shopify_callback_query(&shop, &code, &login.state, unix_now()), Some(&login.cookie))
        .await;
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn shopify_callback_with_the_cookie_of_another_login_is_400() {
    let app = spawn_app().await;
    let shop = unique_shop();
    // The attacker's login and the victim's browser, each with its own cookie.
    let attacker = app.shopify_state(&shop).await;
    let victim = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let resp = app
        .shopify_callback(&app.shopify_callback_query(&shop, &code, &attacker.state, unix_now()), Some(&victim.cookie))
        .await;
    assert_eq!(resp.status(), 400);
    assert!(session_cookie(&resp).is_none());
    assert!(app.graph.calls().is_empty());
}

#[actix_web::test]
async fn shopify_callback_clears_the_state_cookie() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let resp = app.shopify_return(&shop, &login, unix_now()).await;
    assert_eq!(resp.status(), 200);
    let header = set_cookie_header(&resp, SHOPIFY_STATE_COOKIE).expect("the state cookie is cleared");
    let attributes = cookie_attributes(&header);
    assert!(attributes.iter().any(|a| a == "max-age=0"), "{header}");
    assert!(attributes.iter().any(|a| a == "path=/shopify"), "{header}");
}

#[actix_web::test]
async fn shopify_callback_with_an_expired_state_is_400() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let secret = Secret::new(app.var("STATE_TOKEN_SECRET"));
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let expired =
        ShopifyState { shop: ShopDomain::parse(&shop).unwrap(), nonce: nonce.clone(), expires_at: unix_now() - 1 };
    let code = app.graph.shopify_code(&shop);
    let query = app.shopify_callback_query(&shop, &code, &sign_token(&secret, &expired), unix_now());
    let resp = app.shopify_callback(&query, Some(&nonce)).await;
    assert_eq!(resp.status(), 400);
    assert!(app.graph.calls().is_empty());

    // The same state, unexpired, goes through: only the expiry was wrong above.
    let fresh = ShopifyState { expires_at: unix_now() + 600, ..expired };
    let query = app.shopify_callback_query(&shop, &code, &sign_token(&secret, &fresh), unix_now());
    assert_eq!(app.shopify_callback(&query, Some(&nonce)).await.status(), 200);
}

#[actix_web::test]
async fn a_used_state_stays_refused_after_a_restart() {
    let app = spawn_app().await;
    let shop = unique_shop();
    let login = app.shopify_state(&shop).await;
    let code = app.graph.shopify_code(&shop);
    let query = app.shopify_callback_query(&shop, &code, &login.state, unix_now());
    assert_eq!(app.shopify_callback(&query, Some(&login.cookie)).await.status(), 200);
    let (dir, key, graph) = app.stop().await;
    let app = crate::helpers::start_app(dir, key, graph, Options::default()).await;
    let code = app.graph.shopify_code(&shop);
    let query = app.shopify_callback_query(&shop, &code, &login.state, unix_now());
    assert_eq!(app.shopify_callback(&query, Some(&login.cookie)).await.status(), 400);
}

#[actix_web::test]
async fn shopify_logins_do_not_grow_the_database() {
    let app = spawn_app().await;
    for i in 0..500 {
        let resp = app.shopify_login(&format!("flood-{i}.myshopify.com")).await;
        assert_eq!(resp.status(), 302);
    }
    let (dir, _key, _graph) = app.stop().await;
    assert_eq!(TestApp::tree_len(&dir, trees::SHOPIFY_STATES), 0, "logins wrote states");
    assert_eq!(TestApp::tree_len(&dir, trees::SESSIONS), 0, "logins wrote sessions");
}
