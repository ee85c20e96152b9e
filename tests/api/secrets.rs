//! No token, secret or session id in plain text under the data dir or in the logs
//! (docs/contract.md §3): the whole onboarding runs with unique long secrets and tokens, including a
//! failed Shopify exchange, a failed Meta code exchange and a Graph error (error paths
//! are where URLs with tokens get logged), then every file below the data dir (sled's
//! binary files too, read as bytes) and every log line captured at TRACE are searched.
//!
//! The whole run has `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` (both spellings)
//! pointing at a recording proxy on 127.0.0.1: every target here is loopback, so it
//! must see no connection at all (docs/contract.md §5), while the settings show the variables were
//! read (a real host would be proxied).
//!
//! Logs are captured by one global `tracing` subscriber installed on first use, at TRACE
//! for every target (including `log` records of dependencies, through `tracing-log`),
//! writing into an in-memory buffer only while a capture is open, so that other tests
//! pay nothing for it. Other tests running meanwhile may add their lines; the secrets
//! searched for are unique to this test.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use base64::Engine as _;
use pagesync::verify::{sign_sha1, sign_sha256};
use serde_json::json;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::helpers::{Options, delivery, eventually, session_cookie, spawn_app_with, unique_shop, unix_now};
use crate::proxy::{RecordingProxy, proxy_env};
use pagesync::emulator::{Endpoint, Fault, random_token};

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static CAPTURING: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if CAPTURING.load(Ordering::Relaxed) > 0 {
            CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log capture while alive (also used by the consumer API's audit test).
pub(crate) struct Capture;

impl Capture {
    pub(crate) fn start() -> Capture {
        INSTALL.call_once(|| {
            let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(|| CaptureWriter).with_filter(
                tracing_subscriber::filter::dynamic_filter_fn(|_, _| CAPTURING.load(Ordering::Relaxed) > 0),
            );
            tracing_subscriber::registry().with(layer).try_init().expect("no other global subscriber in the tests");
        });
        CAPTURING.fetch_add(1, Ordering::SeqCst);
        Capture
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&CAPTURED.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file below `dir`, with its bytes.
fn files_below(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            let entry = entry.unwrap();
            let file_type = entry.file_type().unwrap();
            if file_type.is_dir() {
                stack.push(entry.path());
            } else if file_type.is_file() {
                out.push((entry.path().display().to_string(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out
}

#[actix_web::test]
async fn no_token_secret_or_session_id_reaches_the_data_dir_or_the_logs() {
    let capture = Capture::start();
    let app_secret = random_token("appsecret");
    let shopify_secret = random_token("shopifysecret");
    let verify_token = random_token("verifytoken");
    let state_secret = random_token("statesecret");
    let proxy = RecordingProxy::start().await;
    let mut env = vec![
        ("FACEBOOK_APP_SECRET", app_secret.clone()),
        ("SHOPIFY_API_SECRET", shopify_secret.clone()),
        ("FACEBOOK_VERIFY_TOKEN", verify_token.clone()),
        ("STATE_TOKEN_SECRET", state_secret.clone()),
    ];
    env.extend(proxy_env(&proxy));
    let app = spawn_app_with(Options { env, ..Options::default() }).await;
    // The proxy variables were read: a real host would go through the proxy.
    for real in ["https://graph.facebook.com/v25.0/me", "https://shop.myshopify.com/admin/oauth/access_token"] {
        let chosen = app.settings.proxy.proxy_for(&reqwest::Url::parse(real).unwrap()).map(|p| p.url().to_string());
        assert_eq!(chosen, Some(format!("{}/", proxy.url)), "{real}");
    }
    let key_base64 = app.key.to_base64();
    let key_bytes = base64::engine::general_purpose::STANDARD.decode(&key_base64).unwrap();
    app.graph.set_shopify_expiring(true);
    app.graph.set_page_size(2);

    // Shopify fails once, then the install goes through.
    let shop = unique_shop();
    app.graph.set_endpoint_sticky(
        Endpoint::ShopifyToken(shop.clone()),
        Some(Fault::Status(500, json!({"errors": "Internal Server Error"}))),
    );
    let login = app.shopify_state(&shop).await;
    let resp = app.shopify_return(&shop, &login, unix_now()).await;
    assert_eq!(resp.status(), 502);
    app.graph.set_endpoint_sticky(Endpoint::ShopifyToken(shop.clone()), None);
    let install = app.install_shop(&shop).await;

    // Meta fails the code exchange once, then the connect goes through, with one Page
    // GET failing once and one Page refusing its subscription on the way.
    let user = app.graph.register_user(&[
        ("104857600012345", "Maple"),
        ("209715200067890", "Northwind"),
        ("314572800098765", "Lumière"),
    ]);
    app.graph.set_endpoint_sticky(Endpoint::CodeExchange, Some(Fault::unavailable()));
    let state = app.facebook_state(&install.cookie).await;
    let code = app.graph.new_code(&user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&install.cookie)).await;
    assert_eq!(resp.status(), 502);
    assert!(session_cookie(&resp).is_none());
    app.graph.set_endpoint_sticky(Endpoint::CodeExchange, None);
    app.graph.push_fault("104857600012345", Fault::unavailable());
    app.graph.push_endpoint_fault(
        Endpoint::SubscribedAppsPost("314572800098765".into()),
        Fault::Status(
            400,
            json!({"error": {"message": "(#200) Permissions error", "type": "OAuthException", "code": 200}}),
        ),
    );
    let connected = app.connect_facebook(&install.cookie, &user).await;
    let graph = app.graph.clone();
    let subscribed = eventually(Duration::from_secs(10), || {
        let graph = graph.clone();
        async move { graph.app_subscription_attempts().iter().any(|a| a.verified) }
    })
    .await;
    assert!(subscribed, "the app-level subscription (and its verification GET) never happened");

    // A webhook delivery, signed with this app's secret, refreshes a Page.
    app.graph.set_name("209715200067890", "Northwind Renamed");
    let body = delivery(&["209715200067890"]);
    let resp = app
        .post_webhook_with(
            &body,
            &[
                ("X-Hub-Signature-256", sign_sha256(&app_secret, body.as_bytes())),
                ("X-Hub-Signature", sign_sha1(&app_secret, body.as_bytes())),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.wait_for_name("209715200067890", "Northwind Renamed").await;
    assert_eq!(app.facebook_login(Some(&connected.cookie)).await.status(), 302);
    app.wait_idle().await;

    let issued = app.graph.issued_secrets();
    let (dir, _, _) = app.stop().await;
    let proxied = proxy.connections();
    assert!(
        proxied.is_empty(),
        "{} connection(s) went through the proxy to loopback targets:\n{}",
        proxied.len(),
        proxied
            .iter()
            .map(|c| format!("from {}: {}", c.peer, String::from_utf8_lossy(&c.bytes)))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let logs = capture.text();
    drop(capture);
    assert!(logs.contains("pagesync"), "no log line was captured; is another global subscriber installed?");

    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("FACEBOOK_APP_SECRET", app_secret.clone().into_bytes()),
        ("SHOPIFY_API_SECRET", shopify_secret.clone().into_bytes()),
        ("FACEBOOK_VERIFY_TOKEN", verify_token.clone().into_bytes()),
        ("STATE_TOKEN_SECRET", state_secret.clone().into_bytes()),
        ("PAGESYNC_ENCRYPTION_KEY (base64)", key_base64.clone().into_bytes()),
        ("PAGESYNC_ENCRYPTION_KEY (raw bytes)", key_bytes),
        ("session id (install)", install.cookie.clone().into_bytes()),
        ("session id (rotated)", connected.cookie.clone().into_bytes()),
        ("long-lived user token", user.long_token.clone().into_bytes()),
    ];
    for page in &user.pages {
        secrets.push(("Page token", page.token.clone().into_bytes()));
    }
    let tokens: Vec<&String> =
        issued.iter().filter(|s| ["EAAG", "shpat_", "shprt_"].iter().any(|p| s.starts_with(p))).collect();
    assert!(tokens.iter().any(|t| t.starts_with("shprt_")), "the expiring Shopify answer was used");
    let more: Vec<(&str, Vec<u8>)> = tokens
        .iter()
        .filter(|t| !secrets.iter().any(|(_, s)| s == t.as_bytes()))
        .map(|token| {
            let what = match &token[..4] {
                "EAAG" => "Facebook token (short-lived user token)",
                "shpa" => "Shopify access token",
                _ => "Shopify refresh token",
            };
            (what, token.as_bytes().to_vec())
        })
        .collect();
    secrets.extend(more);

    let files = files_below(dir.path());
    assert!(files.iter().any(|(p, _)| p.ends_with("page_data.json")), "the data dir holds the Pages");
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for (path, bytes) in &files {
            if contains(bytes, secret) {
                leaks.push(format!("{what} in file {path}"));
            }
        }
        let secret_text = String::from_utf8_lossy(secret);
        for line in logs.lines().filter(|l| contains(l.as_bytes(), secret)) {
            leaks.push(format!("{what} ({secret_text}) in log line: {line}"));
        }
    }
    // Authorization codes are single-use and spent at once; report them, do not fail.
    for code in issued.iter().filter(|s| !tokens.contains(s)) {
        for line in logs.lines().filter(|l| l.contains(code.as_str())) {
            eprintln!("note: an OAuth code appears in a log line: {line}");
        }
    }
    assert!(leaks.is_empty(), "{} leak(s):\n{}", leaks.len(), leaks.join("\n"));
}
