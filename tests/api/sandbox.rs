//! `pagesync sandbox` (docs/contract.md §6): the daemon against the built-in emulator and demo
//! bot, driven over HTTP the way a browser would (forms submitted by hand, redirects
//! followed by hand, the `session_id` cookie carried by hand), plus the command itself
//! as a process.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use pagesync::emulator::DEMO_CUSTOMER_PSID;
use pagesync::sandbox::{Sandbox, SandboxOptions};
use pagesync::verify::{appsecret_proof, sign_sha256};
use pagesync_actors::Secret;
use reqwest::Url;
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pagesync");
const HTML: &str = "text/html,application/xhtml+xml";
const MAPLE: &str = "100000000000001";
const HARBOR: &str = "100000000000002";
const JUNIPER: &str = "100000000000003";
const NAMES: [(&str, &str); 3] =
    [(MAPLE, "Maple & Oak Candle Co."), (HARBOR, "Harbor Coffee Roasters"), (JUNIPER, "Juniper Bike Works")];
const DEADLINE: Duration = Duration::from_secs(15);
/// What the daemon subscribes: its own `FACEBOOK_SUBSCRIBED_FIELDS`, then the
/// sandbox's `PAGESYNC_BOT_FIELDS`.
const SUBSCRIBED: [&str; 4] = ["name", "category", "messages", "messaging_postbacks"];

// ----- fixture -----------------------------------------------------------------------

/// A sandbox on a free port with its data dir in a fresh temporary folder.
async fn start() -> (Sandbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start_on(&dir.path().join("data")).await;
    (sandbox, dir)
}

async fn start_on(data_dir: &Path) -> Sandbox {
    let options = SandboxOptions {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_owned()),
        ..SandboxOptions::default()
    };
    Sandbox::start(options).await.unwrap_or_else(|e| panic!("sandbox did not start: {e:#}"))
}

/// A client that follows nothing by itself and stores no cookies.
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The generated `.env`, by name.
fn generated_config(sandbox: &Sandbox) -> HashMap<String, String> {
    let text = std::fs::read_to_string(sandbox.config_file()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// `Location`, resolved against the URL that answered.
fn location(resp: &reqwest::Response) -> Url {
    let raw = resp.headers().get(LOCATION).expect("a Location header").to_str().unwrap();
    resp.url().join(raw).unwrap()
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.trim().strip_prefix("session_id=").map(str::to_owned))
}

/// Asserts that the emulator set no cookie (it shares 127.0.0.1 with the daemon).
fn assert_no_cookie(resp: &reqwest::Response) {
    assert!(resp.headers().get(SET_COOKIE).is_none(), "{} set a cookie", resp.url());
}

async fn get_html(client: &reqwest::Client, url: &Url) -> String {
    let resp = client.get(url.clone()).header(ACCEPT, HTML).send().await.unwrap();
    assert_no_cookie(&resp);
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// The value of attribute `name` in a tag's text.
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// An HTML form: where it posts and its inputs, as a browser would submit them.
struct Form {
    action: String,
    fields: Vec<(String, String)>,
    /// Each submit button's id -> its (name, value), when it has one.
    buttons: HashMap<String, Option<(String, String)>>,
}

impl Form {
    fn parse(html: &str, id: &str) -> Form {
        let start = html.find(&format!("<form id=\"{id}\"")).unwrap_or_else(|| panic!("no form #{id} in:\n{html}"));
        let end = html[start..].find("</form>").unwrap() + start;
        let inner = &html[start..end];
        let action = attr(&inner[..inner.find('>').unwrap()], "action").expect("form action");
        let tags = |name: &str| -> Vec<&str> {
            inner.split(&format!("<{name}")).skip(1).map(|piece| &piece[..piece.find('>').unwrap()]).collect()
        };
        let fields = tags("input")
            .into_iter()
            .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))
            .collect();
        let buttons = tags("button")
            .into_iter()
            .filter_map(|tag| Some((attr(tag, "id")?, attr(tag, "name").zip(attr(tag, "value")))))
            .collect();
        Form { action, fields, buttons }
    }

    fn set(&mut self, name: &str, value: &str) {
        let field = self.fields.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no input {name}"));
        field.1 = value.to_owned();
    }

    /// Submits as if the button `button` (or a plain submit, with `None`) was clicked.
    async fn submit(&self, client: &reqwest::Client, page: &Url, button: Option<&str>) -> reqwest::Response {
        let mut fields = self.fields.clone();
        if let Some(id) = button {
            let pressed = self.buttons.get(id).unwrap_or_else(|| panic!("no button #{id}"));
            fields.extend(pressed.clone());
        }
        let resp = client.post(page.join(&self.action).unwrap()).header(ACCEPT, HTML).form(&fields).send().await;
        let resp = resp.unwrap();
        assert_no_cookie(&resp);
        resp
    }
}

// ----- the merchant's steps ----------------------------------------------------------

/// Shopify install through the emulator's authorize page; returns the session cookie.
async fn install(sandbox: &Sandbox, client: &reqwest::Client) -> String {
    let resp = client.get(sandbox.open_url()).header(ACCEPT, HTML).send().await.unwrap();
    assert_eq!(resp.status(), 302, "/shopify/login");
    // The cookie that binds the install to this browser; a browser sends it back to
    // the callback (Path=/shopify), so carry it by hand like `session_id`.
    let state_cookie = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.trim().strip_prefix("shopify_state=").map(str::to_owned))
        .expect("a shopify_state cookie with the 302");
    let authorize = location(&resp);
    let expected = format!("{}/shopify/demo-shop.myshopify.com/admin/oauth/authorize", sandbox.emulator_url());
    assert_eq!(format!("{}{}", authorize.origin().ascii_serialization(), authorize.path()), expected);

    let page = get_html(client, &authorize).await;
    assert!(page.contains("Install pagesync on demo-shop.myshopify.com?"), "{page}");
    let form = Form::parse(&page, "authorize");
    assert!(form.buttons.contains_key("decline"), "{page}");
    let resp = form.submit(client, &authorize, Some("approve")).await;
    assert!(matches!(resp.status().as_u16(), 302 | 303), "approve answered {}", resp.status());
    let callback = location(&resp);
    assert!(callback.as_str().starts_with(&format!("{}/shopify/callback?", sandbox.daemon_url())), "{callback}");
    let params = query(&callback);
    for key in ["code", "shop", "state", "timestamp", "hmac"] {
        assert!(params.contains_key(key), "{key} missing from {callback}");
    }

    let resp = client
        .get(callback)
        .header(ACCEPT, HTML)
        .header(COOKIE, format!("shopify_state={state_cookie}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let cookie = session_cookie(&resp);
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"connect-facebook\""), "{body}");
    cookie.expect("a session_id cookie")
}

/// `/facebook/login` to the emulator's dialog; returns its URL and HTML.
async fn open_dialog(sandbox: &Sandbox, client: &reqwest::Client, cookie: &str) -> (Url, String) {
    let resp = client
        .get(format!("{}/facebook/login", sandbox.daemon_url()))
        .header(COOKIE, format!("session_id={cookie}"))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "/facebook/login");
    let dialog = location(&resp);
    assert!(dialog.as_str().starts_with(&format!("{}/v25.0/dialog/oauth?", sandbox.emulator_url())), "{dialog}");
    let page = get_html(client, &dialog).await;
    assert!(page.contains("pagesync wants to manage your Pages"), "{page}");
    for (_, name) in NAMES {
        assert!(page.contains(&name.replace('&', "&amp;")), "{name} missing from the dialog");
    }
    (dialog, page)
}

/// Install, then allow in the dialog; returns the rotated cookie and the callback's JSON.
async fn connect(sandbox: &Sandbox, client: &reqwest::Client) -> (String, Value) {
    let cookie = install(sandbox, client).await;
    let (dialog, page) = open_dialog(sandbox, client, &cookie).await;
    let resp = Form::parse(&page, "dialog").submit(client, &dialog, Some("allow")).await;
    assert!(matches!(resp.status().as_u16(), 302 | 303), "allow answered {}", resp.status());
    let callback = location(&resp);
    assert!(callback.as_str().starts_with(&format!("{}/facebook/callback?", sandbox.daemon_url())), "{callback}");
    assert!(query(&callback).contains_key("code"), "{callback}");

    let resp = client
        .get(callback)
        .header(COOKIE, format!("session_id={cookie}"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let rotated = session_cookie(&resp);
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    (rotated.expect("a rotated session_id"), serde_json::from_str(&text).unwrap())
}

fn page_file(sandbox: &Sandbox, page: &str) -> PathBuf {
    sandbox.data_dir().join("facebook").join(page).join("page_data.json")
}

fn read_page(sandbox: &Sandbox, page: &str) -> Option<Value> {
    std::fs::read(page_file(sandbox, page)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Polls `check` every 20 ms until it holds or the deadline passes.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- the whole flow ----------------------------------------------------------------

#[actix_web::test]
async fn a_merchant_connects_every_demo_page_and_an_emulator_edit_reaches_page_data_json() {
    let (sandbox, _dir) = start().await;
    let client = client();
    let (_cookie, connected) = connect(&sandbox, &client).await;

    let pages = connected["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3, "{connected}");
    for (id, name) in NAMES {
        let row = pages.iter().find(|p| p["id"] == id).unwrap_or_else(|| panic!("{id} missing: {connected}"));
        assert_eq!(row["name"], name);
        assert_eq!(row["subscribed"], true, "{row}");
        assert_eq!(row["synced"], true, "{row}");
        let data = read_page(&sandbox, id).unwrap_or_else(|| panic!("no page_data.json for {id}"));
        assert_eq!(data["name"], name);
        assert_eq!(data["id"], id);
        assert!(!data.to_string().contains("access_token"), "{data}");
        assert_eq!(sandbox.emulator().installed_fields(id), Some(SUBSCRIBED.map(str::to_owned).to_vec()));
    }
    wait_for("the app subscription", || sandbox.emulator().app_subscription().is_some()).await;

    // The merchant renames a Page "on Facebook".
    let editor = Url::parse(&sandbox.editor_url()).unwrap();
    let page = get_html(&client, &editor).await;
    for id in [MAPLE, HARBOR, JUNIPER] {
        for element in [format!("id=\"name-{id}\""), format!("id=\"category-{id}\""), format!("id=\"save-{id}\"")] {
            assert!(page.contains(&element), "{element} missing from the editor");
        }
    }
    let new_name = "Harbor Café & Tea / Bakery";
    let mut form = Form::parse(&page, &format!("edit-{HARBOR}"));
    form.set("name", new_name);
    let resp = form.submit(&client, &editor, Some(&format!("save-{HARBOR}"))).await;
    assert_eq!(resp.status(), 303);
    let back = location(&resp);
    assert_eq!(back.path(), "/emulator");
    let page = get_html(&client, &back).await;
    let notice = &page[page.find("id=\"notice\"").expect("a notice")..];
    assert!(notice.contains("Delivered to pagesync: 200"), "{notice}");

    // Meta's wire form, signed over exactly those bytes: the daemon took it.
    let activity = sandbox.emulator().activity();
    let delivery = activity.last().and_then(|a| a.delivery.clone()).expect("a delivery");
    assert_eq!(delivery.callback_url, format!("{}/facebook/webhook", sandbox.daemon_url()));
    assert!(delivery.body.contains(r"Harbor Caf\u00e9 & Tea \/ Bakery"), "{}", delivery.body);
    assert!(matches!(&delivery.answer, Ok((200, body)) if body.contains("success")), "{:?}", delivery.answer);

    wait_for("the new name in page_data.json", || read_page(&sandbox, HARBOR).is_some_and(|d| d["name"] == new_name))
        .await;
    assert_eq!(read_page(&sandbox, MAPLE).unwrap()["name"], NAMES[0].1);
    assert_eq!(read_page(&sandbox, JUNIPER).unwrap()["name"], NAMES[2].1);

    sandbox.stop().await.unwrap();
}

#[actix_web::test]
async fn cancelling_the_facebook_dialog_gets_400_saying_it_was_cancelled() {
    let (sandbox, _dir) = start().await;
    let client = client();
    let cookie = install(&sandbox, &client).await;
    let (dialog, page) = open_dialog(&sandbox, &client, &cookie).await;
    let resp = Form::parse(&page, "dialog").submit(&client, &dialog, Some("cancel")).await;
    assert!(matches!(resp.status().as_u16(), 302 | 303));
    let callback = location(&resp);
    let params = query(&callback);
    assert_eq!(params.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(params.get("error_reason").map(String::as_str), Some("user_denied"));
    assert_eq!(params.get("error_code").map(String::as_str), Some("200"));
    assert_eq!(params.get("error_description").map(String::as_str), Some("Permissions error"));
    assert!(params.contains_key("state") && !params.contains_key("code"), "{callback}");

    for accept in [HTML, "application/json"] {
        let resp = client
            .get(callback.clone())
            .header(COOKIE, format!("session_id={cookie}"))
            .header(ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body = resp.text().await.unwrap();
        assert!(body.to_lowercase().contains("cancelled"), "{body}");
        if accept == HTML {
            assert!(body.contains("id=\"error\"") && !body.contains("id=\"pages\""), "{body}");
        }
    }
    for (id, _) in NAMES {
        assert!(!page_file(&sandbox, id).exists(), "{id} was written");
    }
    sandbox.stop().await.unwrap();
}

#[actix_web::test]
async fn the_app_subscription_was_verified_by_a_get_against_the_daemon() {
    let (sandbox, _dir) = start().await;
    let client = client();
    connect(&sandbox, &client).await;
    wait_for("the app subscription", || sandbox.emulator().app_subscription().is_some()).await;

    let webhook = format!("{}/facebook/webhook", sandbox.daemon_url());
    let attempts = sandbox.emulator().app_subscription_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    let attempt = &attempts[0];
    assert!(attempt.verified, "{attempt:?}");
    assert_eq!(attempt.callback_url, webhook);
    let Ok((200, challenge)) = &attempt.answer else { panic!("{:?}", attempt.answer) };
    assert!(!challenge.is_empty() && challenge.bytes().all(|b| b.is_ascii_digit()), "{challenge:?}");
    let subscription = sandbox.emulator().app_subscription().unwrap();
    assert_eq!(subscription.fields, SUBSCRIBED);
    assert!(subscription.include_values);

    // Graph's own view of it, with the app token.
    let config = generated_config(&sandbox);
    let app = &config["FACEBOOK_APP_ID"];
    let app_token = format!("{app}|{}", config["FACEBOOK_APP_SECRET"]);
    let url = format!("{}/v25.0/{app}/subscriptions", sandbox.emulator_url());
    let listed: Value =
        client.get(&url).query(&[("access_token", &app_token)]).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0]["callback_url"], webhook.as_str(), "{listed}");
    assert_eq!(listed["data"][0]["object"], "page");
    let refused = client.get(&url).query(&[("access_token", &format!("{app}|wrong"))]).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], 190);
    sandbox.stop().await.unwrap();
}

#[actix_web::test]
async fn the_printed_webhook_send_command_delivers_to_the_sandbox() {
    let (sandbox, _dir) = start().await;
    let command = sandbox.webhook_send_command(BIN);
    assert!(sandbox.banner(BIN).lines().any(|l| l == format!("webhook send: {command}")), "{}", sandbox.banner(BIN));
    // Nothing from the caller's environment: the generated .env alone must do.
    let out = actix_web::rt::task::spawn_blocking(move || {
        Command::new("/bin/sh").arg("-c").arg(&command).env_clear().output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("HTTP 200") && stdout.contains(r#"{"status":"success"}"#), "{stdout}");
    sandbox.stop().await.unwrap();
}

#[actix_web::test]
async fn the_generated_config_lives_beside_the_data_dir_and_no_secret_lands_inside_it() {
    let (sandbox, _dir) = start().await;
    let client = client();
    connect(&sandbox, &client).await;
    wait_for("the app subscription", || sandbox.emulator().app_subscription().is_some()).await;

    let config_file = sandbox.config_file().to_owned();
    assert!(!config_file.starts_with(sandbox.data_dir()), "{} is inside the data dir", config_file.display());
    assert_eq!(config_file.parent().unwrap().parent(), sandbox.data_dir().parent());
    assert_eq!(std::fs::metadata(&config_file).unwrap().permissions().mode() & 0o777, 0o600);

    let config = generated_config(&sandbox);
    let bot = sandbox.bot_url();
    assert_eq!(config["PAGESYNC_FORWARD_URL"], format!("{bot}webhook"));
    assert_eq!(config["PAGESYNC_EVENTS_URL"], format!("{bot}events"));
    assert_eq!(config["PAGESYNC_BOT_FIELDS"], "messages,messaging_postbacks");
    let events_secret = &config["PAGESYNC_EVENTS_SECRET"];
    let key = events_secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(key).unwrap().len(), 32);
    let mut secrets: Vec<String> = [
        "FACEBOOK_APP_SECRET",
        "FACEBOOK_VERIFY_TOKEN",
        "SHOPIFY_API_SECRET",
        "STATE_TOKEN_SECRET",
        "PAGESYNC_ENCRYPTION_KEY",
        "PAGESYNC_EVENTS_SECRET",
    ]
    .iter()
    .map(|k| config.get(*k).unwrap_or_else(|| panic!("{k} missing from the config")).clone())
    .collect();
    // What the terminal shows names the .env and the bot, and holds no secret.
    let banner = sandbox.banner(BIN);
    assert!(banner.lines().any(|l| l == format!("bot: {bot}")), "{banner}");
    for secret in &secrets {
        assert!(!banner.contains(secret.as_str()), "the banner prints a secret:\n{banner}");
    }
    secrets.push(key.to_owned());
    secrets.extend(sandbox.emulator().issued_secrets());
    assert!(secrets.len() > 8, "{secrets:?}");
    sandbox.stop().await.unwrap();

    let mut files = Vec::new();
    let mut dirs = vec![sandbox_data_dir(&config)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("page_data.json")), "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for secret in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds a secret in plain text", file.display());
        }
    }
}

fn sandbox_data_dir(config: &HashMap<String, String>) -> PathBuf {
    PathBuf::from(&config["PAGESYNC_DATA_DIR"])
}

#[actix_web::test]
async fn the_editor_refuses_bad_input_with_400_and_changes_nothing() {
    let (sandbox, _dir) = start().await;
    let client = client();
    let post = |page: &str, form: Vec<(&'static str, String)>| {
        client.post(format!("{}/emulator/pages/{page}", sandbox.emulator_url())).form(&form).send()
    };
    let category = || ("category", "Home Decor".to_owned());
    for (form, why) in [
        (vec![("name", String::new()), category()], "empty"),
        (vec![("name", "   ".to_owned()), category()], "blank"),
        (vec![("name", "x".repeat(101)), category()], "101 characters"),
        (vec![("name", "Tab\tName".to_owned()), category()], "a control character"),
        (vec![category()], "no name"),
        (vec![("name", "Fine".to_owned())], "no category"),
    ] {
        let resp = post(MAPLE, form).await.unwrap();
        assert_eq!(resp.status(), 400, "a name with {why}");
        assert!(resp.text().await.unwrap().contains("id=\"error\""));
    }
    let resp = post("999", vec![("name", "Fine".to_owned()), category()]).await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client
        .post(format!("{}/emulator/pages/{MAPLE}", sandbox.emulator_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'%', b'=', b'&'])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "garbage bytes");
    assert_eq!(sandbox.emulator().page(MAPLE).unwrap()["name"], NAMES[0].1);
    assert!(sandbox.emulator().activity().is_empty());

    // A good edit of a Page pagesync is not installed on: saved, nothing delivered.
    let resp = post(MAPLE, vec![("name", "x".repeat(100)), category()]).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(sandbox.emulator().page(MAPLE).unwrap()["name"], "x".repeat(100));
    let activity = sandbox.emulator().activity();
    assert!(activity[0].delivery.is_none() && activity[0].summary.contains("not installed"), "{activity:?}");
    sandbox.stop().await.unwrap();
}

// ----- the bot's side: the demo bot ---------------------------------------------------

/// The rows of the table `id` on the demo bot's page (header row left out).
fn table_rows(html: &str, id: &str) -> Vec<String> {
    let start = html.find(&format!("<table id=\"{id}\">")).unwrap_or_else(|| panic!("no table #{id} in:\n{html}"));
    let end = html[start..].find("</table>").unwrap() + start;
    html[start..end].split("<tr").skip(2).map(str::to_owned).collect()
}

/// Fetches the demo bot's page until `check` accepts it; returns that page.
async fn bot_page_until(
    client: &reqwest::Client,
    sandbox: &Sandbox,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let url = Url::parse(&sandbox.bot_url()).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let page = get_html(client, &url).await;
        if check(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what} on the bot page:\n{page}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_verified(row: &str) -> bool {
    row.contains(">verified</td>") && !row.contains("NOT verified")
}

#[actix_web::test]
async fn a_customer_message_and_a_rename_reach_the_demo_bot_verified() {
    let (sandbox, _dir) = start().await;
    let client = client();
    connect(&sandbox, &client).await;
    wait_for("the app subscription", || sandbox.emulator().app_subscription().is_some()).await;

    // The customer writes to Harbor; the emulator delivers it to pagesync as Meta would.
    let editor = Url::parse(&sandbox.editor_url()).unwrap();
    let page = get_html(&client, &editor).await;
    assert!(page.contains(&format!("id=\"bot\" href=\"{}\"", sandbox.bot_url())), "no link to the bot:\n{page}");
    let text = "Do you ship <beans> & \"filters\" to Montréal?";
    let mut form = Form::parse(&page, &format!("message-form-{HARBOR}"));
    assert!(page.contains(&format!("id=\"message-text-{HARBOR}\"")), "{page}");
    form.set("text", text);
    let resp = form.submit(&client, &editor, Some(&format!("send-message-{HARBOR}"))).await;
    assert_eq!(resp.status(), 303);
    let page = get_html(&client, &location(&resp)).await;
    let notice = &page[page.find("id=\"notice\"").expect("a notice")..];
    assert!(notice.contains("Delivered to pagesync: 200"), "{notice}");
    let activity = sandbox.emulator().activity();
    let last = activity.last().unwrap();
    assert_eq!((last.page.as_str(), last.changed.as_slice()), (HARBOR, &["messages".to_owned()][..]));
    let delivery = last.delivery.clone().expect("a delivery");
    assert_eq!(delivery.callback_url, format!("{}/facebook/webhook", sandbox.daemon_url()));
    assert!(
        delivery.body.contains(r#""text":"Do you ship <beans> & \"filters\" to Montr\u00e9al?""#),
        "{}",
        delivery.body
    );

    // pagesync relays it: the bot checked Meta's signature on the same bytes.
    let escaped = "Do you ship &lt;beans&gt; &amp; &quot;filters&quot; to Montréal?";
    let page = bot_page_until(&client, &sandbox, "the relayed message", |p| {
        table_rows(p, "forwarded").iter().any(|r| r.contains(escaped))
    })
    .await;
    let rows = table_rows(&page, "forwarded");
    let row = rows.iter().find(|r| r.contains(escaped)).unwrap();
    assert!(is_verified(row), "{row}");
    assert!(row.contains(HARBOR) && row.contains(DEMO_CUSTOMER_PSID), "{row}");
    let relayed = sandbox.bot().forwarded();
    let seen = relayed.iter().find(|d| d.text.as_deref() == Some(text)).expect("the message, recorded");
    assert!(seen.verified && seen.mid.as_deref().is_some_and(|m| m.starts_with("m_")), "{seen:?}");
    assert!(seen.delivery.as_deref().is_some_and(|d| !d.is_empty()), "{seen:?}");
    assert_eq!(seen.attempt.as_deref(), Some("1"));
    assert!(row.contains(seen.mid.as_deref().unwrap()) && row.contains(seen.delivery.as_deref().unwrap()), "{row}");

    // Connecting sent page.connected for each Page; a rename sends page.updated.
    let page = get_html(&client, &editor).await;
    let mut form = Form::parse(&page, &format!("edit-{MAPLE}"));
    form.set("name", "Maple & Oak Candles");
    let resp = form.submit(&client, &editor, Some(&format!("save-{MAPLE}"))).await;
    assert_eq!(resp.status(), 303);
    // Events and forwards travel in lanes of their own: wait for all of them.
    let page = bot_page_until(&client, &sandbox, "page.updated, three page.connected and the relayed rename", |p| {
        let events = table_rows(p, "events");
        events.iter().any(|r| r.contains("page.updated") && r.contains(MAPLE))
            && events.iter().filter(|r| r.contains("page.connected")).count() == 3
            && table_rows(p, "forwarded").iter().any(|r| r.contains("Page change: name"))
    })
    .await;
    let events = table_rows(&page, "events");
    let updated = events.iter().find(|r| r.contains("page.updated") && r.contains(MAPLE)).unwrap();
    assert!(is_verified(updated), "{updated}");
    assert!(updated.contains("etag") && updated.contains("demo-shop.myshopify.com"), "{updated}");
    let connected: Vec<&String> = events.iter().filter(|r| r.contains("page.connected")).collect();
    assert_eq!(connected.len(), 3, "{events:#?}");
    assert!(connected.iter().all(|r| is_verified(r)), "{connected:#?}");
    // Newest first: the update is above the connections.
    assert!(events.iter().position(|r| r == updated) < events.iter().position(|r| r.contains("page.connected")));
    // The rename itself was relayed too (every verified delivery is).
    let forwarded = table_rows(&page, "forwarded");
    assert!(forwarded.iter().any(|r| r.contains("Page change: name") && is_verified(r)), "{forwarded:#?}");
    assert!(!page.contains("NOT verified"), "{page}");
    sandbox.stop().await.unwrap();
}

#[actix_web::test]
async fn a_customer_message_before_connecting_is_not_delivered_and_the_editor_says_why() {
    let (sandbox, _dir) = start().await;
    let client = client();
    let post = |page: &str, form: Vec<(&'static str, String)>| {
        client.post(format!("{}/emulator/pages/{page}/messages", sandbox.emulator_url())).form(&form).send()
    };
    for (form, why) in [
        (vec![("text", String::new())], "empty"),
        (vec![("text", "  ".to_owned())], "blank"),
        (vec![("text", "x".repeat(2001))], "2001 characters"),
        (vec![("text", "a\u{0}b".to_owned())], "a control character"),
        (vec![], "no text"),
    ] {
        let resp = post(MAPLE, form).await.unwrap();
        assert_eq!(resp.status(), 400, "a message with {why}");
        assert!(resp.text().await.unwrap().contains("id=\"error\""));
    }
    assert_eq!(post("999", vec![("text", "Hi".to_owned())]).await.unwrap().status(), 404);
    assert!(sandbox.emulator().activity().is_empty());

    let resp = post(MAPLE, vec![("text", "Hello?".to_owned())]).await.unwrap();
    assert_eq!(resp.status(), 303);
    let page = get_html(&client, &location(&resp)).await;
    let notice = &page[page.find("id=\"notice\"").expect("a notice")..];
    assert!(notice.contains("No webhook sent") && notice.contains("not installed"), "{notice}");
    let activity = sandbox.emulator().activity();
    assert!(activity.len() == 1 && activity[0].delivery.is_none(), "{activity:?}");
    let page = get_html(&client, &Url::parse(&sandbox.bot_url()).unwrap()).await;
    assert!(table_rows(&page, "forwarded").is_empty(), "{page}");
    assert!(sandbox.bot().forwarded().is_empty());
    sandbox.stop().await.unwrap();
}

#[actix_web::test]
async fn the_demo_bot_marks_forged_deliveries_and_events_not_verified_and_escapes_them() {
    let (sandbox, _dir) = start().await;
    let client = client();
    let config = generated_config(&sandbox);
    let bot = sandbox.bot_url();
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{MAPLE}","time":1,"messaging":[{{"sender":{{"id":"1"}},"recipient":{{"id":"{MAPLE}"}},"timestamp":1,"message":{{"mid":"m_x","text":"<script>alert(1)</script>"}}}}]}}]}}"#
    );
    let signed = sign_sha256(&config["FACEBOOK_APP_SECRET"], body.as_bytes());
    for (signature, tampered) in
        [(Some(signed.clone()), true), (Some(sign_sha256("wrong", body.as_bytes())), false), (None, false)]
    {
        let mut request = client.post(format!("{bot}webhook")).header("Content-Type", "application/json");
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        // One signed for other bytes, one signed with another secret, one unsigned.
        let sent = if tampered { body.replace("alert(1)", "alert(2)") } else { body.clone() };
        let resp = request.body(sent).send().await.unwrap();
        assert_eq!(resp.status(), 200, "the demo bot acknowledges everything");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let resp = client
        .post(format!("{bot}events"))
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .body(r#"{"type":"page.removed","timestamp":"2026-01-01T00:00:00Z","data":{"page_id":"<b>1</b>"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let page = get_html(&client, &Url::parse(&bot).unwrap()).await;
    assert!(!page.contains("<script>") && !page.contains("<b>1</b>"), "{page}");
    let forwarded = table_rows(&page, "forwarded");
    assert_eq!(forwarded.len(), 3, "{forwarded:#?}");
    assert!(forwarded.iter().all(|r| r.contains("NOT verified")), "{forwarded:#?}");
    assert!(forwarded.iter().any(|r| r.contains("&lt;script&gt;alert(1)&lt;/script&gt;")), "{forwarded:#?}");
    let events = table_rows(&page, "events");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(events[0].contains("page.removed") && events[0].contains("NOT verified"), "{events:#?}");
    assert!(events[0].contains("&lt;b&gt;1&lt;/b&gt;"), "{events:#?}");
    sandbox.stop().await.unwrap();
}

// ----- what the emulator checks ------------------------------------------------------

/// Graph's error code in an answer.
async fn graph_code(resp: reqwest::Response) -> (i64, Option<i64>) {
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    (body["error"]["code"].as_i64().unwrap(), body["error"]["error_subcode"].as_i64())
}

#[actix_web::test]
async fn the_emulator_checks_redirect_uris_codes_secrets_tokens_and_proofs_like_meta_and_shopify() {
    let (sandbox, _dir) = start().await;
    let client = client();
    let config = generated_config(&sandbox);
    let (app, secret) = (config["FACEBOOK_APP_ID"].clone(), config["FACEBOOK_APP_SECRET"].clone());
    let redirect = config["FACEBOOK_REDIRECT_URI"].clone();
    let emu = sandbox.emulator_url().to_owned();
    let graph = format!("{emu}/v25.0");

    // The dialog and Shopify's install page refuse unknown apps and redirect URIs.
    let dialog = |client_id: &str, redirect_uri: &str| {
        let mut url = Url::parse(&format!("{graph}/dialog/oauth")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("state", "s");
        url
    };
    let resp = client.get(dialog(&app, "http://127.0.0.1:1/facebook/callback")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("URL blocked"));
    assert_eq!(client.get(dialog("42", &redirect)).send().await.unwrap().status(), 400);
    let mut authorize = Url::parse(&format!("{emu}/shopify/demo-shop.myshopify.com/admin/oauth/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", "not-our-app")
        .append_pair("scope", "read_products")
        .append_pair("redirect_uri", &config["SHOPIFY_REDIRECT_URI"]);
    assert_eq!(client.get(authorize).send().await.unwrap().status(), 400);
    let resp = client
        .post(format!("{emu}/shopify/demo-shop.myshopify.com/admin/oauth/access_token"))
        .form(&[
            ("client_id", config["SHOPIFY_API_KEY"].as_str()),
            ("client_secret", config["SHOPIFY_API_SECRET"].as_str()),
            ("code", "0123456789abcdef0123456789abcdef"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "an unknown Shopify code");

    // Codes: single use, bound to the byte-identical redirect URI, only with the secret.
    let new_code = || async {
        let url = dialog(&app, &redirect);
        let page = get_html(&client, &url).await;
        let resp = Form::parse(&page, "dialog").submit(&client, &url, Some("allow")).await;
        query(&location(&resp)).remove("code").expect("a code")
    };
    let exchange = |code: String, secret: String, redirect: String| {
        let app = app.clone();
        let client = client.clone();
        let url = format!("{graph}/oauth/access_token");
        async move {
            client
                .get(url)
                .query(&[("client_id", app), ("redirect_uri", redirect), ("client_secret", secret), ("code", code)])
                .send()
                .await
                .unwrap()
        }
    };
    let code = new_code().await;
    assert_eq!(graph_code(exchange(code.clone(), "wrong".into(), redirect.clone()).await).await, (1, None));
    let other_redirect = format!("{redirect}/");
    assert_eq!(graph_code(exchange(code.clone(), secret.clone(), other_redirect).await).await, (100, Some(36008)));
    assert_eq!(graph_code(exchange(code, secret.clone(), redirect.clone()).await).await, (100, Some(36009)));
    let code = new_code().await;
    let resp = exchange(code.clone(), secret.clone(), redirect.clone()).await;
    assert_eq!(resp.status(), 200);
    let short = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(graph_code(exchange(code, secret.clone(), redirect.clone()).await).await, (100, Some(36009)));
    let long: Value = client
        .get(format!("{graph}/oauth/access_token"))
        .query(&[
            ("grant_type", "fb_exchange_token"),
            ("client_id", &app),
            ("client_secret", &secret),
            ("fb_exchange_token", &short),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let long = long["access_token"].as_str().unwrap().to_owned();

    // Calls with user and Page tokens need a fresh appsecret_proof.
    let proof = |token: &str, time: u64| {
        (appsecret_proof(&Secret::new(secret.as_str()), &Secret::new(token), time), time.to_string())
    };
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let call = |path: String, token: String, proof: Option<(String, String)>, fields: Option<&'static str>| {
        let client = client.clone();
        let url = format!("{graph}{path}");
        async move {
            let mut request = client.get(url).query(&[("access_token", token)]);
            if let Some((proof, time)) = proof {
                request = request.query(&[("appsecret_proof", proof), ("appsecret_time", time)]);
            }
            if let Some(fields) = fields {
                request = request.query(&[("fields", fields)]);
            }
            request.send().await.unwrap()
        }
    };
    assert_eq!(graph_code(call("/me/accounts".into(), long.clone(), None, None).await).await.0, 100);
    assert_eq!(graph_code(call("/me/accounts".into(), "EAAGmadeup".into(), None, None).await).await.0, 190);
    let first: Value =
        call("/me/accounts".into(), long.clone(), Some(proof(&long, now())), None).await.json().await.unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 2, "{first}");
    let next = first["paging"]["next"].as_str().expect("a next link");
    assert!(next.starts_with(&graph), "{next}");
    let second: Value = client.get(next).send().await.unwrap().json().await.unwrap();
    assert_eq!(second["data"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["paging"].get("next").is_none(), "{second}");
    let token_of = |listing: &Value, page: &str| -> String {
        let pages = listing["data"].as_array().unwrap();
        let entry = pages.iter().find(|p| p["id"] == page).unwrap_or_else(|| panic!("{page} not in {listing}"));
        entry["access_token"].as_str().unwrap().to_owned()
    };
    let maple = token_of(&first, MAPLE);
    let juniper = token_of(&second, JUNIPER);

    let path = format!("/{MAPLE}");
    let fields = Some("name,fan_count,picture{url},no_such_field");
    let resp = call(path.clone(), maple.clone(), Some(proof(&maple, now())), fields).await;
    assert_eq!(resp.status(), 200);
    let data: Value = resp.json().await.unwrap();
    let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["fan_count", "id", "name", "picture"], "{data}");
    assert_eq!(graph_code(call(path.clone(), maple.clone(), None, fields).await).await.0, 100);
    let stale = proof(&maple, now() - 3600);
    assert_eq!(graph_code(call(path.clone(), maple.clone(), Some(stale), fields).await).await.0, 100);
    let other_secret = (appsecret_proof(&Secret::new("nope"), &Secret::new(&maple), now()), now().to_string());
    assert_eq!(graph_code(call(path.clone(), maple, Some(other_secret), fields).await).await.0, 100);
    assert_eq!(
        graph_code(call(path.clone(), juniper.clone(), Some(proof(&juniper, now())), fields).await).await.0,
        190
    );
    assert_eq!(graph_code(call(path, long.clone(), Some(proof(&long, now())), fields).await).await.0, 210);
    let missing = call("/999".into(), juniper.clone(), Some(proof(&juniper, now())), None).await;
    assert_eq!(graph_code(missing).await, (100, Some(33)));
    sandbox.stop().await.unwrap();
}

// ----- data dirs ---------------------------------------------------------------------

#[actix_web::test]
async fn a_second_run_on_the_same_data_dir_reuses_its_key_and_a_foreign_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = start_on(&data).await;
    let before = generated_config(&first);
    first.stop().await.unwrap();

    // The store's lock goes with the last handle; give it a moment, without sleeping
    // blindly: retry the start until it takes.
    let deadline = Instant::now() + DEADLINE;
    let second = loop {
        let options = SandboxOptions {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(data.clone()),
            ..SandboxOptions::default()
        };
        match Sandbox::start(options).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "second start failed: {e:#}");
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let after = generated_config(&second);
    assert_eq!(after["PAGESYNC_ENCRYPTION_KEY"], before["PAGESYNC_ENCRYPTION_KEY"]);
    assert_ne!(after["FACEBOOK_APP_SECRET"], before["FACEBOOK_APP_SECRET"], "secrets are fresh each run");
    second.stop().await.unwrap();

    let foreign = dir.path().join("production");
    std::fs::create_dir_all(foreign.join("db")).unwrap();
    let options =
        SandboxOptions { bind: Some("127.0.0.1:0".parse().unwrap()), data_dir: Some(foreign), ..Default::default() };
    let error = Sandbox::start(options).await.expect_err("a store no sandbox made must be refused");
    assert!(format!("{error:#}").contains("no sandbox run made"), "{error:#}");
}

// ----- the command -------------------------------------------------------------------

/// `pagesync sandbox` as a process; killed on drop if the test fails first.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Running {
    /// Starts `pagesync sandbox --data-dir DATA --bind 127.0.0.1:0` with an empty
    /// environment and returns it with what it printed up to its `open:` line.
    async fn start(dir: &Path, data: &Path) -> (Running, Vec<String>) {
        let mut child = Command::new(BIN)
            .arg("sandbox")
            .arg("--data-dir")
            .arg(data)
            .args(["--bind", "127.0.0.1:0"])
            .current_dir(dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let running = Running(Some(child));
        let (tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let printed = actix_web::rt::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + DEADLINE;
            while !seen.iter().any(|l: &String| l.starts_with("open: ")) {
                let left = deadline.saturating_duration_since(Instant::now());
                match lines.recv_timeout(left) {
                    Ok(line) => seen.push(line),
                    Err(e) => panic!("no `open:` line ({e}); stdout so far: {seen:#?}"),
                }
            }
            seen
        })
        .await
        .unwrap();
        (running, printed)
    }

    /// Sends `signal` and waits for the exit status.
    async fn stop_with(mut self, signal: &'static str) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        let pid = child.id().to_string();
        actix_web::rt::task::spawn_blocking(move || {
            assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
            let deadline = Instant::now() + DEADLINE;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    return status;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    panic!("`pagesync sandbox` did not exit within {DEADLINE:?} of {signal}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .unwrap()
    }
}

#[actix_web::test]
async fn the_command_prints_its_urls_open_last_and_exits_0_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (running, printed) = Running::start(dir.path(), &data).await;

    let keys: Vec<&str> = printed.iter().filter_map(|l| l.split_once(": ").map(|(k, _)| k)).collect();
    assert_eq!(keys, vec!["data dir", "emulator", "dashboard", "open"], "{printed:#?}");
    let value = |key: &str| -> String {
        printed.iter().find_map(|l| l.strip_prefix(&format!("{key}: "))).unwrap().trim().to_owned()
    };
    assert_eq!(PathBuf::from(value("data dir")), std::fs::canonicalize(&data).unwrap());
    let dashboard = value("dashboard");
    let emulator = value("emulator");
    let open = value("open");
    assert!(dashboard.starts_with("http://127.0.0.1:") && dashboard.ends_with('/'), "{dashboard}");
    assert!(emulator.starts_with("http://127.0.0.1:") && emulator.ends_with("/emulator"), "{emulator}");
    assert_eq!(open, format!("{dashboard}shopify/login?shop=demo-shop.myshopify.com"));

    let client = client();
    let health = client.get(format!("{dashboard}healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(client.get(&emulator).send().await.unwrap().status(), 200);
    let login = client.get(&open).send().await.unwrap();
    assert_eq!(login.status(), 302);
    assert!(location(&login).as_str().starts_with(emulator.trim_end_matches("/emulator")), "{login:?}");

    let status = running.stop_with("-INT").await;
    assert!(status.success(), "exit status {status}");
    assert!(data.join("facebook").is_dir(), "the data dir is kept");
    let refused = client.get(format!("{dashboard}healthz")).send().await;
    assert!(refused.is_err(), "the daemon still answers after exit");
    assert!(client.get(&emulator).send().await.is_err(), "the emulator still answers after exit");
}

#[actix_web::test]
async fn sigterm_right_after_the_banner_stops_the_command_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = Running::start(dir.path(), &dir.path().join("data")).await;
    let status = running.stop_with("-TERM").await;
    assert!(status.success(), "exit status {status}");
}
