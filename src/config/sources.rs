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
    /// Read from the file a `NAME_FILE` variable names.
    File,
    /// Read from `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    Credential,
    /// `$STATE_DIRECTORY` (systemd `StateDirectory=`), for `PAGESYNC_DATA_DIR`.
    StateDirectory,
}

/// The secrets that may come from a file instead: the variable, the variable naming
/// its file, and its systemd credential name (`$CREDENTIALS_DIRECTORY/<name>`).
pub const SECRET_FILES: &[(&str, &str, &str)] = &[
    ("FACEBOOK_APP_SECRET", "FACEBOOK_APP_SECRET_FILE", "facebook-app-secret"),
    ("FACEBOOK_VERIFY_TOKEN", "FACEBOOK_VERIFY_TOKEN_FILE", "facebook-verify-token"),
    ("SHOPIFY_API_SECRET", "SHOPIFY_API_SECRET_FILE", "shopify-api-secret"),
    ("STATE_TOKEN_SECRET", "STATE_TOKEN_SECRET_FILE", "state-token-secret"),
    ("PAGESYNC_ENCRYPTION_KEY", "PAGESYNC_ENCRYPTION_KEY_FILE", "encryption-key"),
    ("PAGESYNC_EVENTS_SECRET", "PAGESYNC_EVENTS_SECRET_FILE", "events-secret"),
];

/// Raw values from every source, before validation.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub flags: HashMap<String, String>,
    pub env: HashMap<String, String>,
    pub dotenv: HashMap<String, String>,
    /// `$CREDENTIALS_DIRECTORY`, set by systemd's `LoadCredential=`.
    pub credentials_dir: Option<PathBuf>,
    /// `$STATE_DIRECTORY`, set by systemd's `StateDirectory=` (the first path when it
    /// names several): the data dir when `PAGESYNC_DATA_DIR` is not set.
    pub state_dir: Option<PathBuf>,
    /// Secrets read by [`Sources::read_secret_files`], with where each came from.
    pub files: HashMap<String, (String, Origin)>,
    /// Whether [`Sources::read_secret_files`] ran.
    pub files_read: bool,
    /// The `.env` file that was read, if any.
    pub dotenv_file: Option<PathBuf>,
    /// Problems met while reading the sources themselves (an unreadable `.env`).
    pub problems: Vec<String>,
}

impl Sources {
    /// Reads the process environment and a `.env` besides `flags`: the file
    /// `PAGESYNC_ENV_FILE` (`--env-file`) names, which must exist, else `./.env` if
    /// present, except when the working directory is `/` (a service's, where a `.env`
    /// would be anybody's). Then the secrets' files and credentials.
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
        sources.state_dir = std::env::var("STATE_DIRECTORY")
            .ok()
            .and_then(|dirs| dirs.split(':').next().filter(|d| !d.is_empty()).map(PathBuf::from));
        match sources.direct("PAGESYNC_ENV_FILE") {
            Some((path, _)) if !Path::new(&path).is_file() => {
                sources.problems.push(format!("PAGESYNC_ENV_FILE: {path} is not a readable file"));
            }
            Some((path, _)) => sources.read_dotenv(Path::new(&path)),
            None if std::env::current_dir().is_ok_and(|dir| dir.parent().is_none()) => {}
            None => sources.read_dotenv(Path::new(".env")),
        }
        sources.read_secret_files();
        sources
    }

    /// Which `.env` was read, for the `check-config` summary.
    pub fn dotenv_summary(&self) -> String {
        match &self.dotenv_file {
            Some(path) => format!("read {}", path.display()),
            None => "no .env read".to_owned(),
        }
    }

    /// Reads every secret that is not given directly from the file its `NAME_FILE`
    /// names, else from its systemd credential when there is one. A secret given both
    /// ways, or a file that cannot be read, is a problem; a missing credential is not.
    /// A trailing line break is not part of the secret.
    pub fn read_secret_files(&mut self) {
        if std::mem::replace(&mut self.files_read, true) {
            return;
        }
        for (name, file_var, credential) in SECRET_FILES {
            let direct = self.direct(name).is_some();
            let (path, origin) = match (direct, self.direct(file_var)) {
                (true, Some(_)) => {
                    self.problems.push(format!("{name}: set either it or {file_var}, not both"));
                    continue;
                }
                (true, None) => continue,
                (false, Some((path, _))) => (PathBuf::from(path), Origin::File),
                (false, None) => match &self.credentials_dir {
                    Some(dir) if dir.join(credential).exists() => (dir.join(credential), Origin::Credential),
                    _ => continue,
                },
            };
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
                    self.files.insert((*name).to_owned(), (text.to_owned(), origin));
                }
                Err(e) => {
                    let via = if origin == Origin::File { *file_var } else { *name };
                    self.problems.push(format!("{via}: cannot read {}: {}", path.display(), e.kind()));
                }
            }
        }
    }

    /// A value given by a flag, the environment or `.env`.
    fn direct(&self, name: &str) -> Option<(String, Origin)> {
        [(&self.flags, Origin::Flag), (&self.env, Origin::Env), (&self.dotenv, Origin::DotEnv)]
            .into_iter()
            .find_map(|(map, origin)| map.get(name).map(|v| (v.clone(), origin)))
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
        self.dotenv_file = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()));
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

    /// The winning value of a variable and where it came from: a flag, the
    /// environment, `.env`, a secret's file or credential, `$STATE_DIRECTORY` for the
    /// data dir, the built-in default.
    pub fn get(&self, name: &str) -> Option<(String, Origin)> {
        if let Some(found) = self.direct(name).or_else(|| self.files.get(name).cloned()) {
            return Some(found);
        }
        if let (Some(dir), "PAGESYNC_DATA_DIR") = (&self.state_dir, name) {
            return Some((dir.display().to_string(), Origin::StateDirectory));
        }
        VARS.iter().find(|var| var.name == name).and_then(|var| var.default).map(|d| (d.to_owned(), Origin::Default))
    }
}
