//! Configuration flags, generated from [`config::VARS`], placed only under the commands
//! that read them: `serve` and `check-config` take every variable, the operator
//! commands the few that locate and open the store, `keygen` none. Each set is a
//! marker type, so a command's flags are visible in its definition.

use std::collections::HashMap;
use std::marker::PhantomData;

use clap::{Arg, ArgMatches, Args, FromArgMatches};

use crate::config::{self, Var};

/// Which variables a command takes as flags.
pub trait FlagSet {
    /// The variables' names; `None`: every variable of [`config::VARS`].
    const NAMES: Option<&'static [&'static str]>;
    /// Whether the flags are also accepted after the command's own subcommands
    /// (`pagesync api-key list --data-dir D`). Not for the top level: there the flags
    /// belong to the bare `pagesync`, which runs `serve`.
    const GLOBAL: bool = true;
    /// Variables added to [`FlagSet::NAMES`] (a set that is another one plus a few).
    const EXTRA: &'static [&'static str] = &[];

    fn vars() -> impl Iterator<Item = &'static Var> {
        config::VARS
            .iter()
            .filter(|var| Self::NAMES.is_none_or(|names| names.contains(&var.name)) || Self::EXTRA.contains(&var.name))
    }
}

/// Every variable: `serve`, `check-config`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Daemon;
impl FlagSet for Daemon {
    const NAMES: Option<&'static [&'static str]> = None;
}

/// Every variable, for the bare `pagesync` (which runs `serve`), so that
/// `pagesync --bind 127.0.0.1:5001` keeps working. Not global: a flag before a
/// subcommand is refused instead of silently applying to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopLevel;
impl FlagSet for TopLevel {
    const NAMES: Option<&'static [&'static str]> = None;
    const GLOBAL: bool = false;
}

/// What finds and opens the store, and the log: `pages`, `resync`, `api-key`,
/// `outbox`, `rotate-key`. Run without a daemon, these still read the rest of the
/// daemon's configuration from the environment or `.env` (the actors they start need
/// it); flags are for what differs per invocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Store;
impl FlagSet for Store {
    const NAMES: Option<&'static [&'static str]> = Some(&STORE);
}
const STORE: [&str; 6] = [
    "PAGESYNC_ENV_FILE",
    "PAGESYNC_DATA_DIR",
    "PAGESYNC_ENCRYPTION_KEY",
    "PAGESYNC_ENCRYPTION_KEY_FILE",
    "PAGESYNC_LOG",
    "PAGESYNC_LOG_FORMAT",
];

/// [`Store`] plus the listen address `status` reports when no daemon runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Status;
impl FlagSet for Status {
    const NAMES: Option<&'static [&'static str]> = Some(&STORE);
    const EXTRA: &'static [&'static str] = &["PAGESYNC_BIND"];
}

/// What `sandbox` honours: it generates everything else.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox;
impl FlagSet for Sandbox {
    const NAMES: Option<&'static [&'static str]> = Some(&crate::sandbox::HONOURED_FLAGS);
}

/// What `webhook send` signs with and sends to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Webhook;
impl FlagSet for Webhook {
    const NAMES: Option<&'static [&'static str]> =
        Some(&["PAGESYNC_ENV_FILE", "FACEBOOK_APP_SECRET", "FACEBOOK_APP_SECRET_FILE", "FACEBOOK_WEBHOOK_ADDRESS"]);
}

/// Every set with a name, for the test that each name is a variable.
#[cfg(test)]
pub(crate) fn all_sets() -> [(&'static str, Option<&'static [&'static str]>); 7] {
    [
        ("Daemon", Daemon::NAMES),
        ("TopLevel", TopLevel::NAMES),
        ("Store", Store::NAMES),
        ("Status", Status::NAMES),
        ("Status (extra)", Some(Status::EXTRA)),
        ("Sandbox", Sandbox::NAMES),
        ("Webhook", Webhook::NAMES),
    ]
}

/// Values given as flags, keyed by variable name.
#[derive(Debug, Clone)]
pub struct Flags<S> {
    pub values: HashMap<String, String>,
    set: PhantomData<S>,
}

impl<S> Default for Flags<S> {
    fn default() -> Self {
        Flags { values: HashMap::new(), set: PhantomData }
    }
}

impl<S> Flags<S> {
    /// The values, for [`config::Sources::gather`].
    pub fn into_values(self) -> HashMap<String, String> {
        self.values
    }
}

impl<S: FlagSet> FromArgMatches for Flags<S> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut values = HashMap::new();
        for var in S::vars() {
            // `try_`: never a panic, even for an id this command does not define.
            if let Ok(Some(value)) = matches.try_get_one::<String>(var.name) {
                values.insert(var.name.to_owned(), value.clone());
            }
        }
        Ok(Flags { values, set: PhantomData })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<S: FlagSet> Args for Flags<S> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        S::vars().fold(cmd, |cmd, var| {
            cmd.arg(
                Arg::new(var.name)
                    .long(var.flag)
                    .value_name("VALUE")
                    .help(format!("{} [env: {}]", var.help, var.name))
                    .help_heading("Configuration (flag > environment > .env > default)")
                    .global(S::GLOBAL),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
