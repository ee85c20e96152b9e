//! Where the CPU goes during a measured run: the daemon, wrk, and the harness's own
//! threads (the emulator's server, the loaders) by name, from `/proc`. On a 2-core
//! machine they all compete; a lower ack rate with the same daemon CPU per delivery
//! means the daemon was starved, a higher CPU per delivery means it did more work.
//!
//! With `PAGESYNC_BENCH_PERF=DIR`, `perf record --call-graph dwarf` also samples the daemon for the
//! measured seconds into `DIR/<run>.perf.data` (read it with `perf report -i`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// CPU seconds used so far, by process and by harness thread name.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSample {
    daemon: f64,
    /// wrk and every other child the harness has waited for.
    children: f64,
    threads: BTreeMap<String, f64>,
}

/// The difference of two samples, with the deliveries acknowledged in between.
pub(crate) struct CpuUse {
    pub(crate) daemon: f64,
    pub(crate) children: f64,
    pub(crate) threads: BTreeMap<String, f64>,
    pub(crate) deliveries: u64,
}

fn ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0)
}

/// The fields after `comm` in a `/proc/.../stat` line (field 3 is index 0), and `comm`.
fn stat_fields(path: &str) -> Option<(String, Vec<u64>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest = text.get(close + 1..)?;
    // Field 3 (state) is not a number; keep positions by mapping it to 0.
    let fields = rest.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0)).collect();
    Some((comm, fields))
}

/// utime + stime (fields 14 and 15), and cutime + cstime (16 and 17), in ticks.
fn own_and_children(path: &str) -> Option<(String, u64, u64)> {
    let (comm, f) = stat_fields(path)?;
    let at = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    Some((comm, at(14) + at(15), at(16) + at(17)))
}

impl CpuSample {
    pub(crate) fn take(daemon_pid: u32) -> CpuSample {
        let tick = ticks_per_second();
        let daemon = own_and_children(&format!("/proc/{daemon_pid}/stat")).map_or(0.0, |(_, t, _)| t as f64 / tick);
        let children = own_and_children("/proc/self/stat").map_or(0.0, |(_, _, c)| c as f64 / tick);
        let mut threads = BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
            let path = format!("{}/stat", task.path().display());
            if let Some((comm, own, _)) = own_and_children(&path) {
                // "actix-rt|system:0" and friends: the digits tell threads apart, not roles.
                let name: String = comm.chars().filter(|c| !c.is_ascii_digit()).collect();
                *threads.entry(name).or_insert(0.0) += own as f64 / tick;
            }
        }
        CpuSample { daemon, children, threads }
    }

    pub(crate) fn since(&self, before: &CpuSample, deliveries: u64) -> CpuUse {
        let threads = self
            .threads
            .iter()
            .map(|(name, t)| (name.clone(), t - before.threads.get(name).copied().unwrap_or(0.0)))
            .filter(|(_, t)| *t >= 0.01)
            .collect();
        CpuUse { daemon: self.daemon - before.daemon, children: self.children - before.children, threads, deliveries }
    }
}

impl CpuUse {
    pub(crate) fn describe(&self) -> String {
        let per = if self.deliveries > 0 { self.daemon * 1e6 / self.deliveries as f64 } else { 0.0 };
        let threads: Vec<String> = self.threads.iter().map(|(n, t)| format!("{n} {t:.1}")).collect();
        format!(
            "CPU s: daemon {:.1} ({per:.0} µs per delivery), wrk {:.1}, harness threads: {}",
            self.daemon,
            self.children,
            threads.join(", ")
        )
    }

    /// Daemon CPU per acknowledged delivery, in µs.
    pub(crate) fn daemon_us_per_delivery(&self) -> f64 {
        if self.deliveries == 0 { 0.0 } else { self.daemon * 1e6 / self.deliveries as f64 }
    }
}

/// `perf record` of the daemon for `seconds`, when `PAGESYNC_BENCH_PERF` names a folder.
pub(crate) struct Perf(Option<Child>);

impl Perf {
    pub(crate) fn start(daemon_pid: u32, run: &str, seconds: u64) -> Perf {
        let Some(dir) = std::env::var_os("PAGESYNC_BENCH_PERF").map(PathBuf::from) else { return Perf(None) };
        let out = dir.join(format!("{run}.perf.data"));
        let child = Command::new("perf")
            .args(["record", "-F", "199", "--call-graph", "dwarf,16384", "-p", &daemon_pid.to_string(), "-o"])
            .arg(&out)
            .args(["--", "sleep", &seconds.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Perf(Some(child)),
            Err(e) => {
                eprintln!("PAGESYNC_BENCH_PERF: cannot run perf: {e}");
                Perf(None)
            }
        }
    }

    pub(crate) fn finish(self) {
        if let Some(mut child) = self.0 {
            let _ = child.wait();
        }
    }
}
