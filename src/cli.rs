//! The command line (SPEC §6): subcommands plus one flag per configuration variable,
//! generated from [`config::VARS`].

use std::collections::HashMap;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use pagesync_actors::EncryptionKey;

use crate::config::{self, Origin, Sources};

/// Exit status of `serve` when the configuration is unusable (sysexits' EX_CONFIG), so
/// a unit can say `RestartPreventExitStatus=78` instead of restarting in a loop.
pub const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(name = "pagesync", version, about = "Keeps Facebook Page data in sync for Messenger sales bots")]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigFlags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Validate the configuration, print every problem, exit 0 or 1.
    CheckConfig,
    /// Print a new base64 encryption key for PAGESYNC_ENCRYPTION_KEY.
    Keygen,
}

/// Values given as flags, keyed by variable name.
#[derive(Debug, Default, Clone)]
pub struct ConfigFlags(pub HashMap<String, String>);

impl FromArgMatches for ConfigFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = HashMap::new();
        for var in config::VARS {
            if let Some(value) = matches.get_one::<String>(var.name) {
                flags.insert(var.name.to_owned(), value.clone());
            }
        }
        Ok(ConfigFlags(flags))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for ConfigFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        config::VARS.iter().fold(cmd, |cmd, var| {
            cmd.arg(
                Arg::new(var.name)
                    .long(var.flag)
                    .value_name("VALUE")
                    .help(format!("{} [env: {}]", var.help, var.name))
                    .help_heading("Configuration (flag > environment > .env > default)")
                    .global(true),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `pagesync keygen`.
pub fn keygen() -> ExitCode {
    match EncryptionKey::generate() {
        Ok(key) => {
            println!("{}", key.to_base64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pagesync check-config`: the same report `serve` gives, then 0 or 1.
pub fn check_config(sources: &Sources) -> ExitCode {
    match config::load(sources) {
        Ok(settings) => {
            let mut from = [0usize; 4];
            for var in config::VARS {
                if let Some((_, origin)) = sources.get(var.name) {
                    from[origin as usize] += 1;
                }
            }
            println!(
                "configuration ok: {} from flags, {} from the environment, {} from .env, {} defaults; \
                 would listen on {} with data in {}",
                from[Origin::Flag as usize],
                from[Origin::Env as usize],
                from[Origin::DotEnv as usize],
                from[Origin::Default as usize],
                settings.bind,
                settings.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            report(&problems);
            ExitCode::FAILURE
        }
    }
}

/// Prints configuration problems, one per line, on stderr.
pub fn report(problems: &[String]) {
    for problem in problems {
        eprintln!("config error: {problem}");
    }
}
