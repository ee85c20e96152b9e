//! One operator command that works as root: `sudo pagesync pages` reaches the daemon
//! over its control socket although the daemon runs as another user, and without a
//! daemon it opens the store as the data dir's owner, leaving no root-owned file.
//! These need root to set up (another user, `chown`); CI runs as root. Run as
//! anyone else they only check the refusal a non-root user gets.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pagesync_actors::EncryptionKey;

use crate::helpers::{base_env, spawn_emulator};

const BIN: &str = env!("CARGO_BIN_EXE_pagesync");
/// `nobody` on Debian.
const OTHER: u32 = 65_534;

fn is_root() -> bool {
    pagesync::privilege::is_root()
}

/// A data dir owned by [`OTHER`], reachable by it, and the configuration for it.
fn other_users_data_dir(dir: &Path, graph_url: &str) -> Vec<(String, String)> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(OTHER), Some(OTHER)).unwrap();
    let key = EncryptionKey::generate().unwrap();
    base_env(&data, graph_url, &key).into_iter().collect()
}

fn pages(dir: &Path, env: &[(String, String)]) -> (i32, String, String) {
    let out = Command::new(BIN).arg("pages").current_dir(dir).env_clear().envs(env.to_vec()).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Every file and folder below `dir`, with its owner.
fn owners(dir: &Path, out: &mut Vec<(String, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push((path.display().to_string(), std::fs::symlink_metadata(&path).unwrap().uid()));
        if path.is_dir() {
            owners(&path, out);
        }
    }
}

#[actix_web::test]
async fn as_root_without_a_daemon_the_store_is_opened_as_the_data_dirs_owner() {
    let dir = tempfile::tempdir().unwrap();
    let graph = spawn_emulator();
    if !is_root() {
        // Nothing to switch: the command runs as its user and refuses nothing.
        let key = EncryptionKey::generate().unwrap();
        let env: Vec<(String, String)> = base_env(&dir.path().join("data"), &graph.url, &key).into_iter().collect();
        assert_eq!(pages(dir.path(), &env).0, 0);
        return;
    }
    let env = other_users_data_dir(dir.path(), &graph.url);
    let (code, out, err) = pages(dir.path(), &env);
    assert_eq!(code, 0, "{out}{err}");
    let mut found = Vec::new();
    owners(&dir.path().join("data"), &mut found);
    assert!(found.iter().any(|(p, _)| p.ends_with("/db")), "the store was opened: {found:?}");
    let foreign: Vec<_> = found.iter().filter(|(_, uid)| *uid != OTHER).collect();
    assert!(foreign.is_empty(), "files not owned by the data dir's owner: {foreign:?}");

    // A data dir that does not exist yet belongs to whoever owns where it will be.
    let parent = dir.path().join("theirs");
    std::fs::create_dir(&parent).unwrap();
    std::os::unix::fs::chown(&parent, Some(OTHER), Some(OTHER)).unwrap();
    let mut fresh = env.clone();
    fresh.retain(|(k, _)| k != "PAGESYNC_DATA_DIR");
    fresh.push(("PAGESYNC_DATA_DIR".into(), parent.join("data").display().to_string()));
    let (code, out, err) = pages(dir.path(), &fresh);
    assert_eq!(code, 0, "{out}{err}");
    let mut found = Vec::new();
    owners(&parent, &mut found);
    assert!(!found.is_empty() && found.iter().all(|(_, uid)| *uid == OTHER), "{found:?}");
}

#[actix_web::test]
async fn as_root_the_daemon_of_another_user_answers_over_its_socket() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let graph = spawn_emulator();
    let mut env = other_users_data_dir(dir.path(), &graph.url);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    env.retain(|(k, _)| k != "PAGESYNC_BIND");
    env.push(("PAGESYNC_BIND".into(), format!("127.0.0.1:{port}")));
    // The daemon runs as OTHER, who may not reach the checkout (a clone in a 0700
    // `mktemp -d`): it gets a copy of the binary where it can, as an install would.
    let bin = dir.path().join("pagesync");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut daemon = Command::new(&bin)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .envs(env.clone())
        .uid(OTHER)
        .gid(OTHER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = dir.path().join("data").join(pagesync::control::SOCKET_NAME);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the daemon never opened its socket");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::metadata(&socket).unwrap().uid(), OTHER);

    // The daemon holds the store: only its answer over the socket can make this work.
    let (code, out, err) = pages(dir.path(), &env);
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("PAGE"), "{out}");
}
