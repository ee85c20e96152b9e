//! Start, stop, crash and restart; the command line.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix::Actor as _;
use pagesync_actors::messages::{Shutdown, StorePageToken};
use pagesync_actors::{EncryptionKey, PageId, Sealer, Secret, Store, StoreConfig, TokenVaultActor, UserId};
use serde_json::json;

use crate::helpers::{Options, base_env, delivery, fast_tuning, poll_until, spawn_app_with, spawn_emulator, start_app};
use pagesync::emulator::{Emulator, Fault};

const BIN: &str = env!("CARGO_BIN_EXE_pagesync");

#[actix_web::test]
async fn deliveries_left_in_the_inbox_are_processed_after_a_restart() {
    let mut tuning = fast_tuning();
    // Long enough that the failed refresh is still waiting when we stop.
    tuning.refresh_backoff_base = Duration::from_secs(600);
    tuning.refresh_backoff_cap = Duration::from_secs(600);
    let app = spawn_app_with(Options { tuning, ..Options::default() }).await;
    app.connect_page("31337", "t", "After restart").await;
    app.graph.set_sticky_fault("31337", Some(Fault::Status(503, json!("down"))));
    assert_eq!(app.post_webhook(&delivery(&["31337"])).await.status(), 200);
    let graph = app.graph.clone();
    assert!(poll_until(Duration::from_secs(10), || graph.gets("31337") >= 3).await);
    assert_eq!(app.stats().await.inbox_depth, 1);
    let (dir, key, graph) = app.stop().await;
    assert!(!dir.path().join("data/facebook/31337/page_data.json").exists());

    graph.set_sticky_fault("31337", None);
    let app = start_app(dir, key, graph, Options::default()).await;
    app.wait_for_name("31337", "After restart").await;
    assert_eq!(app.wait_idle().await.inbox_depth, 0);
}

#[actix_web::test]
async fn a_large_inbox_left_at_a_stop_is_replayed_in_chunks_once_per_page_and_emptied() {
    let app = spawn_app_with(Options { tuning: fast_tuning(), ..Options::default() }).await;
    let pages = ["61001", "61002", "61003"];
    for page in pages {
        app.connect_page(page, &format!("t{page}"), &format!("Replayed {page}")).await;
    }
    let (dir, key, graph) = app.stop().await;

    // 10,000 deliveries (more than two of the writer's chunks) naming the three Pages,
    // a Page nobody connected, and two records that were never the writer's.
    {
        let store = Store::open(&StoreConfig::new(dir.path().join("data/db"))).unwrap();
        let inbox = store.tree(pagesync_actors::store::trees::INBOX).unwrap();
        for seq in 0u64..10_000 {
            let named = match seq % 4 {
                0 => "61001,61002".to_owned(),
                1 => "61003".to_owned(),
                2 => "61002,70000".to_owned(),
                _ => "61001".to_owned(),
            };
            inbox.insert(seq.to_be_bytes(), named.as_bytes()).unwrap();
        }
        inbox.insert(10_000u64.to_be_bytes(), &b"61001,../x"[..]).unwrap();
        inbox.insert(b"odd", &b"61001"[..]).unwrap();
        store.close().unwrap();
    }
    let app = start_app(dir, key, graph, Options { tuning: fast_tuning(), ..Options::default() }).await;
    for page in pages {
        app.wait_for_name(page, &format!("Replayed {page}")).await;
    }
    assert_eq!(app.wait_idle().await.inbox_depth, 0);
    for page in pages {
        assert_eq!(app.graph.gets(page), 1, "Page {page}: one refresh covers every replayed delivery");
    }
    let inbox = app.actors.store.tree(pagesync_actors::store::trees::INBOX).unwrap();
    assert!(poll_until(Duration::from_secs(10), || inbox.is_empty()).await, "{} records left", inbox.len());
}

/// Stores a Page token in a data dir with no daemon running, through the vault actor.
async fn seed_token(data_dir: &Path, key: &EncryptionKey, page: &str, token: &str) {
    let store = Store::open(&StoreConfig::new(data_dir.join("db"))).unwrap();
    let vault = TokenVaultActor::new(store.clone(), Sealer::new(key)).unwrap().start();
    vault
        .send(StorePageToken { page: PageId::parse(page).unwrap(), owner: UserId::random(), token: Secret::new(token) })
        .await
        .unwrap()
        .unwrap();
    vault.send(Shutdown).await.unwrap();
    assert!(poll_until(Duration::from_secs(5), || !vault.connected()).await);
    drop(vault);
    store.close().unwrap();
    drop(store);
    // The actor's own handle on the store goes with the actor, a moment after it
    // stopped (later on a loaded machine): wait until the database lock is free, so
    // that the daemon started next takes it instead of failing to open the store.
    let db = data_dir.join("db");
    let free = || Store::open(&StoreConfig::new(&db)).map(|store| store.close()).is_ok();
    assert!(poll_until(Duration::from_secs(10), free).await, "the seeded store stayed locked");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Daemon {
    child: Child,
    address: String,
}

fn start_daemon(dir: &Path, key: &EncryptionKey, graph: &Emulator, log_name: &str) -> Daemon {
    start_daemon_with(dir, key, graph, log_name, &[])
}

fn start_daemon_with(
    dir: &Path,
    key: &EncryptionKey,
    graph: &Emulator,
    log_name: &str,
    extra: &[(&str, &str)],
) -> Daemon {
    let port = free_port();
    let mut env = base_env(&dir.join("data"), &graph.url, key);
    env.insert("PAGESYNC_BIND".into(), format!("127.0.0.1:{port}"));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let log = std::fs::File::create(dir.join(log_name)).unwrap();
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon { child, address: format!("http://127.0.0.1:{port}") }
}

async fn wait_ready(daemon: &Daemon) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = client.get(format!("{}/readyz", daemon.address)).send().await
            && resp.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "daemon never became ready");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post_signed(address: &str, body: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{address}/facebook/webhook"))
        .header("X-Hub-Signature-256", pagesync::verify::sign_sha256(crate::helpers::APP_SECRET, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
}

async fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn an_acknowledged_delivery_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    graph.add_page("424242", "tok", "Durable");
    seed_token(&dir.path().join("data"), &key, "424242", "tok").await;
    // Graph hangs, so the refresh is still in flight when the process dies.
    graph.set_latency(Duration::from_secs(30));

    let mut daemon = start_daemon(dir.path(), &key, &graph, "first.log");
    wait_ready(&daemon).await;
    assert_eq!(post_signed(&daemon.address, &delivery(&["424242"])).await, 200);
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert!(!dir.path().join("data/facebook/424242/page_data.json").exists());

    graph.set_latency(Duration::ZERO);
    let mut daemon = start_daemon(dir.path(), &key, &graph, "second.log");
    wait_ready(&daemon).await;
    let file = dir.path().join("data/facebook/424242/page_data.json");
    let written = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&file).map(|t| t.contains("Durable")).unwrap_or(false)
    })
    .await;
    daemon.child.kill().unwrap();
    let _ = daemon.child.wait();
    assert!(
        written,
        "the acknowledged delivery was lost; log: {}",
        std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
    );
}

/// Deliveries that arrive while a refresh of their Page is queued are answered
/// without an inbox record of their own (they rely on the queued one's); the burst
/// must survive kill -9 all the same.
#[actix_web::test]
async fn a_burst_for_one_page_acknowledged_while_its_refresh_hangs_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    graph.add_page("434343", "tok", "Before the burst");
    seed_token(&dir.path().join("data"), &key, "434343", "tok").await;
    graph.set_latency(Duration::from_secs(30));

    let mut daemon = start_daemon(dir.path(), &key, &graph, "first.log");
    wait_ready(&daemon).await;
    // The first delivery's refresh hangs; the second queues one more behind it; the
    // rest join that one.
    for _ in 0..6 {
        assert_eq!(post_signed(&daemon.address, &delivery(&["434343"])).await, 200);
    }
    graph.set_name("434343", "After the burst");
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    graph.set_latency(Duration::ZERO);
    let mut daemon = start_daemon(dir.path(), &key, &graph, "second.log");
    wait_ready(&daemon).await;
    let file = dir.path().join("data/facebook/434343/page_data.json");
    let written = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&file).map(|t| t.contains("After the burst")).unwrap_or(false)
    })
    .await;
    daemon.child.kill().unwrap();
    let _ = daemon.child.wait();
    assert!(
        written,
        "the burst was lost; log: {}",
        std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
    );
}

#[actix_web::test]
async fn sigterm_with_work_in_flight_exits_0_and_the_work_resumes_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    graph.add_page("515151", "tok", "Graceful");
    seed_token(&dir.path().join("data"), &key, "515151", "tok").await;
    graph.set_latency(Duration::from_secs(30));

    let mut daemon = start_daemon(dir.path(), &key, &graph, "first.log");
    wait_ready(&daemon).await;
    assert_eq!(post_signed(&daemon.address, &delivery(&["515151"])).await, 200);
    let started = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut daemon.child, Duration::from_secs(15)).await;
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "log: {log}");
    assert!(started.elapsed() < Duration::from_secs(12), "stop took {:?}", started.elapsed());

    graph.set_latency(Duration::ZERO);
    let mut daemon = start_daemon(dir.path(), &key, &graph, "second.log");
    wait_ready(&daemon).await;
    let file = dir.path().join("data/facebook/515151/page_data.json");
    let written = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&file).map(|t| t.contains("Graceful")).unwrap_or(false)
    })
    .await;
    let _ = Command::new("kill").args(["-INT", &daemon.child.id().to_string()]).status();
    let status = wait_exit(&mut daemon.child, Duration::from_secs(15)).await;
    assert!(written, "work queued at SIGTERM was not resumed");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "SIGINT stops gracefully too");
}

#[actix_web::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    let extra = [("PAGESYNC_LOG_FORMAT", "json"), ("PAGESYNC_LOG", "info")];
    let mut daemon = start_daemon_with(dir.path(), &key, &graph, "json.log", &extra);
    wait_ready(&daemon).await;
    // A delivery with a wrong signature is logged (a warning) inside its request.
    let resp = reqwest::Client::new()
        .post(format!("{}/facebook/webhook", daemon.address))
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .header("X-Request-Id", "req-json-1")
        .body(delivery(&["42"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-request-id"], "req-json-1");
    let _ = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status();
    let status = wait_exit(&mut daemon.child, Duration::from_secs(15)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));

    let log = std::fs::read_to_string(dir.path().join("json.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}")))
        .collect();
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string() && l["message"].is_string()));
    let refused = lines
        .iter()
        .find(|l| l["message"] == "delivery refused")
        .unwrap_or_else(|| panic!("no \"delivery refused\" line in {log}"));
    assert_eq!(refused["level"], "WARN");
    let spans = refused["spans"].as_array().expect("the span list");
    assert!(spans.iter().any(|s| s["request_id"] == "req-json-1"), "{refused}");
    assert!(lines.iter().any(|l| l["message"] == "pagesync listening"));
}

#[actix_web::test]
async fn when_stderr_is_the_journal_every_line_carries_its_syslog_priority() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    // systemd names the journal stream by device and inode; stand in a file for it
    // (start_daemon_with truncates the same file, keeping its inode).
    let file = std::fs::File::create(dir.path().join("journal.log")).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let extra = [("JOURNAL_STREAM", stream.as_str()), ("PAGESYNC_LOG_FORMAT", "text"), ("PAGESYNC_LOG", "info")];
    let mut daemon = start_daemon_with(dir.path(), &key, &graph, "journal.log", &extra);
    wait_ready(&daemon).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/facebook/webhook", daemon.address))
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(delivery(&["42"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let _ = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status();
    let status = wait_exit(&mut daemon.child, Duration::from_secs(15)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));

    let log = std::fs::read_to_string(dir.path().join("journal.log")).unwrap();
    let priority = |line: &str| line.strip_prefix('<').and_then(|l| l.split_once('>')).map(|(p, _)| p.to_owned());
    assert!(log.lines().all(|l| priority(l).is_some_and(|p| ["3", "4", "6", "7"].contains(&p.as_str()))), "{log}");
    assert!(log.lines().any(|l| l.starts_with("<4>") && l.contains("delivery refused")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("<6>") && l.contains("pagesync listening")), "{log}");
    assert!(!log.contains('\u{1b}'), "no colour codes in the journal: {log}");

    // The same variable with stderr elsewhere (a child that inherited it) changes nothing.
    let extra = [("JOURNAL_STREAM", "1:1"), ("PAGESYNC_LOG_FORMAT", "text"), ("PAGESYNC_LOG", "info")];
    let mut daemon = start_daemon_with(dir.path(), &key, &graph, "plain.log", &extra);
    wait_ready(&daemon).await;
    let _ = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status();
    wait_exit(&mut daemon.child, Duration::from_secs(15)).await;
    let log = std::fs::read_to_string(dir.path().join("plain.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("pagesync listening")) && !log.contains("<6>"), "{log}");
}

#[actix_web::test]
async fn a_store_written_by_a_newer_pagesync_is_refused_with_exit_78_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    let db = dir.path().join("data").join("db");
    let newer = pagesync_actors::store::FORMAT_VERSION + 1;
    let open = || pagesync_actors::Store::open(&pagesync_actors::StoreConfig::new(&db));
    {
        let store = open().unwrap();
        let meta = store.tree(pagesync_actors::store::trees::STORE_META).unwrap();
        meta.insert("format", &newer.to_be_bytes()).unwrap();
        store.close().unwrap();
    }
    let mut daemon = start_daemon(dir.path(), &key, &graph, "newer.log");
    let status = wait_exit(&mut daemon.child, Duration::from_secs(15)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(78));
    let log = std::fs::read_to_string(dir.path().join("newer.log")).unwrap();
    assert!(log.contains("newer than this pagesync reads"), "{log}");
    match open() {
        Err(pagesync_actors::StoreError::NewerFormat { found, .. }) => assert_eq!(found, newer),
        other => panic!("the store should still be refused: {other:?}"),
    }
}

fn run_cli(dir: &Path, args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).current_dir(dir).env_clear().envs(env.iter().cloned()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn rotate_key_reseals_the_vault_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = EncryptionKey::generate().unwrap();
    let new = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    graph.add_page("737373", "tok-rotated", "Rotated");
    seed_token(&dir.path().join("data"), &old, "737373", "tok-rotated").await;
    let key_file = dir.path().join("new-key");
    std::fs::write(&key_file, format!("{}\n", new.to_base64())).unwrap();
    let key_arg = key_file.to_str().unwrap();
    let (data_dir, graph_url) = (dir.path().join("data"), graph.url.clone());
    let env_with = move |key: &EncryptionKey| -> Vec<(String, String)> {
        base_env(&data_dir, &graph_url, key).into_iter().collect()
    };

    // The same key, a key file that is not a key, and a wrong current key are refused.
    let old_file = dir.path().join("old-key");
    std::fs::write(&old_file, old.to_base64()).unwrap();
    let (code, _, err) =
        run_cli(dir.path(), &["rotate-key", "--new-key-file", old_file.to_str().unwrap()], &env_with(&old));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the key in use"), "{err}");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not a key").unwrap();
    let (code, _, err) =
        run_cli(dir.path(), &["rotate-key", "--new-key-file", junk.to_str().unwrap()], &env_with(&old));
    assert_eq!(code, 1);
    assert!(err.contains("base64 of exactly 32 bytes") && !err.contains("not a key"), "{err}");
    let stranger = EncryptionKey::generate().unwrap();
    let (code, _, err) = run_cli(dir.path(), &["rotate-key", "--new-key-file", key_arg], &env_with(&stranger));
    assert_eq!(code, 1);
    assert!(err.contains("nothing was changed"), "{err}");

    let (code, out, err) = run_cli(dir.path(), &["rotate-key", "--new-key-file", key_arg], &env_with(&old));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("re-sealed 1 token record(s)"), "{out}");
    assert!(!out.contains(&new.to_base64()) && !err.contains(&new.to_base64()), "the key was printed");

    // The daemon on the new key opens the token and syncs the Page.
    let dir_path = dir.path().to_owned();
    let app = start_app(dir, new, graph, Options::default()).await;
    assert_eq!(app.post_webhook(&delivery(&["737373"])).await.status(), 200);
    app.wait_for_name("737373", "Rotated").await;
    // While it runs, the store is in use and rotation says so.
    let (code, _, err) =
        run_cli(&dir_path, &["rotate-key", "--new-key-file", key_arg], &env_with(&EncryptionKey::generate().unwrap()));
    assert_eq!(code, 69, "EX_UNAVAILABLE (docs/cli.md, \"Exit status\")");
    assert!(err.contains("stop pagesync"), "{err}");
}

#[test]
fn keygen_prints_a_usable_base64_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_cli(dir.path(), &["keygen"], &[]);
    assert_eq!(code, 0);
    let key = EncryptionKey::from_base64(out.trim()).unwrap();
    let (_, again, _) = run_cli(dir.path(), &["keygen"], &[]);
    assert_ne!(out, again, "every key is new");
    let _ = key;
}

#[test]
fn check_config_exits_0_for_a_valid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let env: Vec<(String, String)> =
        base_env(&dir.path().join("data"), "http://127.0.0.1:9", &key).into_iter().collect();
    let (code, out, err) = run_cli(dir.path(), &["check-config"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("configuration ok"), "{out}");
}

#[test]
fn check_config_lists_every_problem_by_name_without_values_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let mut env = base_env(&dir.path().join("data"), "http://127.0.0.1:9", &key);
    env.remove("FACEBOOK_VERIFY_TOKEN");
    env.insert("FACEBOOK_APP_ID".into(), "not-digits-SECRETISH".into());
    env.insert("PAGESYNC_ENCRYPTION_KEY".into(), "dG9vIHNob3J0LVNFQ1JFVElTSA==".into());
    env.insert("PAGESYNC_SESSION_TTL".into(), "forever".into());
    let env: Vec<(String, String)> = env.into_iter().collect();
    let (code, out, err) = run_cli(dir.path(), &["check-config"], &env);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    for name in
        ["FACEBOOK_APP_ID:", "FACEBOOK_VERIFY_TOKEN: missing", "PAGESYNC_ENCRYPTION_KEY:", "PAGESYNC_SESSION_TTL:"]
    {
        assert!(lines.iter().any(|l| l.contains(name)), "no line for {name}: {err}");
    }
    assert!(!err.contains("SECRETISH") && !err.contains("dG9vIHNob3J0"), "a value leaked: {err}");
}

#[test]
fn flags_override_the_environment_and_dotenv_fills_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let mut env = base_env(&dir.path().join("data"), "http://127.0.0.1:9", &key);
    let secret = env.remove("STATE_TOKEN_SECRET").unwrap();
    std::fs::write(dir.path().join(".env"), format!("STATE_TOKEN_SECRET={secret}\nPAGESYNC_BIND=127.0.0.1:7001\n"))
        .unwrap();
    env.insert("PAGESYNC_BIND".into(), "127.0.0.1:7002".into());
    let env: Vec<(String, String)> = env.into_iter().collect();
    let (code, out, err) = run_cli(dir.path(), &["check-config", "--bind", "127.0.0.1:7003"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.1:7003"), "{out}");
    let (code, out, _) = run_cli(dir.path(), &["check-config"], &env);
    assert_eq!(code, 0);
    assert!(out.contains("127.0.0.1:7002"), "{out}");
    assert!(out.contains("1 from .env"), "{out}");
}

#[test]
fn serve_with_a_bad_configuration_exits_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = vec![("PAGESYNC_BIND".to_owned(), format!("127.0.0.1:{port}"))];
    let (code, _, err) = run_cli(dir.path(), &["serve"], &env);
    assert_eq!(code, 78, "{err}");
    assert!(err.lines().all(|l| l.starts_with("config error: ")), "{err}");
    assert!(err.contains("FACEBOOK_APP_SECRET: missing"));
    // Nothing was bound and no data dir was made.
    assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    assert!(!dir.path().join("data").exists());
}

#[actix_web::test]
async fn serve_with_another_encryption_key_exits_78_naming_the_variable_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let wrong = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    graph.add_page("787878", "tok-keyed", "Keyed");
    // A store from before key checks: tokens only, no check record.
    seed_token(&dir.path().join("data"), &key, "787878", "tok-keyed").await;
    let refused = |log: &str| {
        let mut daemon = start_daemon(dir.path(), &wrong, &graph, log);
        async move { wait_exit(&mut daemon.child, Duration::from_secs(20)).await }
    };
    let status = refused("wrong-1.log").await.expect("serve with a wrong key kept running");
    assert_eq!(status.code(), Some(78));
    let log = std::fs::read_to_string(dir.path().join("wrong-1.log")).unwrap();
    assert!(log.contains("PAGESYNC_ENCRYPTION_KEY"), "{log}");
    assert!(!log.contains(&wrong.to_base64()) && !log.contains(&key.to_base64()), "a key was printed");

    // The right key starts, writes its check record and syncs; the wrong one is then
    // refused by the check record alone.
    let mut daemon = start_daemon(dir.path(), &key, &graph, "right.log");
    wait_ready(&daemon).await;
    assert_eq!(post_signed(&daemon.address, &delivery(&["787878"])).await, 200);
    let file = dir.path().join("data/facebook/787878/page_data.json");
    assert!(poll_until(Duration::from_secs(10), || file.exists()).await);
    let _ = Command::new("kill").arg("-TERM").arg(daemon.child.id().to_string()).status();
    assert_eq!(wait_exit(&mut daemon.child, Duration::from_secs(15)).await.and_then(|s| s.code()), Some(0));
    let status = refused("wrong-2.log").await.expect("serve with a wrong key kept running");
    assert_eq!(status.code(), Some(78));

    // Nothing was marked needs_reauth by the refused starts: the right key still syncs.
    let mut daemon = start_daemon(dir.path(), &key, &graph, "right-again.log");
    wait_ready(&daemon).await;
    graph.set_name("787878", "Keyed again");
    assert_eq!(post_signed(&daemon.address, &delivery(&["787878"])).await, 200);
    let renamed = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.contains("Keyed again"))
    })
    .await;
    assert!(renamed, "the Page did not sync with the right key after refused starts");
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
}

#[test]
fn keygen_events_secret_prints_a_usable_whsec_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_cli(dir.path(), &["keygen", "--events-secret"], &[]);
    assert_eq!(code, 0);
    let secret = out.trim();
    assert!(pagesync::config::EventsKey::parse(secret).is_ok(), "{secret}");
    let (_, again, _) = run_cli(dir.path(), &["keygen", "--events-secret"], &[]);
    assert_ne!(secret, again.trim());
}

#[actix_web::test]
async fn forwards_acknowledged_while_the_bot_is_down_all_arrive_after_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let graph = spawn_emulator();
    // The bot's port, closed for now: every forward attempt is refused.
    let bot_port = free_port();
    let bot_url = format!("http://127.0.0.1:{bot_port}/bot");
    let extra = [("PAGESYNC_FORWARD_URL", bot_url.as_str())];
    let mut daemon = start_daemon_with(dir.path(), &key, &graph, "first.log", &extra);
    wait_ready(&daemon).await;
    let bodies: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"object":"page","entry":[{{"id":"{}","time":1,"messaging":[{{"message":{{"mid":"m_{i}"}}}}]}}]}}"#,
                7300000000u64 + i % 3
            )
        })
        .collect();
    for body in &bodies {
        assert_eq!(post_signed(&daemon.address, body).await, 200);
    }
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    let sink = crate::sink::Sink::start_on(TcpListener::bind(("127.0.0.1", bot_port)).unwrap());
    let mut daemon = start_daemon_with(dir.path(), &key, &graph, "second.log", &extra);
    wait_ready(&daemon).await;
    let all = poll_until(Duration::from_secs(20), || {
        let got: std::collections::HashSet<Vec<u8>> = sink.received().iter().map(|r| r.body.to_vec()).collect();
        bodies.iter().all(|b| got.contains(b.as_bytes()))
    })
    .await;
    daemon.child.kill().unwrap();
    let _ = daemon.child.wait();
    assert!(
        all,
        "{} of {} forwards arrived; log: {}",
        sink.count(),
        bodies.len(),
        std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
    );
    // In arrival order per Page.
    for page in 0..3u64 {
        let lane: Vec<String> = sink
            .received()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .filter(|b| b.contains(&format!("\"{}\"", 7300000000u64 + page)))
            .collect();
        let mut expected: Vec<String> =
            bodies.iter().filter(|b| b.contains(&format!("\"{}\"", 7300000000u64 + page))).cloned().collect();
        expected.dedup();
        let mut seen = lane.clone();
        seen.dedup();
        assert_eq!(seen, expected, "lane {page} out of order");
    }
}
