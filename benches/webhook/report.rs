//! What the bench harnesses share around their measurements: the exit status, the
//! temporary dir (kept on failure or on request), and the report's list of problems.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

/// Success, or the error's whole chain on stderr and a failing exit status.
pub(crate) fn exit_status(bench: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{bench} bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `bench` in a new temp dir named `prefix…`, removed afterwards unless the run
/// failed (its data dir and daemon log are worth a look) or `PAGESYNC_BENCH_KEEP` is set.
pub(crate) fn in_temp_dir(prefix: &str, bench: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir().context("cannot create a temp dir")?;
    match bench(tmp.path()) {
        Ok(()) if std::env::var_os("PAGESYNC_BENCH_KEEP").is_none() => Ok(()),
        Ok(()) => {
            println!("kept {} (daemon logs: pagesync.log below it)", tmp.keep().display());
            Ok(())
        }
        Err(e) => Err(e.context(format!("temp dir kept: {}", tmp.keep().display()))),
    }
}

/// The report's last lines: every problem seen, or "none".
pub(crate) fn write_problems(out: &mut String, problems: &[String]) {
    if problems.is_empty() {
        let _ = writeln!(out, "problems seen: none");
    } else {
        let _ = writeln!(out, "problems seen:");
        for p in problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
}

/// `text` indented by four spaces (wrk's report inside the harness's output).
pub(crate) fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
