//! The checks the section parsers share: a [`Validator`] that records problems by
//! variable name (never quoting a value: values may be secrets), and the parsers of
//! value kinds more than one variable uses.

use std::time::Duration;

use pagesync_actors::{EncryptionKey, Secret};

use super::sources::Sources;

/// Reads variables from [`Sources`] and collects every problem, so that one run of
/// `check-config` lists all of them instead of stopping at the first.
pub(super) struct Validator<'a> {
    pub(super) sources: &'a Sources,
    pub(super) problems: Vec<String>,
}

impl Validator<'_> {
    /// A variable that must end up with a value (from any source or its default).
    pub(super) fn required<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.sources.get(name) {
            None => {
                let file = super::sources::SECRET_FILES.iter().find(|(secret, ..)| *secret == name);
                self.problems.push(match file {
                    Some((_, file_var, credential)) => format!(
                        "{name}: missing (needed by serve; or {file_var}, or the systemd credential {credential})"
                    ),
                    None => format!("{name}: missing (needed by serve)"),
                });
                None
            }
            Some((value, _)) => match parse(&value) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.problems.push(format!("{name}: {why}"));
                    None
                }
            },
        }
    }

    /// `PAGESYNC_ENCRYPTION_KEY` (directly, from `PAGESYNC_ENCRYPTION_KEY_FILE` or from
    /// the `encryption-key` credential).
    pub(super) fn encryption_key(&mut self) -> Option<EncryptionKey> {
        let Some((text, _)) = self.sources.get("PAGESYNC_ENCRYPTION_KEY") else {
            self.problems.push(
                "PAGESYNC_ENCRYPTION_KEY: missing (needed by serve; set it or PAGESYNC_ENCRYPTION_KEY_FILE, \
                 `pagesync keygen` makes one)"
                    .into(),
            );
            return None;
        };
        match EncryptionKey::from_base64(text.trim()) {
            Ok(key) => Some(key),
            Err(_) => {
                self.problems.push(
                    "PAGESYNC_ENCRYPTION_KEY: must be base64 of exactly 32 bytes (`pagesync keygen` prints one)".into(),
                );
                None
            }
        }
    }
}

/// A comma-separated list of webhook field names (a-z, 0-9, _).
pub(super) fn field_list(s: &str) -> Result<Vec<String>, String> {
    let fields: Vec<String> = s.split(',').map(|f| f.trim().to_owned()).collect();
    if fields
        .iter()
        .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    {
        Ok(fields)
    } else {
        Err("must be a comma-separated list of field names (a-z, 0-9, _)".into())
    }
}

pub(super) fn secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() { Err("must not be empty".into()) } else { Ok(Secret::new(s)) }
}

pub(super) fn http_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s.to_owned()),
        _ => Err("must be an absolute http(s) URL".into()),
    }
}

pub(super) fn page_fields(s: &str) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.{}(),".contains(&b);
    if s.is_empty() || !s.bytes().all(allowed) {
        return Err("must be a Graph field list (a-z, 0-9, _ . { } ( ) ,)".into());
    }
    if s.split([',', '{', '}', '.', '(', ')']).any(|f| f == "access_token") {
        return Err("must not ask for access_token (page_data.json never holds a token)".into());
    }
    Ok(s.to_owned())
}

/// Parses `90s`, `15m`, `24h`, `7d` (and `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || "must be a duration like 90s, 15m, 24h or 7d".to_string();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = s.split_at(unit_at);
    let n: u64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    };
    secs.map(Duration::from_secs).ok_or_else(err)
}
