//! Where the configuration comes from, seen from the command line: `--env-file`, the
//! working directory's `.env` (never `/.env`), secrets from files and systemd
//! credentials, `$STATE_DIRECTORY`. `check-config` says what it read.

use std::path::Path;
use std::process::Command;

use pagesync_actors::EncryptionKey;

use crate::helpers::base_env;

const BIN: &str = env!("CARGO_BIN_EXE_pagesync");

/// `pagesync check-config` in `dir` with exactly `env` and `args`.
fn check_config(dir: &Path, env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.to_vec())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A complete configuration as `.env` lines and as variables.
fn full(dir: &Path) -> Vec<(String, String)> {
    let key = EncryptionKey::generate().unwrap();
    let mut vars: Vec<(String, String)> = base_env(&dir.join("data"), "http://127.0.0.1:9", &key).into_iter().collect();
    vars.sort();
    vars
}

fn dotenv(vars: &[(String, String)]) -> String {
    vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect()
}

#[test]
fn env_file_names_the_file_to_read_and_check_config_says_which_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pagesync.env");
    std::fs::write(&file, dotenv(&full(dir.path()))).unwrap();
    let (code, out, err) = check_config(dir.path(), &[], &["--env-file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("read {}", file.canonicalize().unwrap().display())), "{out}");

    let (code, out, err) = check_config(dir.path(), &[("PAGESYNC_ENV_FILE".into(), file.display().to_string())], &[]);
    assert_eq!(code, 0, "the variable works like the flag: {out}{err}");

    let missing = dir.path().join("nope.env");
    let (code, _, err) = check_config(dir.path(), &[], &["--env-file", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("PAGESYNC_ENV_FILE:") && err.contains("not a readable file"), "{err}");
}

#[test]
fn the_working_directory_env_is_read_but_never_the_root_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), dotenv(&full(dir.path()))).unwrap();
    let (code, out, err) = check_config(dir.path(), &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("read ") && out.contains(".env"), "{out}");

    // Under systemd the working directory is `/`: a `.env` there is not ours. Put one
    // there when we may (CI runs as root) and none exists.
    let root_env = Path::new("/.env");
    let planted = !root_env.exists() && std::fs::write(root_env, dotenv(&full(dir.path()))).is_ok();
    let (code, out, err) = check_config(Path::new("/"), &[], &[]);
    if planted {
        std::fs::remove_file(root_env).unwrap();
    }
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("FACEBOOK_APP_ID: missing"), "{err}");
}

#[test]
fn secrets_come_from_credentials_and_files_and_the_data_dir_from_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let state = dir.path().join("state");
    let mut env = full(dir.path());
    let take = |env: &mut Vec<(String, String)>, name: &str| {
        let at = env.iter().position(|(k, _)| k == name).unwrap();
        env.remove(at).1
    };
    std::fs::write(credentials.join("facebook-app-secret"), take(&mut env, "FACEBOOK_APP_SECRET")).unwrap();
    std::fs::write(credentials.join("encryption-key"), take(&mut env, "PAGESYNC_ENCRYPTION_KEY") + "\n").unwrap();
    let state_secret = dir.path().join("state-secret");
    std::fs::write(&state_secret, take(&mut env, "STATE_TOKEN_SECRET")).unwrap();
    env.push(("STATE_TOKEN_SECRET_FILE".into(), state_secret.display().to_string()));
    take(&mut env, "PAGESYNC_DATA_DIR");
    env.push(("CREDENTIALS_DIRECTORY".into(), credentials.display().to_string()));
    env.push(("STATE_DIRECTORY".into(), state.display().to_string()));

    let (code, out, err) = check_config(dir.path(), &env, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 from files, 2 from systemd credentials"), "{out}");
    assert!(out.contains(&format!("with data in {} ($STATE_DIRECTORY)", state.display())), "{out}");

    // A secret given directly and by file is refused, naming both and no value.
    env.push(("STATE_TOKEN_SECRET".into(), "x".repeat(40)));
    let (code, _, err) = check_config(dir.path(), &env, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("STATE_TOKEN_SECRET: set either it or STATE_TOKEN_SECRET_FILE, not both"), "{err}");
    assert!(!err.contains(&"x".repeat(40)), "{err}");
}
