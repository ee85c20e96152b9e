//! `pagesync sandbox` as a child process: started on loopback with its own data
//! dir, its URLs read from stdout, stopped with SIGINT (and killed on drop if the
//! test failed before that).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use crate::webdriver::{DEADLINE, POLL};

pub struct Sandbox {
    child: Option<Child>,
    /// The data dir the sandbox reported (`data dir:`).
    pub data_dir: PathBuf,
    /// The emulator's Page editor (`emulator:`).
    pub emulator: String,
    /// The daemon's dashboard (`dashboard:`).
    pub dashboard: String,
    /// Where a merchant starts (`open:`).
    pub open: String,
    stderr_log: PathBuf,
    _root: tempfile::TempDir,
}

impl Sandbox {
    /// Starts `pagesync sandbox --data-dir <tmp> --bind 127.0.0.1:0` and waits
    /// until it has printed its four URL lines (`open:` last).
    pub fn start() -> Sandbox {
        let root = tempfile::Builder::new().prefix("pagesync-sandbox-").tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let stderr_log = root.path().join("sandbox.stderr");
        let stderr = std::fs::File::create(&stderr_log).unwrap();

        let mut command = Command::new(env!("CARGO_BIN_EXE_pagesync"));
        command
            .arg("sandbox")
            .arg("--data-dir")
            .arg(&data)
            .args(["--bind", "127.0.0.1:0"])
            // No `.env` from the repository, no configuration from the caller's shell.
            .current_dir(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if ["PAGESYNC_", "SHOPIFY_", "FACEBOOK_", "STATE_TOKEN_SECRET"].iter().any(|prefix| key.starts_with(prefix))
            {
                command.env_remove(&*key);
            }
        }
        let mut child = command.spawn().expect("start `pagesync sandbox`");

        // Read stdout on a thread for as long as the sandbox runs (so it never
        // blocks on a full pipe); hand each line over.
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                    continue;
                }
            }
        });

        let mut sandbox = Sandbox {
            child: Some(child),
            data_dir: PathBuf::new(),
            emulator: String::new(),
            dashboard: String::new(),
            open: String::new(),
            stderr_log,
            _root: root,
        };
        let (mut data_dir, mut emulator, mut dashboard) = (None, None, None);
        let mut seen = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        let open = loop {
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "`pagesync sandbox` printed no `open:` line within {DEADLINE:?}; stdout so far:\n{}",
                    seen.join("\n")
                );
            }
            let line = match lines.recv_timeout(deadline - now) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = sandbox.child.as_mut().unwrap().wait().unwrap();
                    panic!("`pagesync sandbox` closed stdout ({status}); stdout:\n{}", seen.join("\n"));
                }
            };
            seen.push(line.clone());
            let Some((key, value)) = line.split_once(": ") else { continue };
            let value = value.trim().to_owned();
            match key.trim() {
                "data dir" => data_dir = Some(value),
                "emulator" => emulator = Some(value),
                "dashboard" => dashboard = Some(value),
                "open" => break value,
                _ => {}
            }
        };
        let missing = |what: &str| -> String {
            panic!("`pagesync sandbox` printed `open:` before `{what}:`; stdout:\n{}", seen.join("\n"))
        };
        sandbox.data_dir = PathBuf::from(data_dir.unwrap_or_else(|| missing("data dir")));
        sandbox.emulator = emulator.unwrap_or_else(|| missing("emulator"));
        sandbox.dashboard = dashboard.unwrap_or_else(|| missing("dashboard"));
        sandbox.open = open;
        sandbox
    }

    /// Stops the sandbox as Ctrl-C would and asserts it exits 0.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -INT {} failed", child.id());
        let deadline = Instant::now() + DEADLINE;
        let exit: ExitStatus = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`pagesync sandbox` did not exit within {DEADLINE:?} of SIGINT\n{}", self.stderr_tail());
            }
            std::thread::sleep(POLL);
        };
        assert!(exit.success(), "`pagesync sandbox` exited with {exit} after SIGINT\n{}", self.stderr_tail());
    }

    fn stderr_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- sandbox stderr (last 40 lines) ---\n{tail}")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("{}", self.stderr_tail());
            }
        }
    }
}
