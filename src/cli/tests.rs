//! The command line's definition: consistent, each command with its own flags.

use clap::CommandFactory as _;

use super::Cli;

#[test]
fn the_command_line_definition_is_consistent() {
    // clap checks names only when a command is parsed, and only in debug builds:
    // a flag of a configuration variable clashing with a command's own flag must
    // fail here, not in an operator's shell.
    Cli::command().debug_assert();
}

#[test]
fn ages_read_at_a_glance() {
    assert_eq!(super::format_age(0), "0s");
    assert_eq!(super::format_age(61), "1m 1s");
    assert_eq!(super::format_age(7_260), "2h 1m");
    assert_eq!(super::format_age(90_000), "1d 1h");
}
