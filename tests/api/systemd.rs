//! systemd integration: the notify protocol against a fake notify socket, and the
//! shipped unit file.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagesync::systemd::Notifier;
use pagesync_actors::messages::Shutdown;

use crate::helpers::{Options, fast_tuning, spawn_app_with};

/// Reads datagrams until one satisfies `want` or `limit` passes; returns everything read.
async fn read_until(socket: &Arc<UnixDatagram>, limit: Duration, want: fn(&str) -> bool) -> (bool, Vec<String>) {
    let socket = socket.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = want(&message);
                seen.push(message);
                if hit {
                    return (true, seen);
                }
            }
        }
        (false, seen)
    })
    .await
    .unwrap()
}

#[actix_web::test]
async fn ready_watchdog_and_stopping_are_sent_and_a_wedged_actor_stops_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = Arc::new(UnixDatagram::bind(&path).unwrap());
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();

    let mut tuning = fast_tuning();
    tuning.notifier = Some(Arc::new(Notifier::new(path.to_str().unwrap()).unwrap()));
    tuning.watchdog = Some(Duration::from_millis(200));
    let app = spawn_app_with(Options { tuning, ..Options::default() }).await;

    let (ready, seen) = read_until(&socket, Duration::from_secs(5), |m| m.lines().any(|l| l == "READY=1")).await;
    assert!(ready, "no READY=1: {seen:?}");
    let (pinged, seen) = read_until(&socket, Duration::from_secs(5), |m| m.lines().any(|l| l == "WATCHDOG=1")).await;
    assert!(pinged, "no WATCHDOG=1: {seen:?}");
    assert!(seen.iter().any(|m| m.contains("STATUS=inbox 0")), "{seen:?}");

    // Wedge an actor: its mailbox closes, pings fail.
    app.actors.vault.send(Shutdown).await.unwrap();
    let (noticed, seen) =
        read_until(&socket, Duration::from_secs(5), |m| m.contains("STATUS=not answering: token_vault")).await;
    assert!(noticed, "the wedged actor was not noticed: {seen:?}");
    // From then on, three watchdog periods without a ping.
    let (pinged, seen) = read_until(&socket, Duration::from_millis(600), |m| m.contains("WATCHDOG=1")).await;
    assert!(!pinged, "WATCHDOG=1 sent while an actor is wedged: {seen:?}");

    let stopping = {
        let socket = socket.clone();
        actix_web::rt::spawn(async move {
            read_until(&socket, Duration::from_secs(10), |m| m.lines().any(|l| l == "STOPPING=1")).await
        })
    };
    let _ = app.stop().await;
    let (stopped, seen) = stopping.await.unwrap();
    assert!(stopped, "no STOPPING=1: {seen:?}");
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pagesync.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("LoadCredential="));
    // Point ExecStart at the binary under test so `verify` can check it exists (.ci/package
    // verifies the unit as the .deb installs it, with the packaged /usr/bin/pagesync).
    assert!(unit.contains("ExecStart=/usr/bin/pagesync serve"), "the .deb installs the binary as /usr/bin/pagesync");
    let unit = unit.replace("/usr/bin/pagesync", env!("CARGO_BIN_EXE_pagesync"));
    let path = dir.path().join("pagesync.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze must be installed (.ci/run installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {stderr}");
    assert!(!stderr.contains("Unknown key") && !stderr.contains("Failed to parse"), "{stderr}");
}

#[test]
fn the_unit_file_keeps_its_security_exposure_below_2() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pagesync.service");
    let unit = std::fs::read_to_string(path).unwrap();
    for line in ["PrivateUsers=yes", "PrivateIPC=yes", "SystemCallErrorNumber=EPERM"] {
        assert!(unit.lines().any(|l| l == line), "{line} is missing from the unit");
    }
    // The exposure is printed with one decimal and compared as ten times that: 19 lets
    // 1.9 through and fails 2.0 ("MEDIUM").
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=19", "--no-pager", path])
        .output()
        .expect("systemd-analyze must be installed (.ci/run installs systemd)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let overall = stdout.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_default();
    assert!(out.status.success(), "exposure at or above 2.0: {overall}\n{stdout}");
    assert!(overall.contains(" OK"), "{overall}");
}
