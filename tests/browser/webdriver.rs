//! A small W3C WebDriver client for the browser test: JSON over HTTP (reqwest) to a
//! `chromedriver` this module starts on a free loopback port, driving headless
//! Debian Chromium. Blocking on the outside (it owns a current-thread runtime), so
//! the test reads top to bottom.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

/// How long to wait for a page element, a navigation or chromedriver to come up.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often to look again while waiting.
pub const POLL: Duration = Duration::from_millis(100);

/// The key W3C WebDriver uses for an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

const CHROMIUM: &str = "/usr/bin/chromium";
const MISSING: &str = "install Debian chromium and chromium-driver, as .ci/run does \
     (apt-get install -y --no-install-recommends chromium chromium-driver)";

/// A failed WebDriver command: the error code and message chromedriver answered with.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// `/usr/bin/chromedriver`, else `chromedriver` on PATH; panics (never skips)
/// when neither is there, or when Chromium itself is missing.
fn find_chromedriver() -> PathBuf {
    let chromium = Path::new(CHROMIUM);
    assert!(chromium.is_file(), "{CHROMIUM} is missing: {MISSING}");
    let standard = PathBuf::from("/usr/bin/chromedriver");
    if standard.is_file() {
        return standard;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path).map(|dir| dir.join("chromedriver")).find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| panic!("chromedriver not found (not /usr/bin/chromedriver, not on PATH): {MISSING}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port").local_addr().expect("local addr").port()
}

/// A running `chromedriver`; killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session: chromedriver, a headless Chromium with a fresh profile, and
/// the HTTP client that talks to them. Dropping it closes the browser and stops
/// chromedriver.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    driver: Driver,
    session: String,
    // Kept alive (and removed on drop) after the session is closed.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver, waits until it reports ready, and opens a session.
    pub fn start() -> Browser {
        let exe = find_chromedriver();
        pagesync::clients::http::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(90)).build().expect("reqwest client");

        // A port picked this way can be taken by someone else before chromedriver
        // binds it; try a few.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&exe)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e} ({MISSING})", exe.display()));
            let mut driver = Driver { child, base: format!("http://127.0.0.1:{port}") };
            match rt.block_on(wait_ready(&http, &mut driver)) {
                Ok(()) => {
                    let profile = tempfile::Builder::new().prefix("pagesync-chromium-").tempdir().expect("profile dir");
                    let session = rt
                        .block_on(new_session(&http, &driver.base, profile.path()))
                        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium ({CHROMIUM}): {e}"));
                    return Browser { rt, http, driver, session, _profile: profile };
                }
                Err(why) => last_failure = why,
            }
        }
        panic!("chromedriver did not become ready: {last_failure}");
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("{}/session/{}{}", self.driver.base, self.session, path);
        self.rt.block_on(command(&self.http, method, &url, body))
    }

    fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, None).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(Method::POST, path, Some(body)).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Loads `url` and waits for the page load to finish.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub fn current_url(&self) -> String {
        self.get("/url").as_str().expect("url is a string").to_owned()
    }

    /// Waits (up to [`DEADLINE`]) until the browser is on `url`.
    pub fn wait_for_url(&self, url: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let current = self.current_url();
            if current == url {
                return;
            }
            assert!(Instant::now() < deadline, "still on {current} after {DEADLINE:?}, expected {url}");
            std::thread::sleep(POLL);
        }
    }

    pub fn source(&self) -> String {
        self.get("/source").as_str().expect("source is a string").to_owned()
    }

    /// The first element matching `css` now, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        match self.call(Method::POST, "/element", Some(json!({ "using": "css selector", "value": css }))) {
            Ok(value) => Some(self.element(value)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {css:?}: {e}"),
        }
    }

    /// Every element matching `css` now (possibly none).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let value = self.post("/elements", json!({ "using": "css selector", "value": css }));
        value.as_array().expect("elements are an array").iter().map(|v| self.element(v.clone())).collect()
    }

    /// Waits (up to [`DEADLINE`]) for an element matching `css`; panics with the
    /// page's URL and source if it never appears.
    pub fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(found) = self.try_find(css) {
                return found;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element {css:?} within {DEADLINE:?} on {}\n--- page source ---\n{}",
                    self.current_url(),
                    self.source()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn element(&self, value: Value) -> Element<'_> {
        let id = value.get(ELEMENT_KEY).and_then(Value::as_str).expect("an element reference").to_owned();
        Element { browser: self, id }
    }

    /// A PNG of the viewport, written to `path` (parent directories are created).
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.get("/screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("screenshot is base64 text"))
            .expect("screenshot decodes as base64");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The HTTP status of the most recent top-level document load of `url` (from
    /// Chromium's performance log, which this session records), if one was seen
    /// since the log was last read.
    pub fn document_status(&self, url: &str) -> Option<u64> {
        let entries = self.post("/se/log", json!({ "type": "performance" }));
        let mut status = None;
        for entry in entries.as_array().into_iter().flatten() {
            let Some(message) = entry.get("message").and_then(Value::as_str) else { continue };
            let Ok(message) = serde_json::from_str::<Value>(message) else { continue };
            let message = &message["message"];
            if message["method"] != "Network.responseReceived" || message["params"]["type"] != "Document" {
                continue;
            }
            let response = &message["params"]["response"];
            if response["url"] == url {
                status = response["status"].as_u64();
            }
        }
        status
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.driver.base, self.session);
        let _ = self.rt.block_on(command(&self.http, Method::DELETE, &url, None));
    }
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}/{what}", self.id)
    }

    /// Clicks it; when the click submits a form or follows a link, chromedriver
    /// answers once the new page has loaded.
    pub fn click(&self) {
        self.browser.post(&self.path("click"), json!({}));
    }

    /// Clears the field, then types `text` into it.
    pub fn set_text(&self, text: &str) {
        self.browser.post(&self.path("clear"), json!({}));
        self.browser.post(&self.path("value"), json!({ "text": text }));
    }

    /// The rendered text.
    pub fn text(&self) -> String {
        self.browser.get(&self.path("text")).as_str().expect("text is a string").to_owned()
    }

    /// The current value of a property (e.g. `value` of an input), if set.
    pub fn property(&self, name: &str) -> Option<String> {
        self.browser.get(&self.path(&format!("property/{name}"))).as_str().map(str::to_owned)
    }
}

/// One WebDriver command: the answer's `value`, or its error.
async fn command(http: &reqwest::Client, method: Method, url: &str, body: Option<Value>) -> Result<Value, WdError> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response =
        request.send().await.map_err(|e| WdError { error: "http".into(), message: format!("{url}: {e}") })?;
    let status = response.status();
    let answer: Value =
        response.json().await.map_err(|e| WdError { error: "http".into(), message: format!("{url}: {e}") })?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    Err(WdError {
        error: value.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_owned(),
        message: value.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
    })
}

async fn wait_ready(http: &reqwest::Client, driver: &mut Driver) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    let url = format!("{}/status", driver.base);
    loop {
        if let Ok(Some(exit)) = driver.child.try_wait() {
            return Err(format!("chromedriver exited early: {exit}"));
        }
        if let Ok(value) = command(http, Method::GET, &url, None).await
            && value.get("ready") == Some(&Value::Bool(true))
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{url} not ready within {DEADLINE:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn new_session(http: &reqwest::Client, base: &str, profile: &Path) -> Result<String, WdError> {
    let capabilities = json!({
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "goog:loggingPrefs": { "performance": "ALL" },
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--disable-dev-shm-usage",
                        "--no-proxy-server",
                        format!("--user-data-dir={}", profile.display()),
                        "--window-size=1100,800",
                    ],
                },
            },
        },
    });
    let value = command(http, Method::POST, &format!("{base}/session"), Some(capabilities)).await?;
    value
        .get("sessionId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| WdError { error: "no session id".into(), message: value.to_string() })
}
