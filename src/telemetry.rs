//! Logging set-up: `tracing` with an env-filter, as text on a terminal or one JSON
//! object per line otherwise. When stderr is the journal (systemd sets
//! `JOURNAL_STREAM` to its device and inode), every line starts with its syslog
//! priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug and trace), which
//! journald takes as the entry's priority: `journalctl -p warning -u pagesync` works.

use std::io::Write;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = Stderr { journal: stderr_is_journal() };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(!writer.journal).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
}

/// Whether `JOURNAL_STREAM` names the file stderr is (systemd's `StandardError=journal`;
/// a redirected stderr of a child keeps the variable but not the stream).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|s| parse_stream(&s)) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// `DEVICE:INODE`, both decimal.
fn parse_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The syslog priority of a level.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Makes stderr writers, prefixing each event with its priority for the journal.
#[derive(Debug, Clone, Copy)]
struct Stderr {
    journal: bool,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter { prefix: self.journal.then_some(6) }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter {
        EventWriter { prefix: self.journal.then(|| priority(*meta.level())) }
    }
}

/// Writes one event to stderr; the priority prefix goes before its first byte.
struct EventWriter {
    prefix: Option<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        match self.prefix.take() {
            Some(priority) => {
                let mut line = format!("<{priority}>").into_bytes();
                line.extend_from_slice(buf);
                stderr.write_all(&line)?;
                Ok(buf.len())
            }
            None => stderr.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities_and_the_stream_variable_parses() {
        let levels = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE];
        assert_eq!(levels.map(priority), [3, 4, 6, 7, 7]);
        assert_eq!(parse_stream("8:123456"), Some((8, 123_456)));
        for bad in ["", "8", "8:", ":1", "a:1", "8:1:2", "-1:2"] {
            assert_eq!(parse_stream(bad), None, "{bad}");
        }
    }
}
