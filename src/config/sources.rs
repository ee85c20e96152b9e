//! Where raw values come from — flags, the environment, `.env`, built-in defaults — and
//! which one wins, before anything is validated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::proxy::PROXY_VARS;
use super::vars::VARS;

/// Where a value came from (for the `check-config` summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    DotEnv,
    Default,
}

/// Raw values from every source, before validation.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub flags: HashMap<String, String>,
    pub env: HashMap<String, String>,
    pub dotenv: HashMap<String, String>,
    /// `$CREDENTIALS_DIRECTORY`, set by systemd's `LoadCredential=`.
    pub credentials_dir: Option<PathBuf>,
    /// Problems met while reading the sources themselves (an unreadable `.env`).
    pub problems: Vec<String>,
}

impl Sources {
    /// Reads the process environment and `./.env` (if present) besides `flags`.
    pub fn gather(flags: HashMap<String, String>) -> Sources {
        let mut sources = Sources { flags, ..Sources::default() };
        // The proxy variables have no flags (they are the conventional environment
        // names, read here so that the HTTP client never reads the environment itself).
        for name in VARS.iter().map(|var| var.name).chain(PROXY_VARS.iter().copied()) {
            if let Ok(value) = std::env::var(name) {
                sources.env.insert(name.to_owned(), value);
            } else if std::env::var_os(name).is_some() {
                sources.problems.push(format!("{name}: not valid UTF-8"));
            }
        }
        sources.credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        sources.read_dotenv(Path::new(".env"));
        sources
    }

    /// Reads a `.env` file; a missing file is fine, a broken one is a problem.
    pub fn read_dotenv(&mut self, path: &Path) {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(e) if e.not_found() => return,
            Err(_) => {
                self.problems.push(format!("{}: cannot be read", path.display()));
                return;
            }
        };
        for item in iter {
            match item {
                Ok((k, v)) => {
                    if VARS.iter().any(|var| var.name == k) || PROXY_VARS.contains(&k.as_str()) {
                        self.dotenv.insert(k, v);
                    }
                }
                // The error text of a parse failure quotes the line, which may hold a
                // secret: report only where it is.
                Err(dotenvy::Error::LineParse(_, index)) => {
                    self.problems
                        .push(format!("{}: cannot be parsed (at character {index} of a line)", path.display()));
                    return;
                }
                Err(_) => {
                    self.problems.push(format!("{}: cannot be parsed", path.display()));
                    return;
                }
            }
        }
    }

    /// The winning value of a variable and where it came from.
    pub fn get(&self, name: &str) -> Option<(String, Origin)> {
        if let Some(v) = self.flags.get(name) {
            return Some((v.clone(), Origin::Flag));
        }
        if let Some(v) = self.env.get(name) {
            return Some((v.clone(), Origin::Env));
        }
        if let Some(v) = self.dotenv.get(name) {
            return Some((v.clone(), Origin::DotEnv));
        }
        VARS.iter().find(|var| var.name == name).and_then(|var| var.default).map(|d| (d.to_owned(), Origin::Default))
    }
}
