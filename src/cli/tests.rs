//! The command line's definition: consistent, each command with its own flags.

use clap::{CommandFactory as _, Parser as _};

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

/// The long help of `pagesync <path...>`.
fn help_of(path: &[&str]) -> String {
    let mut command = Cli::command();
    command.build();
    let mut sub = &mut command;
    for name in path {
        sub = sub.find_subcommand_mut(name).unwrap_or_else(|| panic!("no subcommand {name}"));
    }
    sub.render_long_help().to_string()
}

#[test]
fn keygen_lists_no_configuration_flag() {
    let help = help_of(&["keygen"]);
    for var in crate::config::VARS {
        assert!(!help.contains(&format!("--{} ", var.flag)), "keygen lists --{}:\n{help}", var.flag);
    }
}

#[test]
fn serve_and_check_config_list_every_configuration_flag() {
    for path in [&["serve"][..], &["check-config"]] {
        let help = help_of(path);
        for var in crate::config::VARS {
            assert!(help.contains(&format!("--{} ", var.flag)), "{path:?} lacks --{}", var.flag);
        }
    }
}

#[test]
fn operator_commands_list_the_store_flags_and_no_meta_or_shopify_secret() {
    for path in [
        &["pages"][..],
        &["resync"],
        &["status"],
        &["outbox"],
        &["outbox", "retry"],
        &["api-key", "list"],
        &["api-key", "create"],
    ] {
        let help = help_of(path);
        for flag in ["--data-dir", "--encryption-key", "--encryption-key-file", "--log"] {
            assert!(help.contains(flag), "{path:?} lacks {flag}:\n{help}");
        }
        for flag in ["--facebook-app-secret", "--shopify-api-key", "--state-token-secret", "--forward-url"] {
            assert!(!help.contains(flag), "{path:?} lists {flag}:\n{help}");
        }
    }
    assert!(help_of(&["status"]).contains("--bind"), "status reports PAGESYNC_BIND");
    assert!(!help_of(&["pages"]).contains("--bind"));
}

#[test]
fn every_flag_set_names_known_variables() {
    for (set, names) in super::flags::all_sets() {
        for name in names.unwrap_or_default() {
            assert!(crate::config::VARS.iter().any(|v| v.name == *name), "{set} names unknown {name}");
        }
    }
}

#[test]
fn the_bare_command_takes_serve_flags_and_refuses_them_before_a_subcommand() {
    let cli = Cli::try_parse_from(["pagesync", "--bind", "127.0.0.1:5001"]).unwrap();
    assert!(cli.command.is_none());
    assert_eq!(cli.config.values.get("PAGESYNC_BIND").map(String::as_str), Some("127.0.0.1:5001"));
    let err = Cli::try_parse_from(["pagesync", "--bind", "127.0.0.1:5001", "pages"]).unwrap_err();
    assert_eq!(err.exit_code(), i32::from(super::exit::USAGE));
    let err = Cli::try_parse_from(["pagesync", "keygen", "--facebook-app-id", "1"]).unwrap_err();
    assert_eq!(err.exit_code(), i32::from(super::exit::USAGE));
}

#[test]
fn store_flags_are_read_before_or_after_a_nested_subcommand() {
    for args in [
        &["pagesync", "api-key", "--data-dir", "/d", "list"][..],
        &["pagesync", "api-key", "list", "--data-dir", "/d"],
        &["pagesync", "outbox", "retry", "--all-dead", "--data-dir", "/d"],
    ] {
        let cli = Cli::try_parse_from(args.iter().copied()).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let config = match cli.command {
            Some(super::Command::ApiKey { config, .. }) | Some(super::Command::Outbox { config, .. }) => config,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.values.get("PAGESYNC_DATA_DIR").map(String::as_str), Some("/d"), "{args:?}");
    }
}

#[test]
fn exit_codes_are_the_documented_ones() {
    use super::exit;
    // docs/cli.md, "Exit status": scripts and unit files rely on these numbers.
    assert_eq!((exit::OK, exit::FAILURE, exit::USAGE, exit::UNAVAILABLE, exit::CONFIG), (0, 1, 2, 69, 78));
    assert_eq!(super::EXIT_CONFIG, 78, "RestartPreventExitStatus=78 in docs/pagesync.service");
    let table = include_str!("../../docs/cli.md");
    for (code, name) in [(0, "OK"), (1, "FAILURE"), (2, "USAGE"), (69, "UNAVAILABLE"), (78, "CONFIG")] {
        assert!(table.contains(&format!("| {code} | `{name}` |")), "docs/cli.md lacks the row of {code}");
    }
}

#[test]
fn the_man_page_names_every_subcommand() {
    let page = String::from_utf8(super::generate::render_man().unwrap()).unwrap();
    assert!(page.contains(".TH pagesync 1"), "{}", &page[..200]);
    for sub in Cli::command().get_subcommands() {
        let title = format!(".SH \"PAGESYNC {}\"", sub.get_name().to_uppercase());
        assert!(page.contains(&title), "no section {title}");
    }
    assert!(page.contains(".SH \"PAGESYNC API-KEY CREATE\""));
}
