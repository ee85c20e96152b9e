//! `GET /`: the start page without a session, the merchant's dashboard with one.

use pagesync_actors::messages::SyncStatus;

use crate::helpers::{spawn_app, unique_shop};
use pagesync::emulator::Fault;

async fn html(app: &crate::helpers::TestApp, cookie: Option<&str>) -> (u16, String) {
    let resp = app.get_with("/", cookie, &[("Accept", "text/html")]).await;
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    (status, resp.text().await.unwrap())
}

/// The `<tr>` of one Page in the dashboard table.
fn row<'a>(page: &str, body: &'a str) -> &'a str {
    let start = body.find(&format!("<tr data-page-id=\"{page}\">")).unwrap_or_else(|| panic!("no row for {page}"));
    let end = body[start..].find("</tr>").unwrap() + start;
    &body[start..end]
}

#[actix_web::test]
async fn without_a_session_the_start_page_offers_the_install() {
    let app = spawn_app().await;
    let (status, body) = html(&app, None).await;
    assert_eq!(status, 200);
    assert!(body.contains("<form id=\"install-form\" method=\"get\" action=\"/shopify/login\">"), "{body}");
    assert!(body.contains("name=\"shop\""));
    assert!(!body.contains("id=\"pages\""));
    // A cookie that names no live session is the same as none.
    let (status, body) = html(&app, Some("00000000000000000000000000000000")).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"install-form\""));
}

#[actix_web::test]
async fn a_merchant_without_pages_is_asked_to_connect_facebook() {
    let app = spawn_app().await;
    let install = app.install_shop(&unique_shop()).await;
    let (status, body) = html(&app, Some(&install.cookie)).await;
    assert_eq!(status, 200);
    assert!(body.contains(&install.shop), "{body}");
    assert!(body.contains("No Facebook Pages are connected yet"));
    assert!(body.contains("<a id=\"connect-facebook\" href=\"/facebook/login\">"));
}

#[actix_web::test]
async fn the_dashboard_lists_the_merchants_pages_with_their_state() {
    let app = spawn_app().await;
    let (install, _, connected) =
        app.merchant(&[("7001", "Maple & Oak <Candles>"), ("7002", "Harbor Coffee"), ("7003", "Juniper Bikes")]).await;
    // Another merchant's Page must not show up.
    let (_, _, other) = app.merchant(&[("7999", "Someone Else's Page")]).await;
    app.wait_for_status("7002", SyncStatus::Synced).await;

    // Meta now refuses 7003's token: the dashboard offers a reconnect for it alone.
    app.graph.set_sticky_fault("7003", Some(Fault::GraphError(190)));
    app.actors
        .page_writer
        .send(pagesync_actors::messages::SyncNow { page: pagesync_actors::PageId::parse("7003").unwrap() })
        .await
        .unwrap();
    app.wait_for_status("7003", SyncStatus::NeedsReauth).await;

    let (status, body) = html(&app, Some(&connected.cookie)).await;
    assert_eq!(status, 200);
    assert!(body.contains(&install.shop));
    assert!(body.contains("<table id=\"pages\">"), "{body}");
    assert!(!body.contains("7999"), "another merchant's Page is listed: {body}");

    let first = row("7001", &body);
    assert!(first.contains("<td class=\"name\">Maple &amp; Oak &lt;Candles&gt;</td>"), "name not escaped: {first}");
    assert!(first.contains("<td class=\"category\">Home Decor</td>"), "{first}");
    assert!(first.contains("<td class=\"status\">synced</td>"), "{first}");
    assert!(first.contains("<td class=\"subscribed\">subscribed</td>"), "{first}");
    assert!(!first.contains("never"), "a synced Page has a last sync time: {first}");
    assert!(!first.contains("reconnect"));

    let dead = row("7003", &body);
    assert!(dead.contains("needs_reauth"), "{dead}");
    assert!(dead.contains("<a class=\"reconnect\" href=\"/facebook/login\">"), "{dead}");
    assert!(!body.contains("EAAG"), "a token reached the dashboard");

    // The other merchant sees only their own Page.
    let (_, body) = html(&app, Some(&other.cookie)).await;
    assert!(body.contains("<tr data-page-id=\"7999\">"));
    assert!(!body.contains("7001"));
}

#[actix_web::test]
async fn error_pages_name_the_problem_in_an_error_element() {
    let app = spawn_app().await;
    let resp = app
        .get_with("/facebook/callback?error=access_denied&error_reason=user_denied", None, &[("Accept", "text/html")])
        .await;
    assert_eq!(resp.status(), 400);
    let body = resp.text().await.unwrap();
    assert!(body.contains("<p id=\"error\">Facebook connection was cancelled"), "{body}");
}

#[actix_web::test]
async fn a_merchant_with_many_pages_sees_them_a_hundred_at_a_time() {
    let app = spawn_app().await;
    app.graph.set_page_size(100);
    let names: Vec<(String, String)> = (0..103).map(|i| (format!("{}", 880_000 + i), format!("Page {i}"))).collect();
    let pages: Vec<(&str, &str)> = names.iter().map(|(id, name)| (id.as_str(), name.as_str())).collect();
    let (_, _, connected) = app.merchant(&pages).await;
    let rows = |body: &str| body.matches("<tr data-page-id=").count();

    let (status, first) = html(&app, Some(&connected.cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&first), 100);
    assert!(!first.contains("id=\"first-pages\""));
    let next =
        first.split("<a id=\"next-pages\" href=\"").nth(1).and_then(|s| s.split('"').next()).expect("a next link");
    assert_eq!(next, "/?after=880099");

    let resp = app.get_with(next, Some(&connected.cookie), &[("Accept", "text/html")]).await;
    let second = resp.text().await.unwrap();
    assert_eq!(rows(&second), 3, "{second}");
    assert!(second.contains("<tr data-page-id=\"880102\">") && !second.contains("id=\"next-pages\""));
    assert!(second.contains("<a id=\"first-pages\" href=\"/\">"));

    // Past the end, and a cursor that is not a Page id.
    let past = app.get_with("/?after=99999999", Some(&connected.cookie), &[]).await.text().await.unwrap();
    assert!(past.contains("No more Pages"), "{past}");
    let junk = app.get_with("/?after=%3Cscript%3E", Some(&connected.cookie), &[]).await.text().await.unwrap();
    assert_eq!(rows(&junk), 100, "a bad cursor starts from the first Page");
}
