//! Subscriptions that never remove a field (docs/contract.md §4 "Facebook connect"): pagesync shares
//! the Meta app with the sales bot, so at both levels it reads what is there and adds
//! W = FACEBOOK_SUBSCRIBED_FIELDS ∪ PAGESYNC_BOT_FIELDS to it, posts nothing when W is
//! already covered, and never takes over another callback URL unless
//! PAGESYNC_FORWARD_URL says where to relay (else the app subscription is `conflict`,
//! visible in `pagesync pages`, the dashboard and `/metrics`).

use std::time::Duration;

use pagesync_actors::subscription::{GetSubscription, SubscriptionState};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, eventually, spawn_app, spawn_app_with, start_app};
use pagesync::emulator::{APP_ID, Call, Endpoint, Fault, FieldForm, field_list};

/// Where someone else (the bot) pointed the app's `page` webhooks. Never contacted:
/// pagesync must not post it, and when it takes over it posts its own address.
const BOT_CALLBACK: &str = "http://127.0.0.1:9/bot/webhook";

fn with_env(env: &[(&'static str, &str)]) -> Options {
    Options { env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(), ..Options::default() }
}

fn bot_fields() -> Options {
    with_env(&[("PAGESYNC_BOT_FIELDS", "messages,messaging_postbacks")])
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn page_posts(app: &TestApp, page: &str) -> Vec<Call> {
    app.graph.calls_to("POST", &format!("/v25.0/{page}/subscribed_apps"))
}

fn app_gets(app: &TestApp) -> usize {
    app.graph.calls_to("GET", &format!("/v25.0/{APP_ID}/subscriptions")).len()
}

fn row<'a>(body: &'a Value, page: &str) -> &'a Value {
    body["pages"].as_array().into_iter().flatten().find(|r| r["id"] == page).unwrap_or_else(|| panic!("{body}"))
}

async fn app_state(app: &TestApp) -> Option<SubscriptionState> {
    app.actors.subscriptions.send(GetSubscription { page: None }).await.unwrap()
}

/// Waits until the app-level subscription is recorded as made.
async fn wait_app_subscribed(app: &TestApp) {
    let done =
        eventually(Duration::from_secs(10), || async { app_state(app).await.is_some_and(|s| s.subscribed) }).await;
    assert!(
        done,
        "the app-level subscription never settled: {:?}; calls: {:#?}",
        app_state(app).await,
        app.graph.calls()
    );
}

/// `pagesync pages --json`, as the control socket and the CLI build it.
async fn pages_json(app: &TestApp) -> Value {
    serde_json::to_value(pagesync::control::list_pages(&app.actors).await.unwrap()).unwrap()
}

/// Waits until every `pages --json` row says `subscription: conflict`.
async fn wait_conflict(app: &TestApp) -> Value {
    let found = eventually(Duration::from_secs(10), || async {
        let rows = pages_json(app).await;
        rows.as_array().is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["subscription"] == "conflict"))
    })
    .await;
    let rows = pages_json(app).await;
    assert!(found, "no conflict reported: {rows}; calls: {:#?}", app.graph.calls());
    rows
}

async fn scrape(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

async fn dashboard(app: &TestApp, cookie: &str) -> String {
    app.get_with("/", Some(cookie), &[("Accept", "text/html")]).await.text().await.unwrap()
}

// ----- Page level -----------------------------------------------------------------

#[actix_web::test]
async fn bot_fields_already_on_a_page_survive_a_connect() {
    let app = spawn_app().await;
    let install = app.install_shop(&crate::helpers::unique_shop()).await;
    let user = app.graph.register_user(&[("7101", "Bot's Page")]);
    app.graph.preinstall("7101", &["messages", "messaging_postbacks"]);
    let connected = app.connect_facebook(&install.cookie, &user).await;
    assert_eq!(row(&connected.body, "7101")["subscribed"], true);

    let posts = page_posts(&app, "7101");
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let posted = field_list(posts[0].param("subscribed_fields").unwrap_or(""));
    assert_eq!(posted, strings(&["messages", "messaging_postbacks", "name", "category"]), "F first, then W");
    // Meta replaces the set with what was posted: the bot's fields are still there.
    assert_eq!(app.graph.installed_fields("7101"), Some(posted));
}

#[actix_web::test]
async fn a_page_that_already_has_every_wanted_field_gets_no_post() {
    let app = spawn_app_with(bot_fields()).await;
    let install = app.install_shop(&crate::helpers::unique_shop()).await;
    let user = app.graph.register_user(&[("7111", "Complete"), ("7112", "Missing the bot's")]);
    app.graph.preinstall("7111", &["feed", "messaging_postbacks", "category", "messages", "name"]);
    app.graph.preinstall("7112", &["name", "category"]);
    let connected = app.connect_facebook(&install.cookie, &user).await;
    assert_eq!(row(&connected.body, "7111")["subscribed"], true);
    assert_eq!(row(&connected.body, "7112")["subscribed"], true);
    assert!(page_posts(&app, "7111").is_empty(), "posted although W ⊆ F");
    assert_eq!(
        app.graph.installed_fields("7111"),
        Some(strings(&["feed", "messaging_postbacks", "category", "messages", "name"]))
    );
    assert_eq!(
        app.graph.installed_fields("7112"),
        Some(strings(&["name", "category", "messages", "messaging_postbacks"]))
    );
}

#[actix_web::test]
async fn page_fields_are_read_as_name_objects_too() {
    let app = spawn_app_with(bot_fields()).await;
    app.graph.set_page_field_form(FieldForm::Objects);
    let install = app.install_shop(&crate::helpers::unique_shop()).await;
    let user = app.graph.register_user(&[("7121", "Objects, complete"), ("7122", "Objects, partial")]);
    app.graph.preinstall("7121", &["name", "category", "messages", "messaging_postbacks"]);
    app.graph.preinstall("7122", &["feed", "messages"]);
    let connected = app.connect_facebook(&install.cookie, &user).await;
    assert_eq!(row(&connected.body, "7121")["subscribed"], true);
    assert_eq!(row(&connected.body, "7122")["subscribed"], true);
    assert!(page_posts(&app, "7121").is_empty(), "object form not understood: {:#?}", page_posts(&app, "7121"));
    assert_eq!(
        app.graph.installed_fields("7122"),
        Some(strings(&["feed", "messages", "name", "category", "messaging_postbacks"]))
    );
}

#[actix_web::test]
async fn a_malformed_subscribed_apps_answer_posts_nothing() {
    let app = spawn_app().await;
    let install = app.install_shop(&crate::helpers::unique_shop()).await;
    let user = app.graph.register_user(&[("7131", "Odd answer")]);
    app.graph.preinstall("7131", &["messages"]);
    // Our app is listed, but its fields are neither strings nor `{name}` objects.
    app.graph.set_endpoint_sticky(
        Endpoint::SubscribedAppsGet("7131".into()),
        Some(Fault::Status(200, json!({"data": [{"id": APP_ID, "subscribed_fields": [{"nom": "messages"}, 7]}]}))),
    );
    let connected = app.connect_facebook(&install.cookie, &user).await;
    assert_eq!(row(&connected.body, "7131")["subscribed"], false, "{}", connected.text);
    assert!(page_posts(&app, "7131").is_empty(), "a malformed answer was taken for 'no fields'");
    assert_eq!(app.graph.installed_fields("7131"), Some(strings(&["messages"])));
}

// ----- App level --------------------------------------------------------------------

#[actix_web::test]
async fn the_app_subscription_with_our_callback_and_every_field_gets_no_post() {
    let app = spawn_app_with(bot_fields()).await;
    let ours = app.var("FACEBOOK_WEBHOOK_ADDRESS").to_owned();
    app.graph.preset_app_subscription(&ours, &["messaging_postbacks", "name", "messages", "category", "feed"]);
    app.merchant(&[("7201", "One")]).await;
    wait_app_subscribed(&app).await;
    assert_eq!(app_gets(&app), 1, "the app subscription was read first");
    assert!(app.graph.app_subscription_attempts().is_empty(), "{:#?}", app.graph.app_subscription_attempts());
}

#[actix_web::test]
async fn app_fields_are_read_as_strings_too() {
    let app = spawn_app().await;
    app.graph.set_app_field_form(FieldForm::Strings);
    let ours = app.var("FACEBOOK_WEBHOOK_ADDRESS").to_owned();
    app.graph.preset_app_subscription(&ours, &["category", "name"]);
    app.merchant(&[("7211", "One")]).await;
    wait_app_subscribed(&app).await;
    assert!(app.graph.app_subscription_attempts().is_empty(), "{:#?}", app.graph.app_subscription_attempts());
}

#[actix_web::test]
async fn the_app_subscription_with_our_callback_and_missing_fields_posts_the_union() {
    let app = spawn_app_with(with_env(&[("PAGESYNC_BOT_FIELDS", "messages")])).await;
    let ours = app.var("FACEBOOK_WEBHOOK_ADDRESS").to_owned();
    app.graph.preset_app_subscription(&ours, &["feed", "name"]);
    app.merchant(&[("7221", "One")]).await;
    wait_app_subscribed(&app).await;
    let attempts = app.graph.app_subscription_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let params = &attempts[0].params;
    assert_eq!(field_list(&params["fields"]), strings(&["feed", "name", "category", "messages"]));
    assert_eq!(params["callback_url"], ours);
    assert_eq!(params["object"], "page");
    assert_eq!(params["include_values"], "true");
    assert!(attempts[0].verified, "{:?}", attempts[0].answer);
}

#[actix_web::test]
async fn another_callback_without_a_forward_url_is_a_conflict_and_posts_nothing() {
    let app = spawn_app().await;
    app.graph.preset_app_subscription(BOT_CALLBACK, &["messages", "messaging_postbacks"]);
    let (install, user, connected) = app.merchant(&[("7231", "Shared app")]).await;
    assert_eq!(row(&connected.body, "7231")["subscribed"], true, "the Page level is unaffected");

    let rows = wait_conflict(&app).await;
    assert_eq!(rows[0]["subscribed"], true, "the Page-level bool stays exact: {rows}");
    assert!(app.graph.app_subscription_attempts().is_empty(), "took the bot's callback over");
    assert_eq!(app.graph.app_subscription().unwrap().callback_url, BOT_CALLBACK);
    let state = app_state(&app).await.unwrap();
    assert!(!state.subscribed, "{state:?}");

    // The dashboard names the other URL and the way out.
    let body = dashboard(&app, &connected.cookie).await;
    assert!(body.contains("id=\"subscription-conflict\""), "{body}");
    assert!(body.contains(BOT_CALLBACK), "{body}");
    assert!(body.contains("PAGESYNC_FORWARD_URL"), "{body}");
    let page_row = &body[body.find("<tr data-page-id=\"7231\">").unwrap()..];
    assert!(page_row.contains("<td class=\"subscribed\">conflict</td>"), "{page_row}");

    // /metrics, from a fixed label set.
    let text = scrape(&app).await;
    assert!(text.contains("pagesync_app_subscription{state=\"conflict\"} 1\n"), "{text}");
    assert!(text.contains("pagesync_app_subscription{state=\"subscribed\"} 0\n"), "{text}");

    // Not retried in a loop; checked again on the next connect, still without a POST.
    assert_eq!(app_gets(&app), 1);
    app.connect_facebook(&connected.cookie, &user).await;
    let graph = app.graph.clone();
    let rechecked = eventually(Duration::from_secs(10), || {
        let graph = graph.clone();
        async move { graph.calls_to("GET", &format!("/v25.0/{APP_ID}/subscriptions")).len() >= 2 }
    })
    .await;
    assert!(rechecked, "a connect did not check the app subscription again");
    wait_conflict(&app).await;
    assert_eq!(app_gets(&app), 2);
    assert!(app.graph.app_subscription_attempts().is_empty());
    let _ = install;
}

#[actix_web::test]
async fn another_callback_with_a_forward_url_is_taken_over_with_the_union_of_fields() {
    let app = spawn_app_with(with_env(&[
        ("PAGESYNC_BOT_FIELDS", "messages,messaging_postbacks"),
        ("PAGESYNC_FORWARD_URL", BOT_CALLBACK),
    ]))
    .await;
    app.graph.preset_app_subscription(BOT_CALLBACK, &["messages", "message_reads", "messaging_postbacks"]);
    app.merchant(&[("7241", "Taken over")]).await;
    wait_app_subscribed(&app).await;
    let attempts = app.graph.app_subscription_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let ours = app.var("FACEBOOK_WEBHOOK_ADDRESS");
    assert_eq!(attempts[0].params["callback_url"], ours);
    assert_eq!(
        field_list(&attempts[0].params["fields"]),
        strings(&["messages", "message_reads", "messaging_postbacks", "name", "category"])
    );
    assert!(attempts[0].verified, "{:?}", attempts[0].answer);
    assert_eq!(app.graph.app_subscription().unwrap().callback_url, ours);
    let rows = pages_json(&app).await;
    assert_eq!(rows[0]["subscription"], "subscribed", "{rows}");
    let text = scrape(&app).await;
    assert!(text.contains("pagesync_app_subscription{state=\"subscribed\"} 1\n"), "{text}");
    assert!(text.contains("pagesync_app_subscription{state=\"conflict\"} 0\n"), "{text}");
}

#[actix_web::test]
async fn a_conflict_is_resolved_by_a_restart_with_a_forward_url() {
    let app = spawn_app().await;
    app.graph.preset_app_subscription(BOT_CALLBACK, &["messages"]);
    app.merchant(&[("7251", "Shared app")]).await;
    wait_conflict(&app).await;
    let (dir, key, graph) = app.stop().await;

    let app = start_app(dir, key, graph, with_env(&[("PAGESYNC_FORWARD_URL", BOT_CALLBACK)])).await;
    // No connect needed: the configuration changed, so the daemon checks at start.
    wait_app_subscribed(&app).await;
    let attempts = app.graph.app_subscription_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].params["callback_url"], app.var("FACEBOOK_WEBHOOK_ADDRESS"));
    assert_eq!(field_list(&attempts[0].params["fields"]), strings(&["messages", "name", "category"]));
    assert_eq!(pages_json(&app).await[0]["subscription"], "subscribed");
}

#[actix_web::test]
async fn pagesyncs_own_earlier_callback_is_updated_not_a_conflict() {
    // A restart on another port changes FACEBOOK_WEBHOOK_ADDRESS; the callback Meta
    // holds is the one pagesync itself registered, so it is moved without a conflict.
    let app = spawn_app().await;
    app.merchant(&[("7261", "Moving")]).await;
    wait_app_subscribed(&app).await;
    let (dir, key, graph) = app.stop().await;
    let app = start_app(dir, key, graph, Options::default()).await;
    let graph = app.graph.clone();
    let moved = eventually(Duration::from_secs(10), || {
        let graph = graph.clone();
        async move { graph.app_subscription_attempts().len() == 2 }
    })
    .await;
    assert!(moved, "{:#?}", app.graph.app_subscription_attempts());
    wait_app_subscribed(&app).await;
    assert_eq!(app.graph.app_subscription().unwrap().callback_url, app.var("FACEBOOK_WEBHOOK_ADDRESS"));
}

#[actix_web::test]
async fn bot_fields_are_subscribed_at_both_levels() {
    let app = spawn_app_with(bot_fields()).await;
    app.merchant(&[("7271", "Fresh")]).await;
    wait_app_subscribed(&app).await;
    let wanted = strings(&["name", "category", "messages", "messaging_postbacks"]);
    let attempts = app.graph.app_subscription_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(field_list(&attempts[0].params["fields"]), wanted);
    assert_eq!(app.graph.app_subscription().unwrap().fields, wanted);
    assert_eq!(app.graph.installed_fields("7271"), Some(wanted));
}

#[actix_web::test]
async fn a_malformed_app_subscriptions_answer_posts_nothing() {
    let app = spawn_app().await;
    app.graph.set_endpoint_sticky(
        Endpoint::AppSubscriptionsGet,
        Some(Fault::Status(200, json!({"data": [{"object": "page", "callback_url": BOT_CALLBACK, "fields": "x"}]}))),
    );
    app.merchant(&[("7281", "Odd")]).await;
    let graph = app.graph.clone();
    let read = eventually(Duration::from_secs(10), || {
        let graph = graph.clone();
        async move { graph.calls_to("GET", &format!("/v25.0/{APP_ID}/subscriptions")).len() >= 2 }
    })
    .await;
    assert!(read, "the failed read was not retried");
    assert!(app.graph.app_subscription_attempts().is_empty(), "posted on a malformed answer");
    let state = app_state(&app).await.unwrap();
    assert!(!state.subscribed && state.last_error.is_some(), "{state:?}");
    assert_eq!(pages_json(&app).await[0]["subscription"], "pending", "a failure is not a conflict");
}
