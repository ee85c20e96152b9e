//! The real-browser test: headless Chromium (Debian `chromium` + `chromium-driver`,
//! installed by `.ci/run`), driven over WebDriver, clicks through `pagesync
//! sandbox` like a merchant would, then plays a customer and looks at the demo bot's
//! page like a bot developer would. A missing browser is a failure, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox;
mod webdriver;

use std::path::{Path, PathBuf};
use std::time::Instant;

use sandbox::Sandbox;
use webdriver::{Browser, DEADLINE, POLL};

const MAPLE: (&str, &str) = ("100000000000001", "Maple & Oak Candle Co.");
const HARBOR: (&str, &str) = ("100000000000002", "Harbor Coffee Roasters");
const JUNIPER: (&str, &str) = ("100000000000003", "Juniper Bike Works");
const NEW_NAME: &str = "Harbor Coffee & Tea";
const MESSAGE: &str = "Hi! Is the <Ethiopia> roast in stock?";

/// `target/browser-artifacts/<name>`, with `target` from `CARGO_TARGET_DIR` when set.
fn artifact(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser-artifacts").join(name)
}

/// Saves a screenshot and checks it is a PNG worth looking at.
fn save_screenshot(browser: &Browser, name: &str) -> PathBuf {
    let path = artifact(name);
    browser.screenshot(&path);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
    assert!(bytes.len() > 5_000, "{} is only {} bytes", path.display(), bytes.len());
    path
}

/// Opens the sandbox's start URL and clicks through the Shopify install up to the
/// daemon's "connect Facebook" link, then follows it to Facebook's dialog.
fn install_and_open_facebook_dialog(browser: &Browser, sandbox: &Sandbox) {
    browser.goto(&sandbox.open);
    browser.find("#approve").click();
    browser.find("#connect-facebook").click();
}

#[test]
fn merchant_connects_pages_sees_an_edit_on_the_dashboard_and_the_demo_bot_gets_a_message_and_the_update() {
    let browser = Browser::start();
    let sandbox = Sandbox::start();

    install_and_open_facebook_dialog(&browser, &sandbox);
    browser.find("#allow").click();

    let connected = browser.find("#pages").text();
    for (id, name) in [MAPLE, HARBOR, JUNIPER] {
        assert!(connected.contains(name), "page {id} {name:?} missing from the connected page:\n{connected}");
    }

    browser.find("#dashboard").click();
    browser.wait_for_url(&sandbox.dashboard);
    browser.find("#pages");
    let rows = browser.find_all("#pages tr[data-page-id]");
    assert_eq!(rows.len(), 3, "dashboard rows on {}:\n{}", browser.current_url(), browser.source());
    for (id, name) in [MAPLE, HARBOR, JUNIPER] {
        let row = format!("#pages tr[data-page-id=\"{id}\"]");
        assert_eq!(browser.find(&format!("{row} td.name")).text().trim(), name);
    }
    let dashboard = browser.current_url();

    // The merchant renames a Page on "Facebook".
    let (id, _) = HARBOR;
    browser.goto(&sandbox.emulator);
    browser.find(&format!("#edit-{id}"));
    let name_field = browser.find(&format!("#name-{id}"));
    name_field.set_text(NEW_NAME);
    assert_eq!(name_field.property("value").as_deref(), Some(NEW_NAME), "typed into #name-{id}");
    browser.find(&format!("#save-{id}")).click();
    browser.find("#notice");

    // Meta's webhook reaches the daemon, which re-fetches and rewrites the file.
    let row = format!("#pages tr[data-page-id=\"{id}\"]");
    let deadline = Instant::now() + DEADLINE;
    loop {
        browser.goto(&dashboard);
        let name = browser.try_find(&format!("{row} td.name")).map(|cell| cell.text());
        let status = browser.try_find(&format!("{row} td.status")).map(|cell| cell.text());
        if name.as_deref().map(str::trim) == Some(NEW_NAME) && status.as_deref().map(str::trim) == Some("synced") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard still shows name {name:?}, status {status:?} for {id} after {DEADLINE:?}:\n{}",
            browser.source()
        );
        std::thread::sleep(POLL);
    }
    for (other, name) in [MAPLE, JUNIPER] {
        let cell = browser.find(&format!("#pages tr[data-page-id=\"{other}\"] td.name")).text();
        assert_eq!(cell.trim(), name, "page {other} changed");
    }
    save_screenshot(&browser, "dashboard.png");

    let file = sandbox.data_dir.join("facebook").join(id).join("page_data.json");
    let data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display())))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
    assert_eq!(data["name"], NEW_NAME, "{}: {data}", file.display());

    // A customer writes to the Page on Messenger.
    browser.goto(&sandbox.emulator);
    let message_field = browser.find(&format!("#message-text-{id}"));
    message_field.set_text(MESSAGE);
    assert_eq!(message_field.property("value").as_deref(), Some(MESSAGE), "typed into #message-text-{id}");
    browser.find(&format!("#send-message-{id}")).click();
    let notice = browser.find("#notice").text();
    assert!(notice.contains("Delivered to pagesync: 200"), "emulator notice: {notice}");

    // pagesync relays the message to the demo bot and sent it page.updated for the
    // rename; both travel asynchronously, so reload the bot's page until they show.
    browser.find("#bot").click();
    let bot = browser.current_url();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rows = |css: &str| -> Vec<String> { browser.find_all(css).iter().map(|row| row.text()).collect() };
        let forwarded = rows("#forwarded tr.forwarded");
        let events = rows("#events tr.event");
        let message = forwarded.iter().find(|row| row.contains(MESSAGE));
        let updated = events.iter().find(|row| row.contains("page.updated") && row.contains(id));
        if let (Some(message), Some(updated)) = (message, updated) {
            for row in [message, updated] {
                assert!(row.contains("verified") && !row.contains("NOT verified"), "not verified: {row}");
            }
            assert!(message.contains(id), "the relayed message names another Page: {message}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bot page lacks the message or page.updated after {DEADLINE:?}:\nforwarded: {forwarded:#?}\n\
             events: {events:#?}"
        );
        std::thread::sleep(POLL);
        browser.goto(&bot);
    }
    save_screenshot(&browser, "bot.png");

    drop(browser);
    sandbox.stop();
}

#[test]
fn cancelling_facebook_login_shows_a_clear_error() {
    let browser = Browser::start();
    let sandbox = Sandbox::start();

    install_and_open_facebook_dialog(&browser, &sandbox);
    browser.find("#cancel").click();

    let message = browser.find("#error").text();
    assert!(message.to_lowercase().contains("cancelled"), "error message {message:?} does not say \"cancelled\"");
    assert!(browser.try_find("#pages").is_none(), "the error page shows a pages table:\n{}", browser.source());
    let url = browser.current_url();
    assert_eq!(browser.document_status(&url), Some(400), "HTTP status of {url}");
    save_screenshot(&browser, "cancelled.png");

    drop(browser);
    sandbox.stop();
}
