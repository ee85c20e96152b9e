//! The operator CLI (docs/contract.md §6, docs/cli.md): `pages`, `resync`, `status`, `webhook
//! send`, `api-key`, `outbox`, against a running app (over its control socket) and against a
//! data dir with no daemon; `--json` shapes, exit codes, completions and the man page.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use pagesync_actors::{Store, StoreConfig};
use serde_json::Value;

use crate::helpers::{TestApp, base_env, spawn_app, spawn_emulator};
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
    let (code, out, err) = run(&app, &["resync", "7001", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows, serde_json::json!([{"id": "7001", "written": true, "status": "synced"}]));
    let (code, out, _) = run(&app, &["resync", "7999", "--json"]).await;
    assert_eq!(code, 1, "a Page not refreshed: {out}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["written"], false);
    assert_eq!(rows[0]["status"], "not connected");

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
    let (code, out, err) = run(&app, &["webhook", "send", "--page", "7002", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["url"], format!("{}/facebook/webhook", app.address));
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"], "{\"status\":\"success\"}");
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
    for command in ["pages", "status"] {
        let (code, out, err) = run_in(dir.path(), &[command.into()], env.clone());
        assert_eq!(code, 69, "{command}: EX_UNAVAILABLE (docs/cli.md): {out}{err}");
        assert!(err.contains("does not answer on its control socket"), "{err}");
    }
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

// ----- api-key and outbox ------------------------------------------------------------

/// `GET path` on the app with `Authorization: Bearer key`.
async fn api_status(app: &TestApp, path: &str, key: &str) -> u16 {
    let resp = app.client.get(format!("{}{path}", app.address)).bearer_auth(key).send().await.unwrap();
    resp.status().as_u16()
}

#[actix_web::test]
async fn api_key_create_list_and_revoke_go_through_the_running_daemon() {
    let app = spawn_app().await;
    let (code, out, err) = run(&app, &["api-key", "create", "bot-1", "--scope", "pages:read,tokens:read"]).await;
    assert_eq!(code, 0, "{err}");
    let key = out.trim().to_owned();
    assert!(key.starts_with("psk_") && key.len() >= 47 && !key.contains(' '), "{out}");
    assert!(err.contains("shown only this once"), "{err}");
    assert_eq!(api_status(&app, "/api/v1/pages", &key).await, 200, "the daemon knows the key at once");

    let (code, out, err) = run(&app, &["api-key", "create", "reader", "--scope", "pages:read"]).await;
    assert_eq!(code, 0, "{err}");
    let reader = out.trim().to_owned();
    assert_eq!(api_status(&app, "/api/v1/pages/1/token", &reader).await, 403);

    let (code, out, err) = run(&app, &["api-key", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(&key[4..]) && !out.contains(&reader[4..]), "a key is listed: {out}");
    let keys: Value = serde_json::from_str(&out).unwrap();
    let rows = keys.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "bot-1");
    assert_eq!(rows[0]["scopes"], serde_json::json!(["pages:read", "tokens:read"]));
    assert!(rows[0]["created"].as_u64().is_some());
    assert!(rows[0]["last_used"].as_u64().is_some(), "bot-1 was used");
    assert!(rows[1]["id"].as_str().unwrap().starts_with("ak_"));
    let (code, out, _) = run(&app, &["api-key", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().starts_with("bot-1"), "{out}");
    assert!(!out.contains(&key[4..]));

    // Mistakes: exit 1 with a clear message.
    for (args, says) in [
        (vec!["api-key", "create", "bot-1", "--scope", "pages:read"], "already exists"),
        (vec!["api-key", "create", "other", "--scope", "pages:write"], "unknown scope"),
        (vec!["api-key", "create", "bad name", "--scope", "pages:read"], "key name"),
        (vec!["api-key", "revoke", "nobody"], "no API key is named nobody"),
    ] {
        let (code, _, err) = run(&app, &args).await;
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    let (code, out, err) = run(&app, &["api-key", "create", "scripted", "--scope", "pages:read", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("psk_"), "{out}");
    assert_eq!(created["name"], "scripted");
    assert_eq!(created["scopes"], serde_json::json!(["pages:read"]));
    assert_eq!(created["last_used"], Value::Null);
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["created", "id", "key", "last_used", "name", "scopes"]);
    assert_eq!(api_status(&app, "/api/v1/pages", created["key"].as_str().unwrap()).await, 200);
    let (code, out, err) = run(&app, &["api-key", "revoke", "scripted", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let revoked: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(revoked["id"], created["id"]);
    assert!(revoked.get("key").is_none(), "{out}");

    let (code, out, err) = run(&app, &["api-key", "revoke", "bot-1"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bot-1") && out.contains("revoked"), "{out}");
    assert_eq!(api_status(&app, "/api/v1/pages", &key).await, 401, "a revoked key works");
    assert_eq!(api_status(&app, "/api/v1/pages", &reader).await, 200);
}

#[actix_web::test]
async fn api_keys_made_without_a_daemon_work_once_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let key = pagesync_actors::EncryptionKey::generate().unwrap();
    let env: Vec<(String, String)> =
        base_env(&dir.path().join("data"), "http://127.0.0.1:9", &key).into_iter().collect();
    let run_offline = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        run_in(dir.path(), &args, env.clone())
    };
    let (code, out, err) = run_offline(&["api-key", "create", "offline", "--scope", "pages:read"]);
    assert_eq!(code, 0, "{err}");
    let api_key = out.trim().to_owned();
    let (code, _, err) = run_offline(&["api-key", "create", "gone", "--scope", "tokens:read"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_offline(&["api-key", "revoke", "gone"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_offline(&["api-key", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["name"], "offline");
    assert_eq!(rows[0]["last_used"], Value::Null);
    let (code, _, err) = run_offline(&["api-key", "revoke", "gone"]);
    assert_eq!(code, 1);
    assert!(err.contains("no API key is named gone"), "{err}");

    let app = crate::helpers::start_app(dir, key, spawn_emulator(), Default::default()).await;
    assert_eq!(api_status(&app, "/api/v1/pages", &api_key).await, 200);
}

/// An app whose bot refuses everything, with one forward already dead-lettered.
async fn app_with_a_dead_forward() -> (TestApp, crate::sink::Sink) {
    use crate::sink::{Answer, Sink};
    let sink = Sink::start();
    sink.set_sticky(Some(Answer::Status(503, None)));
    let env = vec![("PAGESYNC_FORWARD_URL", sink.url.clone()), ("PAGESYNC_FORWARD_MAX_AGE", "1s".to_owned())];
    let app = crate::helpers::spawn_app_with(crate::helpers::Options { env, ..Default::default() }).await;
    assert_eq!(app.post_webhook(&crate::helpers::delivery(&["7501"])).await.status(), 200);
    let dead = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        app.get("/metrics").await.text().await.unwrap().contains("pagesync_outbox_dead{kind=\"forward\"} 1")
    })
    .await;
    assert!(dead, "the forward was not dead-lettered");
    (app, sink)
}

#[actix_web::test]
async fn outbox_lists_dead_letters_and_retry_puts_them_back_through_the_daemon() {
    let (app, sink) = app_with_a_dead_forward().await;
    let (code, out, err) = run(&app, &["outbox", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dead"], serde_json::json!({"forward": 1, "event": 0}));
    assert_eq!(report["pending"], serde_json::json!({"forward": 0, "event": 0}));
    let item = &report["items"][0];
    assert_eq!(item["kind"], "forward");
    assert_eq!(item["state"], "dead");
    assert_eq!(item["lane"], "7501");
    assert!(item["attempts"].as_u64().unwrap() >= 2, "{item}");
    assert!(item["last_error"].as_str().unwrap().contains("503"), "{item}");
    assert!(item["age_seconds"].as_u64().is_some());
    let id = item["id"].as_str().unwrap().to_owned();

    let (code, out, _) = run(&app, &["outbox"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("forward: 0 pending, 1 dead"), "{out}");
    assert!(out.contains(&id), "{out}");

    let (code, _, err) = run(&app, &["outbox", "retry"]).await;
    assert_eq!(code, 2, "neither ids nor --all-dead");
    assert!(err.contains("--all-dead"), "{err}");
    let (code, out, err) = run(&app, &["outbox", "retry", "fwd_not_there"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not dead-lettered"), "{err}");

    // The bot is back: the dead forward goes out again.
    sink.set_sticky(None);
    let before = sink.count();
    let (code, out, err) = run(&app, &["outbox", "retry", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1 dead-lettered item(s) put back in line"), "{out}");
    let sent = crate::helpers::eventually(std::time::Duration::from_secs(10), || async { sink.count() > before }).await;
    assert!(sent, "the retried forward was not sent");
    let got = sink.received();
    assert_eq!(got.last().unwrap().header("x-pagesync-delivery"), Some(id.as_str()), "same delivery id");
    let (code, out, err) = run(&app, &["outbox", "retry", "--all-dead"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("0 dead-lettered"), "{out}");
    let (code, out, err) = run(&app, &["outbox", "retry", "fwd_not_there", "--json"]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), serde_json::json!({"moved": 0, "named": 1}));
}

#[actix_web::test]
async fn outbox_and_outbox_retry_work_without_a_daemon() {
    let (app, sink) = app_with_a_dead_forward().await;
    let data = app.data_dir();
    let mut key_env = base_env(&data, "http://127.0.0.1:9", &app.key);
    // The bot is reachable and now answers 200: still, only a daemon delivers.
    key_env.insert("PAGESYNC_FORWARD_URL".into(), sink.url.clone());
    sink.set_sticky(None);
    let (dir, _, _) = app.stop().await;
    let sent_before = sink.count();
    let env: Vec<(String, String)> = key_env.into_iter().collect();
    let run_offline = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        run_in(dir.path(), &args, env.clone())
    };
    let (code, out, err) = run_offline(&["outbox", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dead"]["forward"], 1, "{out}");
    let id = report["items"][0]["id"].as_str().unwrap().to_owned();
    let (code, _, _) = run_offline(&["outbox", "retry"]);
    assert_eq!(code, 2);
    let (code, out, err) = run_offline(&["outbox", "retry", "--all-dead"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1 dead-lettered item(s) put back in line"), "{out}");
    let (code, out, err) = run_offline(&["outbox", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dead"]["forward"], 0, "{out}");
    assert_eq!(report["pending"]["forward"], 1, "{out}");
    assert_eq!(report["items"][0]["id"], id.as_str());
    assert_eq!(report["items"][0]["state"], "pending");
    assert_eq!(report["items"][0]["attempts"], 0, "an offline command tried to deliver: {out}");
    assert_eq!(sink.count(), sent_before, "an offline command delivered to the bot");
}

// ----- status ------------------------------------------------------------------------

/// Two Pages: 7601 synced, 7602 refused by Meta (code 190, never synced).
async fn app_with_a_synced_and_a_refused_page() -> TestApp {
    let app = spawn_app().await;
    app.connect_page("7601", "t1", "Fine Page").await;
    app.connect_page("7602", "t2", "Refused Page").await;
    app.graph.set_sticky_fault("7602", Some(pagesync::emulator::Fault::GraphError(190)));
    let (code, out, err) = run(&app, &["resync", "7601"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(&app, &["resync", "7602"]).await;
    assert_eq!(code, 1, "{out}");
    app
}

/// What both paths report alike: Pages, depths, the stalest Page, the errors.
fn assert_status_body(report: &Value) {
    assert_eq!(
        report["pages"],
        serde_json::json!({"total": 2, "pending": 0, "synced": 1, "error": 0, "rate_limited": 0,
                           "needs_reauth": 1, "disconnected": 0})
    );
    assert_eq!(report["inbox_depth"], 0);
    assert_eq!(
        report["outbox"],
        serde_json::json!({"pending": {"forward": 0, "event": 0}, "dead": {"forward": 0, "event": 0}})
    );
    let stalest = &report["stalest"];
    assert_eq!(stalest["id"], "7602", "never synced is stalest: {report}");
    assert_eq!(stalest["last_sync"], Value::Null);
    assert_eq!(stalest["age_seconds"], Value::Null);
    assert_eq!(stalest["status"], "needs_reauth");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0]["id"], "7602");
    assert_eq!(errors[0]["code"], 190);
    assert!(errors[0]["at"].as_u64().is_some());
    assert!(!errors[0]["error"].as_str().unwrap().contains("t2"), "a token in the report");
    assert!(report["generated_at"].as_u64().is_some());
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["daemon", "errors", "generated_at", "inbox_depth", "outbox", "pages", "stalest"]);
}

#[actix_web::test]
async fn status_reports_through_the_running_daemon() {
    let app = app_with_a_synced_and_a_refused_page().await;
    let (code, out, err) = run(&app, &["status", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_status_body(&report);
    let daemon = &report["daemon"];
    assert_eq!(daemon["running"], true);
    // The test app's settings carry the address its listener got (see helpers::spawn).
    assert!(daemon["bind"].as_str().is_some_and(|b| b.starts_with("127.0.0.1:")), "{daemon}");
    assert_eq!(format!("http://{}", daemon["listen"].as_str().unwrap()), app.address, "the bound address");
    assert!(daemon["pid"].as_u64().is_some());

    let (code, out, err) = run(&app, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("daemon:   running (pid "), "{out}");
    assert!(lines[0].ends_with(&format!("listening on {}", app.address.trim_start_matches("http://"))), "{out}");
    assert!(lines[1].starts_with("pages:    2 (1 synced, 0 pending"), "{out}");
    assert_eq!(lines[2], "inbox:    0 deliveries waiting");
    assert_eq!(lines[3], "outbox:   forward 0 pending, 0 dead; event 0 pending, 0 dead");
    // No name: the name comes from page_data.json, which a never-synced Page lacks.
    assert_eq!(lines[4], "stalest:  7602: never synced [needs_reauth]", "{out}");
    assert_eq!(lines[5], "errors:   (newest first)");
    assert!(lines[6].contains("  7602  needs_reauth  ") && lines[6].contains("190"), "{out}");
}

#[actix_web::test]
async fn status_without_a_daemon_reads_the_store_and_says_not_running() {
    let app = app_with_a_synced_and_a_refused_page().await;
    let env: Vec<(String, String)> = base_env(&app.data_dir(), "http://127.0.0.1:9", &app.key).into_iter().collect();
    let (dir, _, _) = app.stop().await;
    let (code, out, err) =
        run_in(dir.path(), &["status".into(), "--json".into(), "--bind".into(), "127.0.0.1:5999".into()], env.clone());
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_status_body(&report);
    assert_eq!(
        report["daemon"],
        serde_json::json!({"running": false, "bind": "127.0.0.1:5999", "listen": null, "pid": null})
    );
    let (code, out, err) = run_in(dir.path(), &["status".into()], env);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("daemon:   not running (PAGESYNC_BIND is 127.0.0.1:0)"), "{out}");
}

// ----- exit codes, completions, man ---------------------------------------------------

#[test]
fn exit_codes_follow_the_table_in_docs_cli() {
    let dir = tempfile::tempdir().unwrap();
    let key = pagesync_actors::EncryptionKey::generate().unwrap();
    let full: Vec<(String, String)> =
        base_env(&dir.path().join("data"), "http://127.0.0.1:9", &key).into_iter().collect();
    // 2: a configuration flag the command does not take.
    let (code, _, err) = run_in(dir.path(), &["keygen".into(), "--facebook-app-id".into(), "1".into()], Vec::new());
    assert_eq!(code, 2, "{err}");
    // 78: no daemon, and the configuration to open the store is incomplete.
    let partial: Vec<(String, String)> = full.iter().filter(|(k, _)| k != "FACEBOOK_APP_SECRET").cloned().collect();
    let (code, _, err) = run_in(dir.path(), &["pages".into()], partial);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("FACEBOOK_APP_SECRET"), "{err}");
    // check-config reports problems with 1, and its --json report is its output.
    let (code, out, _) = run_in(dir.path(), &["check-config".into(), "--json".into()], Vec::new());
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], false);
    assert!(report["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().starts_with("FACEBOOK_APP_ID")));
    let (code, out, err) = run_in(dir.path(), &["check-config".into(), "--json".into()], full);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["bind"], "127.0.0.1:0");
    assert!(report["sources"]["env"].as_u64().unwrap() > 0, "{out}");
    // keygen --json names the variable.
    let (code, out, _) = run_in(dir.path(), &["keygen".into(), "--json".into()], Vec::new());
    assert_eq!(code, 0);
    let key: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(key["variable"], "PAGESYNC_ENCRYPTION_KEY");
    assert!(pagesync_actors::EncryptionKey::from_base64(key["value"].as_str().unwrap()).is_ok());
}

#[test]
fn bash_completions_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_in(dir.path(), &["completions".into(), "bash".into()], Vec::new());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("complete ") && out.contains("pagesync"), "{out}");
    for sub in ["serve", "check-config", "pages", "resync", "status", "api-key", "outbox", "completions", "man"] {
        assert!(out.contains(sub), "no {sub} in the bash completions");
    }
    for shell in ["zsh", "fish"] {
        let (code, out, _) = run_in(dir.path(), &["completions".into(), shell.into()], Vec::new());
        assert_eq!(code, 0, "{shell}");
        assert!(out.contains("status"), "{shell}");
    }
    let (code, _, _) = run_in(dir.path(), &["completions".into(), "tcsh".into()], Vec::new());
    assert_eq!(code, 2, "an unknown shell is a usage error");
}

#[test]
fn man_prints_a_man_page_naming_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_in(dir.path(), &["man".into()], Vec::new());
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(".ie") || out.starts_with(".TH"), "{}", &out[..80.min(out.len())]);
    assert!(out.contains(".TH pagesync 1"));
    assert!(out.contains(".SH NAME") && out.contains(".SH SYNOPSIS"));
    for sub in [
        "SERVE",
        "SANDBOX",
        "CHECK-CONFIG",
        "KEYGEN",
        "PAGES",
        "RESYNC",
        "STATUS",
        "WEBHOOK SEND",
        "API-KEY CREATE",
        "API-KEY LIST",
        "API-KEY REVOKE",
        "OUTBOX",
        "OUTBOX RETRY",
        "ROTATE-KEY",
        "COMPLETIONS",
        "MAN",
    ] {
        assert!(out.contains(&format!(".SH \"PAGESYNC {sub}\"")), "no section for {sub}");
    }
}
