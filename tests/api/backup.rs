//! `pagesync backup` while the daemon runs, `pagesync restore` into a new data dir, and
//! a daemon on the restored dir that serves the same Pages, tokens and API keys.

use std::path::Path;
use std::process::Command;

use pagesync_actors::api_keys::{CreateApiKey, KeyName, Scope};
use pagesync_actors::messages::SyncStatus;
use serde_json::Value;

use crate::helpers::{Options, TestApp, base_env, delivery, spawn_app, start_app};

const BIN: &str = env!("CARGO_BIN_EXE_pagesync");

async fn cli(dir: &Path, data_dir: &Path, app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let env: Vec<(String, String)> = base_env(data_dir, &app.graph.url, &app.key).into_iter().collect();
    let (dir, args) = (dir.to_owned(), args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>());
    actix_web::rt::task::spawn_blocking(move || {
        let out = Command::new(BIN).args(&args).current_dir(&dir).env_clear().envs(env).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    })
    .await
    .unwrap()
}

async fn pages_api(app: &TestApp, key: &str) -> Value {
    let resp = app
        .client
        .get(format!("{}/api/v1/pages", app.address))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[actix_web::test]
async fn a_backup_taken_while_serving_restores_to_a_daemon_that_serves_the_same_pages() {
    let app = spawn_app().await;
    for (page, name) in [("7101", "Maple"), ("7102", "Harbor")] {
        app.connect_page(page, &format!("tok-{page}"), name).await;
        assert_eq!(app.post_webhook(&delivery(&[page])).await.status(), 200);
        app.wait_for_status(page, SyncStatus::Synced).await;
    }
    let created = app
        .actors
        .api_keys
        .send(CreateApiKey {
            name: KeyName::parse("bot").unwrap(),
            scopes: Scope::parse_list("pages:read,tokens:read").unwrap(),
        })
        .await
        .unwrap()
        .unwrap();
    let key = created.key.expose().to_owned();
    let before = pages_api(&app, &key).await;
    let file_before = std::fs::read(app.page_file("7101")).unwrap();

    // Through the daemon's socket: the daemon holds the store, so only it can do this.
    let backup = app.dir.path().join("pagesync.backup");
    let (code, out, err) = cli(app.dir.path(), &app.data_dir(), &app, &["backup", backup.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("backup written to") && out.contains("2 Page files"), "{out}");
    let (code, _, err) = cli(app.dir.path(), &app.data_dir(), &app, &["backup", backup.to_str().unwrap()]).await;
    assert_eq!(code, 1, "never over an existing file");
    assert!(err.contains("already exists"), "{err}");

    // Restoring onto the live data dir is refused.
    let (code, _, err) = cli(app.dir.path(), &app.data_dir(), &app, &["restore", backup.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("is running"), "{err}");

    // Restore into a new data dir and start a daemon on it with the same key.
    let (_old_dir, key_of_store, graph) = app.stop().await;
    let target = tempfile::tempdir().unwrap();
    let restored_data = target.path().join("data");
    let graph_url = graph.url.clone();
    let env: Vec<(String, String)> = base_env(&restored_data, &graph_url, &key_of_store).into_iter().collect();
    let out = Command::new(BIN)
        .args(["restore", backup.to_str().unwrap()])
        .current_dir(target.path())
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = start_app(target, key_of_store, graph, Options::default()).await;
    assert_eq!(pages_api(&restored, &key).await, before, "the same Pages, through the same API key");
    assert_eq!(std::fs::read(restored.page_file("7101")).unwrap(), file_before);
    let token = restored
        .client
        .get(format!("{}/api/v1/pages/7101/token", restored.address))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    assert_eq!(token["access_token"], "tok-7101", "the sealed token opens with the same key: {token}");
    restored.wait_idle().await;
}
