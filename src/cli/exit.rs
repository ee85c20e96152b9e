//! Every exit status pagesync uses, in one place (docs/cli.md, "Exit status", has the
//! same table). The numbers above 2 are sysexits(3) values, so that a unit file or a
//! script can tell "fix the configuration" from "try again later" without parsing
//! messages.

use std::process::ExitCode;

/// The command did what was asked (`status` also when no daemon runs).
pub const OK: u8 = 0;

/// The command ran and failed on its own terms: a Page not refreshed, a name already
/// taken, a webhook answered with a non-2xx, `check-config` finding problems.
pub const FAILURE: u8 = 1;

/// The command line is wrong (clap's own errors use it too): an unknown flag, a
/// missing argument, `resync` with neither ids nor `--all`, `outbox retry` with
/// neither ids nor `--all-dead`, a `webhook send --page` that is not digits.
pub const USAGE: u8 = 2;

/// The store could not be reached: no daemon answers on the control socket and the
/// store cannot be opened (a pagesync that does not answer holds it, or it is
/// damaged). sysexits' EX_UNAVAILABLE; usually worth retrying once the daemon is back.
pub const UNAVAILABLE: u8 = 69;

/// The configuration is unusable (sysexits' EX_CONFIG): `serve` exits with it before
/// binding, so a unit can say `RestartPreventExitStatus=78` instead of restarting in a
/// loop, and so does every other command that needs a value it cannot read.
/// `check-config` is the exception: it reports problems with [`FAILURE`].
pub const CONFIG: u8 = 78;

/// `ExitCode::from(code)`, for the constants above.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
