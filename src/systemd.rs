//! systemd's notify protocol (`sd_notify(3)`), spoken directly: a datagram of
//! `KEY=VALUE` lines to the socket in `$NOTIFY_SOCKET`.
//!
//! The socket is read once in `main` and handed to the application, so tests can run
//! several apps in one process, each with its own fake socket. `READY=1` is sent once
//! the server is bound with the store open and the inbox replay started;
//! `WATCHDOG=1` every half `WATCHDOG_USEC`, but only while every actor answers a ping
//! (a wedged actor stops the pings and systemd restarts us); `STOPPING=1` when a stop
//! begins; `STATUS=` lines carry what `systemctl status` shows.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when not run by systemd (or the variable is empty).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var("NOTIFY_SOCKET").ok().filter(|p| !p.is_empty())?;
        match Notifier::new(&path) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; not notifying systemd");
                None
            }
        }
    }

    /// A notifier for a socket path; `@name` is an abstract socket, as systemd allows.
    pub fn new(path: &str) -> io::Result<Notifier> {
        let addr = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(path)?,
        };
        Ok(Notifier { socket: UnixDatagram::unbound()?, addr })
    }

    /// Sends one notification (several `KEY=VALUE` lines).
    pub fn notify(&self, lines: &[&str]) {
        let message = lines.join("\n");
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::warn!(error = %e, "could not notify systemd");
        }
    }
}

/// The watchdog period from `$WATCHDOG_USEC` (when `$WATCHDOG_PID` is unset or ours).
pub fn watchdog_from_env() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}
