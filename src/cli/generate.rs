//! `pagesync completions SHELL` and `pagesync man`: generated from the same clap
//! definition that parses the command line, so they cannot drift from it.

use std::io::Write as _;
use std::process::ExitCode;

use clap::CommandFactory as _;

use super::{Cli, exit};

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "pagesync", &mut out);
    write_stdout(&out)
}

/// Writes one roff manual page to stdout: the top-level page, then a section per
/// subcommand (each with its own flags), so that `man -l` shows everything at once.
pub fn man() -> ExitCode {
    match render_man() {
        Ok(page) => write_stdout(&page),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The manual page as bytes (also what the unit tests read).
pub fn render_man() -> std::io::Result<Vec<u8>> {
    let command = Cli::command();
    let mut out = Vec::new();
    let top = clap_mangen::Man::new(command.clone());
    top.render_title(&mut out)?;
    top.render_name_section(&mut out)?;
    top.render_synopsis_section(&mut out)?;
    top.render_description_section(&mut out)?;
    top.render_options_section(&mut out)?;
    top.render_subcommands_section(&mut out)?;
    // One section per subcommand (nested ones too), with its synopsis and flags.
    for sub in command.get_subcommands() {
        render_subcommand(&mut out, &format!("pagesync {}", sub.get_name()), sub)?;
    }
    top.render_version_section(&mut out)?;
    Ok(out)
}

/// A section for `sub` (called `path`), then one for each of its subcommands.
fn render_subcommand(out: &mut Vec<u8>, path: &str, sub: &clap::Command) -> std::io::Result<()> {
    writeln!(out, ".SH \"{}\"", roff_quote(&path.to_uppercase()))?;
    if let Some(about) = sub.get_long_about().or(sub.get_about()) {
        writeln!(out, "{}", roff_text(&about.to_string()))?;
    }
    let usage = sub.clone().bin_name(path).render_usage().to_string();
    writeln!(out, ".PP\n.B Usage:\n{}", roff_text(usage.trim_start_matches("Usage: ")))?;
    for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
        let name = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => format!("<{}>", arg.get_id().as_str().to_uppercase()),
        };
        writeln!(out, ".TP\n\\fB{}\\fR", roff_text(&name))?;
        if let Some(help) = arg.get_help() {
            writeln!(out, "{}", roff_text(&help.to_string()))?;
        }
    }
    for nested in sub.get_subcommands() {
        render_subcommand(out, &format!("{path} {}", nested.get_name()), nested)?;
    }
    Ok(())
}

/// Escapes text for a roff body line: backslashes, and a leading `.` or `'` that
/// roff would read as a request.
fn roff_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e").replace('-', "\\-");
            if line.starts_with('.') || line.starts_with('\'') { format!("\\&{line}") } else { line }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes text inside a quoted roff argument.
fn roff_quote(text: &str) -> String {
    text.replace('\\', "\\e").replace('"', "\\(dq")
}

fn write_stdout(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`pagesync man | head`) is not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::code(exit::OK),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
