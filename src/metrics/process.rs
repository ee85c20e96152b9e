//! The standard `process_*` metrics (the names every Prometheus client library uses,
//! so the usual dashboards work), read from `/proc/self` at scrape time.
//!
//! Why by hand: the few numbers come from four small files, which is less than a
//! dependency; `unsafe` is forbidden in the workspace, so nothing calls `sysconf`.
//! Two consequences, both the same choice Prometheus' own Go client makes:
//! CPU times are in clock ticks of `USER_HZ`, which the kernel fixes at 100 in what
//! it shows user space on every architecture pagesync targets; and memory comes from
//! `/proc/self/status` in kB, so the page size is not needed.
//!
//! Reading these files is a handful of syscalls answered from kernel memory (no disk),
//! cheap enough for an HTTP worker. The boot time (`btime` of `/proc/stat`, for the
//! start time) is read once per process: it does not change, and `/proc/stat` is the
//! costly one, its size growing with the CPUs and interrupt lines the kernel sums for
//! every read. Whatever cannot be read (another OS, a hardened `/proc`) is left out of
//! the exposition rather than reported as zero.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second in `/proc/<pid>/stat` (see the module docs).
const USER_HZ: f64 = 100.0;

/// One reading; `None` where the figure could not be had.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    /// The soft limit on open files; `None` when unlimited.
    pub max_fds: Option<u64>,
    /// Unix time the process started, seconds.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures now (Linux); everything `None` elsewhere.
    pub fn read() -> ProcessStats {
        #[cfg(target_os = "linux")]
        {
            read_linux()
        }
        #[cfg(not(target_os = "linux"))]
        {
            ProcessStats::default()
        }
    }

    /// The `process_*` families, in a registry without the `pagesync_` prefix.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        if let Some(seconds) = self.cpu_seconds {
            let c = Counter::<f64, AtomicU64>::default();
            c.inc_by(seconds);
            registry.register("process_cpu_seconds", "Total user and system CPU time spent, in seconds", c);
        }
        let mut bytes_gauge = |name: &str, help: &str, value: Option<u64>| {
            if let Some(value) = value {
                let g = Gauge::<i64>::default();
                g.set(i64::try_from(value).unwrap_or(i64::MAX));
                registry.register(name, help, g);
            }
        };
        bytes_gauge("process_resident_memory_bytes", "Resident memory size in bytes", self.resident_bytes);
        bytes_gauge("process_virtual_memory_bytes", "Virtual memory size in bytes", self.virtual_bytes);
        bytes_gauge("process_open_fds", "Number of open file descriptors", self.open_fds);
        bytes_gauge("process_max_fds", "Maximum number of open file descriptors (soft limit)", self.max_fds);
        if let Some(start) = self.start_time_seconds {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(start);
            registry.register(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                g,
            );
        }
        registry
    }
}

#[cfg(target_os = "linux")]
fn read_linux() -> ProcessStats {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let stat = read("/proc/self/stat").and_then(|text| parse_stat(&text));
    let status = read("/proc/self/status");
    let boot_time = boot_time();
    ProcessStats {
        cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / USER_HZ),
        resident_bytes: status.as_deref().and_then(|t| status_kb(t, "VmRSS")).map(|kb| kb.saturating_mul(1024)),
        virtual_bytes: status.as_deref().and_then(|t| status_kb(t, "VmSize")).map(|kb| kb.saturating_mul(1024)),
        // The directory handle used to list it is one of the entries; it is open at
        // that moment, so it is counted like any other.
        open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as u64),
        max_fds: read("/proc/self/limits").and_then(|text| parse_max_open_files(&text)),
        start_time_seconds: stat.zip(boot_time).map(|(s, boot)| boot as f64 + s.starttime as f64 / USER_HZ),
    }
}

/// `btime` of `/proc/stat`, read at the first call (see the module docs).
#[cfg(target_os = "linux")]
fn boot_time() -> Option<u64> {
    static BOOT_TIME: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BOOT_TIME.get_or_init(|| std::fs::read_to_string("/proc/stat").ok().and_then(|text| parse_boot_time(&text)))
}

/// The fields of `/proc/self/stat` used here, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    /// Since boot.
    starttime: u64,
}

/// `/proc/<pid>/stat`: `pid (comm) state ppid ...`. `comm` may hold spaces and
/// parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field 3 (state) is at index 0, so field N (1-based, proc(5)) is at N - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat { utime: field(14)?, stime: field(15)?, starttime: field(22)? })
}

/// A `Key:   1234 kB` line of `/proc/self/status`.
fn status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// `btime` of `/proc/stat`: boot time, unix seconds.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`; `None` when unlimited.
fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with spaces and a ')' of its own.
        let text = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 1200 0 3 0 \
                    250 75 0 0 20 0 9 0 123456 31457280 2048 18446744073709551615\n";
        assert_eq!(parse_stat(text), Some(Stat { utime: 250, stime: 75, starttime: 123456 }));
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn status_lines_are_read_in_kilobytes() {
        let text = "Name:\tpagesync\nVmPeak:\t  40000 kB\nVmSize:\t   30720 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(status_kb(text, "VmRSS"), Some(8192));
        assert_eq!(status_kb(text, "VmSize"), Some(30720));
        assert_eq!(status_kb(text, "VmSwap"), None);
        assert_eq!(status_kb("VmRSS:\tlots\n", "VmRSS"), None);
    }

    #[test]
    fn boot_time_and_the_open_files_limit_are_parsed() {
        assert_eq!(parse_boot_time("cpu  1 2 3\nbtime 1764400000\nprocesses 9\n"), Some(1_764_400_000));
        assert_eq!(parse_boot_time("cpu  1 2 3\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        let unlimited = "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[test]
    fn unknown_figures_are_left_out_of_the_exposition() {
        let stats = ProcessStats { resident_bytes: Some(4096), ..ProcessStats::default() };
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &stats.registry()).unwrap();
        assert!(text.contains("process_resident_memory_bytes 4096\n"), "{text}");
        assert!(!text.contains("process_cpu_seconds"), "{text}");
        assert!(!text.contains("process_max_fds"), "{text}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_sane_figures() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.is_some_and(|b| b > 0), "{stats:?}");
        assert!(stats.virtual_bytes >= stats.resident_bytes, "{stats:?}");
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        assert!(stats.cpu_seconds.is_some_and(|s| s >= 0.0), "{stats:?}");
        let now = crate::clock::unix_now() as f64;
        // Started before now, and not before 2020.
        assert!(stats.start_time_seconds.is_some_and(|t| t > 1_577_836_800.0 && t <= now + 1.0), "{stats:?}");
    }
}
