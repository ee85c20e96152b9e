//! The operator CLI (SPEC §6): `pages`, `resync` and `webhook send`, against a running
//! app (over its control socket) and against a data dir with no daemon.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use pagesync_actors::{Store, StoreConfig};
use serde_json::Value;

use crate::helpers::{TestApp, base_env, spawn_app};
use crate::proxy::{RecordingProxy, proxy_env};

const BIN: &str = env!("CARGO_BIN_EXE_pagesync");

/// Runs the CLI with the app's configuration, off the HTTP workers.
async fn run(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    run_with(app, args, Vec::new()).await
}

/// Like [`run`], with more variables in the CLI's environment.
async fn run_with(app: &TestApp, args: &[&str], extra: Vec<(&'static str, String)>) -> (i32, String, String) {
    let mut env = base_env(&app.data_dir(), &app.graph.url, &app.key);
    env.insert("FACEBOOK_WEBHOOK_ADDRESS".into(), format!("{}/facebook/webhook", app.address));
    env.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let dir = app.dir.path().to_owned();
    actix_web::rt::task::spawn_blocking(move || run_in(&dir, &args, env.into_iter().collect())).await.unwrap()
}

fn run_in(dir: &Path, args: &[String], env: Vec<(String, String)>) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).current_dir(dir).env_clear().envs(env).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn the_control_socket_is_owner_only() {
    let app = spawn_app().await;
    let meta = std::fs::metadata(app.data_dir().join("control.sock")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[actix_web::test]
async fn pages_json_lists_connected_pages_through_the_running_daemon() {
    let app = spawn_app().await;
    let owner = app.connect_page("7001", "t", "Listed Page").await;
    let (code, out, err) = run(&app, &["resync", "7001"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("7001 refreshed (synced)"), "{out}");
    assert_eq!(app.graph.gets("7001"), 1, "the daemon did the refresh");

    let (code, out, err) = run(&app, &["pages", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let pages: Value = serde_json::from_str(&out).unwrap();
    let row = &pages.as_array().unwrap()[0];
    assert_eq!(row["id"], "7001");
    assert_eq!(row["name"], "Listed Page");
    assert_eq!(row["owner"], owner.to_string());
    assert_eq!(row["subscribed"], false);
    assert_eq!(row["subscription"], "pending");
    assert!(row["last_sync"].as_u64().is_some());
    assert_eq!(row["status"], "synced");
    let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "last_sync", "name", "owner", "status", "subscribed", "subscription"]);

    let (code, out, _) = run(&app, &["pages"]).await;
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().starts_with("7001"), "{out}");
}

#[actix_web::test]
async fn resync_refuses_bad_ids_and_needs_a_target() {
    let app = spawn_app().await;
    let (code, _, err) = run(&app, &["resync", "../etc"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("Page id"), "{err}");
    let (code, _, err) = run(&app, &["resync"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--all"), "{err}");
}

#[actix_web::test]
async fn webhook_send_delivers_a_signed_sample_and_prints_the_answer() {
    let app = spawn_app().await;
    app.connect_page("7002", "t", "Poked").await;
    let (code, out, err) = run(&app, &["webhook", "send", "--page", "7002", "--field", "name", "--value", "x"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "HTTP 200\n{\"status\":\"success\"}\n");
    app.wait_for_name("7002", "Poked").await;
    assert_eq!(app.stats().await.accepted, 1);
    // A wrong secret is refused by the daemon and the CLI says so.
    let mut env = base_env(&app.data_dir(), &app.graph.url, &app.key);
    env.insert("FACEBOOK_APP_SECRET".into(), "not-the-secret".into());
    let url = format!("{}/facebook/webhook", app.address);
    let dir = app.dir.path().to_owned();
    let (code, out, _) = actix_web::rt::task::spawn_blocking(move || {
        let args: Vec<String> =
            ["webhook", "send", "--page", "7002", "--url", &url].iter().map(|s| s.to_string()).collect();
        run_in(&dir, &args, env.into_iter().collect())
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(out.starts_with("HTTP 401"), "{out}");
}

#[test]
fn without_a_daemon_pages_opens_the_store_itself() {
    let dir = tempfile::tempdir().unwrap();
    let key = pagesync_actors::EncryptionKey::generate().unwrap();
    let env: Vec<(String, String)> =
        base_env(&dir.path().join("data"), "http://127.0.0.1:9", &key).into_iter().collect();
    let (code, out, err) = run_in(dir.path(), &["pages".into(), "--json".into()], env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]");
}

#[test]
fn a_store_held_by_a_silent_process_gives_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let key = pagesync_actors::EncryptionKey::generate().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let _held = Store::open(&StoreConfig::new(data.join("db"))).unwrap();
    let env: Vec<(String, String)> = base_env(&data, "http://127.0.0.1:9", &key).into_iter().collect();
    let (code, _, err) = run_in(dir.path(), &["pages".into()], env);
    assert_eq!(code, 1);
    assert!(err.contains("does not answer on its control socket"), "{err}");
}

#[actix_web::test]
async fn webhook_send_to_a_loopback_daemon_ignores_the_proxy_variables() {
    // The proxy variables are in the CLI process's real environment here: the daemon
    // URL is on 127.0.0.1, so the signed delivery must go straight to it.
    let app = spawn_app().await;
    let proxy = RecordingProxy::start().await;
    let (code, out, err) =
        run_with(&app, &["webhook", "send", "--page", "7003", "--field", "name"], proxy_env(&proxy)).await;
    let proxied: Vec<String> =
        proxy.connections().iter().map(|c| String::from_utf8_lossy(&c.bytes).into_owned()).collect();
    assert!(proxied.is_empty(), "the proxy saw: {proxied:?}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("HTTP 200"), "{out}");
}
