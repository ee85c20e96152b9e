//! `pagesync status`: the text screen (the `--json` shape is
//! [`crate::control::StatusReport`]).

use crate::clock::format_unix;
use crate::control::StatusReport;

use super::format_age;

/// The screen as lines, so that a test can read it without a terminal.
pub fn render(report: &StatusReport) -> Vec<String> {
    let mut lines = Vec::new();
    let d = &report.daemon;
    let bind = d.bind.as_deref().unwrap_or("-");
    lines.push(if d.running {
        let pid = d.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        format!("daemon:   running{pid}, listening on {}", d.listen.as_deref().unwrap_or(bind))
    } else {
        format!("daemon:   not running (PAGESYNC_BIND is {bind}); this report was read from the store")
    });
    let p = &report.pages;
    lines.push(format!(
        "pages:    {} ({} synced, {} pending, {} error, {} rate_limited, {} needs_reauth, {} disconnected)",
        p.total, p.synced, p.pending, p.error, p.rate_limited, p.needs_reauth, p.disconnected
    ));
    lines.push(format!("inbox:    {} deliveries waiting", report.inbox_depth));
    let o = &report.outbox;
    lines.push(format!(
        "outbox:   forward {} pending, {} dead; event {} pending, {} dead",
        o.pending.forward, o.dead.forward, o.pending.event, o.dead.event
    ));
    lines.push(match &report.stalest {
        None => "stalest:  -".to_owned(),
        Some(page) => {
            let name = page.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let when = match (page.last_sync, page.age_seconds) {
                (Some(at), Some(age)) => format!("last synced {} ago, {} UTC", format_age(age), format_unix(at)),
                _ => "never synced".to_owned(),
            };
            format!("stalest:  {}{name}: {when} [{}]", page.id, page.status)
        }
    });
    if report.errors.is_empty() {
        lines.push("errors:   none".to_owned());
    } else {
        lines.push("errors:   (newest first)".to_owned());
        for e in &report.errors {
            let at = e.at.map(format_unix).unwrap_or_else(|| "-".to_owned());
            // The message already names Meta's code where there is one (JSON has it apart).
            lines.push(format!("  {at}  {}  {}  {}", e.id, e.status, e.error));
        }
    }
    lines
}

/// Prints [`render`]'s lines.
pub fn print(report: &StatusReport) {
    for line in render(report) {
        println!("{line}");
    }
}
