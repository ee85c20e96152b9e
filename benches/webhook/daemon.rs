//! c. The daemon: its configuration, `check-config`, the `pagesync serve` process, its
//! memory, stop and log, and plain HTTP requests to it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use pagesync::verify::sign_sha256;
use pagesync_actors::EncryptionKey;

use super::wrk::{Signed, delivery_body};
use super::{APP_SECRET, say};

pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

pub(crate) fn daemon_env(data_dir: &Path, port: u16, graph_port: u16, key: &EncryptionKey) -> Vec<(String, String)> {
    [
        ("FACEBOOK_APP_ID", "123456".to_owned()),
        ("FACEBOOK_APP_SECRET", APP_SECRET.to_owned()),
        ("FACEBOOK_REDIRECT_URI", format!("http://127.0.0.1:{port}/facebook/callback")),
        ("FACEBOOK_WEBHOOK_ADDRESS", format!("http://127.0.0.1:{port}/facebook/webhook")),
        ("FACEBOOK_VERIFY_TOKEN", "bench-verify-token".to_owned()),
        ("FACEBOOK_GRAPH_URL", format!("http://127.0.0.1:{graph_port}")),
        ("SHOPIFY_API_KEY", "bench-shopify-key".to_owned()),
        ("SHOPIFY_API_SECRET", "bench-shopify-secret".to_owned()),
        ("SHOPIFY_REDIRECT_URI", format!("http://127.0.0.1:{port}/shopify/callback")),
        ("STATE_TOKEN_SECRET", "bench-state-token-secret-0123456789abcdef".to_owned()),
        ("PAGESYNC_ENCRYPTION_KEY", key.to_base64()),
        ("PAGESYNC_DATA_DIR", data_dir.display().to_string()),
        ("PAGESYNC_BIND", format!("127.0.0.1:{port}")),
        ("PAGESYNC_LOG", "warn".to_owned()),
        ("PAGESYNC_LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A `pagesync` command with exactly the bench's configuration: every other pagesync
/// variable and systemd hand-over is removed, and it runs in the temp dir so that no
/// `.env` of the developer's is read.
pub(crate) fn pagesync_command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pagesync"));
    cmd.current_dir(dir);
    for var in pagesync::config::VARS {
        cmd.env_remove(var.name);
    }
    for var in ["CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

pub(crate) fn check_config(dir: &Path, env: &[(String, String)]) -> anyhow::Result<()> {
    let out = pagesync_command(dir, env)
        .arg("check-config")
        .output()
        .with_context(|| format!("cannot run {}", env!("CARGO_BIN_EXE_pagesync")))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "pagesync check-config refused the bench's configuration ({}):\n{text}", out.status);
    say(&format!("check-config: {}", text.trim()));
    Ok(())
}

pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
    pub(crate) addr: SocketAddr,
}

impl Daemon {
    pub(crate) fn spawn(dir: &Path, env: &[(String, String)], port: u16) -> anyhow::Result<Daemon> {
        let log = dir.join("pagesync.log");
        let file = std::fs::File::create(&log).context("cannot create the daemon log")?;
        let child = pagesync_command(dir, env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start pagesync serve")?;
        Ok(Daemon { child, log, addr: SocketAddr::from(([127, 0, 0, 1], port)) })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_tail(&self) -> String {
        LogSummary::read(&self.log, 0).tail(30)
    }

    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("pagesync exited during the run ({status}); log:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// Polls `/readyz` until it answers 200.
    pub(crate) fn wait_ready(&mut self, deadline: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < deadline {
            self.ensure_running()?;
            match http(self.addr, "GET", "/readyz", &[], b"") {
                Ok((200, _)) => return Ok(start.elapsed()),
                Ok((status, body)) => last = format!("{status} {}", body.trim()),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("pagesync not ready after {deadline:?} (last /readyz: {last}); log:\n{}", self.log_tail())
    }

    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in {path}"))?;
            let kib: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("cannot parse {line:?}"))?;
            Ok(kib / 1024.0)
        };
        Ok(Memory { hwm_mib: field("VmHWM:")?, rss_mib: field("VmRSS:")? })
    }

    /// Sends SIGTERM and waits for the exit; SIGKILL after `deadline`.
    pub(crate) fn terminate(&mut self, deadline: Duration) -> anyhow::Result<Stop> {
        let start = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().context("cannot run kill")?;
        ensure!(sent.success(), "kill -TERM {} failed", self.pid());
        while start.elapsed() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Stop { status: Some(status), took: start.elapsed() });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(Stop { status: None, took: start.elapsed() })
    }
}

impl Drop for Daemon {
    /// A harness failure must not leave a daemon behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) struct Memory {
    pub(crate) hwm_mib: f64,
    pub(crate) rss_mib: f64,
}

pub(crate) struct Stop {
    /// `None`: it did not stop in time and was killed.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) took: Duration,
}

impl Stop {
    pub(crate) fn clean(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub(crate) fn short(&self) -> String {
        match self.status {
            Some(s) => match s.code() {
                Some(code) => format!("exit {code}"),
                None => s.to_string(),
            },
            None => "HUNG, killed".to_owned(),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self.status {
            Some(s) => format!("pagesync {s}"),
            None => "pagesync did not exit within 30 s of SIGTERM and was killed with SIGKILL".to_owned(),
        }
    }
}

/// What the daemon logged (at `warn`, so every line is worth a look) after its first
/// `skip` lines.
pub(crate) struct LogSummary {
    pub(crate) all: Vec<String>,
    pub(crate) lines: usize,
    pub(crate) by_message: Vec<(String, usize)>,
}

impl LogSummary {
    pub(crate) fn read(path: &Path, skip: usize) -> LogSummary {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for line in all.iter().skip(skip) {
            let key = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => format!(
                    "{} {}",
                    v["level"].as_str().unwrap_or("?"),
                    v["message"].as_str().or_else(|| v["fields"]["message"].as_str()).unwrap_or(line)
                ),
                Err(_) => line.clone(),
            };
            *counts.entry(key).or_default() += 1;
        }
        let mut by_message: Vec<(String, usize)> = counts.into_iter().collect();
        by_message.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        LogSummary { lines: all.len().saturating_sub(skip), all, by_message }
    }

    pub(crate) fn tail(&self, n: usize) -> String {
        self.all[self.all.len().saturating_sub(n)..].join("\n")
    }

    pub(crate) fn top(&self, n: usize) -> String {
        self.by_message.iter().take(n).map(|(m, c)| format!("{c} x \"{m}\"")).collect::<Vec<_>>().join("; ")
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); status and body.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    http_within(addr, method, path, headers, body, Duration::from_secs(5))
}

/// [`http`] for an answer that may take longer: `timeout` between two reads.
pub(crate) fn http_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    let _ = write!(req, "Content-Length: {}\r\n\r\n", body.len());
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP answer: {:?}", answer.lines().next()))?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// One good delivery must be answered 200 success and a forged one 401, else the load
/// numbers would measure something else.
pub(crate) fn smoke_test(addr: SocketAddr, page: &str) -> anyhow::Result<()> {
    let good = Signed::new(delivery_body(page, 1_767_225_599, 0));
    let headers = good.headers();
    let (status, body) = http(addr, "POST", "/facebook/webhook", &headers, good.body.as_bytes())?;
    ensure!(status == 200 && body.contains("success"), "a signed delivery got {status} {body}");
    let wrong = sign_sha256("wrong secret", good.body.as_bytes());
    let forged = [("Content-Type", "application/json"), ("X-Hub-Signature-256", wrong.as_str())];
    let (status, _) = http(addr, "POST", "/facebook/webhook", &forged, good.body.as_bytes())?;
    ensure!(status == 401, "a delivery with a wrong signature got {status}, not 401");
    Ok(())
}
