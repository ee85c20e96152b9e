//! Unit tests of [`super::load`] and its parsers.

use std::collections::HashMap;

use super::*;

fn full() -> Sources {
    let mut env = HashMap::new();
    for (k, v) in [
        ("FACEBOOK_APP_ID", "1234567890"),
        ("FACEBOOK_APP_SECRET", "app-secret-value"),
        ("FACEBOOK_REDIRECT_URI", "http://localhost:5000/facebook/callback"),
        ("FACEBOOK_WEBHOOK_ADDRESS", "https://example.com/facebook/webhook"),
        ("FACEBOOK_VERIFY_TOKEN", "verify-token-value"),
        ("SHOPIFY_API_KEY", "shopify-key"),
        ("SHOPIFY_API_SECRET", "shopify-secret-value"),
        ("SHOPIFY_REDIRECT_URI", "http://localhost:5000/shopify/callback"),
        ("STATE_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
        ("PAGESYNC_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    Sources { env, ..Sources::default() }
}

#[test]
fn a_full_environment_loads_with_defaults() {
    let s = load(&full()).unwrap();
    assert_eq!(s.bind.to_string(), "127.0.0.1:5000");
    assert_eq!(s.facebook.graph_version, "v25.0");
    assert_eq!(s.facebook.subscribed_fields, vec!["name", "category"]);
    assert_eq!(s.session_ttl, Duration::from_secs(7 * 86_400));
    assert_eq!(s.poll_interval, Some(Duration::from_secs(86_400)));
    assert_eq!(s.webhook_max_bytes, 1_048_576);
}

#[test]
fn flags_beat_env_beat_dotenv_beat_defaults() {
    let mut src = full();
    src.dotenv.insert("PAGESYNC_BIND".into(), "127.0.0.1:1".into());
    assert_eq!(src.get("PAGESYNC_BIND").unwrap(), ("127.0.0.1:1".into(), Origin::DotEnv));
    src.env.insert("PAGESYNC_BIND".into(), "127.0.0.1:2".into());
    assert_eq!(src.get("PAGESYNC_BIND").unwrap(), ("127.0.0.1:2".into(), Origin::Env));
    src.flags.insert("PAGESYNC_BIND".into(), "127.0.0.1:3".into());
    assert_eq!(src.get("PAGESYNC_BIND").unwrap(), ("127.0.0.1:3".into(), Origin::Flag));
    assert_eq!(src.get("PAGESYNC_LOG").unwrap(), ("info".into(), Origin::Default));
}

#[test]
fn every_problem_is_reported_once_per_variable_without_values() {
    let mut src = full();
    src.env.insert("FACEBOOK_APP_ID".into(), "abc-secretish".into());
    src.env.remove("FACEBOOK_VERIFY_TOKEN");
    src.env.insert("STATE_TOKEN_SECRET".into(), "short-secret-value".into());
    src.env.insert("PAGESYNC_POLL_INTERVAL".into(), "soon".into());
    let problems = load(&src).unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].starts_with("FACEBOOK_APP_ID:"));
    assert!(problems.iter().any(|p| p.starts_with("FACEBOOK_VERIFY_TOKEN: missing")));
    assert!(problems.iter().any(|p| p.starts_with("STATE_TOKEN_SECRET:")));
    assert!(problems.iter().any(|p| p.starts_with("PAGESYNC_POLL_INTERVAL:")));
    for p in &problems {
        assert!(!p.contains("secretish") && !p.contains("short-secret-value"), "value leaked: {p}");
    }
}

#[test]
fn an_empty_verify_token_is_refused() {
    let mut src = full();
    src.env.insert("FACEBOOK_VERIFY_TOKEN".into(), String::new());
    let problems = load(&src).unwrap_err();
    assert_eq!(problems, vec!["FACEBOOK_VERIFY_TOKEN: must not be empty".to_string()]);
}

#[test]
fn the_key_comes_from_a_file_or_the_credentials_dir() {
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate().unwrap().to_base64();
    std::fs::write(dir.path().join("encryption-key"), format!("{key}\n")).unwrap();

    let mut src = full();
    src.env.remove("PAGESYNC_ENCRYPTION_KEY");
    src.credentials_dir = Some(dir.path().to_owned());
    assert!(load(&src).is_ok());

    src.credentials_dir = None;
    src.env.insert("PAGESYNC_ENCRYPTION_KEY_FILE".into(), dir.path().join("encryption-key").display().to_string());
    assert!(load(&src).is_ok());

    src.env.insert("PAGESYNC_ENCRYPTION_KEY".into(), key);
    let problems = load(&src).unwrap_err();
    assert!(problems[0].contains("not both"), "{problems:?}");
}

#[test]
fn every_secret_comes_from_its_file_or_its_systemd_credential() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&credentials).unwrap();
    let events = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let mut full = full();
    full.env.insert("PAGESYNC_EVENTS_URL".into(), "http://127.0.0.1:9/events".into());
    full.env.insert("PAGESYNC_EVENTS_SECRET".into(), events.into());
    let expected = load(&full).unwrap();

    // Each secret in turn from NAME_FILE, then from the credential; the others stay
    // in the environment. The file's trailing line break is not part of the secret.
    for (name, file_var, credential) in SECRET_FILES {
        let value = full.env[*name].clone();
        let mut src = full.clone();
        src.env.remove(*name);
        let path = files.join(credential);
        std::fs::write(&path, format!("{value}\r\n")).unwrap();
        src.env.insert((*file_var).to_owned(), path.display().to_string());
        let from_file = load(&src).unwrap_or_else(|p| panic!("{name} from {file_var}: {p:?}"));
        assert_eq!(format!("{from_file:?}"), format!("{expected:?}"), "{name} from its file");
        src.read_secret_files();
        assert_eq!(src.get(name).unwrap(), (value.clone(), Origin::File));

        let mut src = full.clone();
        src.env.remove(*name);
        std::fs::write(credentials.join(credential), &value).unwrap();
        src.credentials_dir = Some(credentials.clone());
        let from_credential = load(&src).unwrap_or_else(|p| panic!("{name} from the credential: {p:?}"));
        assert_eq!(from_credential.encryption_key.to_base64(), expected.encryption_key.to_base64());
        src.read_secret_files();
        assert_eq!(src.get(name).unwrap(), (value.clone(), Origin::Credential));
        std::fs::remove_file(credentials.join(credential)).unwrap();

        // Both ways at once is refused, naming both variables and no value.
        let mut src = full.clone();
        src.env.insert((*file_var).to_owned(), path.display().to_string());
        let problems = load(&src).unwrap_err();
        assert_eq!(problems, vec![format!("{name}: set either it or {file_var}, not both")]);

        // An unreadable file is a problem naming the variable and the path, not a panic.
        let mut src = full.clone();
        src.env.remove(*name);
        src.env.insert((*file_var).to_owned(), files.join("missing").display().to_string());
        let problems = load(&src).unwrap_err();
        assert!(problems[0].starts_with(&format!("{file_var}: cannot read ")), "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains(&value)), "{problems:?}");
    }
}

#[test]
fn the_data_dir_defaults_to_the_state_directory_and_a_setting_beats_it() {
    let mut src = full();
    src.state_dir = Some("/var/lib/pagesync".into());
    assert_eq!(load(&src).unwrap().data_dir, std::path::PathBuf::from("/var/lib/pagesync"));
    assert_eq!(src.get("PAGESYNC_DATA_DIR").unwrap().1, Origin::StateDirectory);
    src.env.insert("PAGESYNC_DATA_DIR".into(), "/srv/pagesync".into());
    assert_eq!(load(&src).unwrap().data_dir, std::path::PathBuf::from("/srv/pagesync"));
}

#[test]
fn a_page_field_list_asking_for_tokens_is_refused() {
    let mut src = full();
    src.env.insert("FACEBOOK_PAGE_FIELDS".into(), "id,name,access_token".into());
    assert!(load(&src).unwrap_err()[0].starts_with("FACEBOOK_PAGE_FIELDS:"));
}

#[test]
fn proxy_variables_are_read_and_bad_ones_reported_by_name() {
    let mut src = full();
    src.env.insert("HTTPS_PROXY".into(), "http://user:s3cret@proxy.example:3128".into());
    src.dotenv.insert("NO_PROXY".into(), ".internal.example".into());
    let settings = load(&src).unwrap();
    let target = |u: &str| reqwest::Url::parse(u).unwrap();
    assert!(settings.proxy.proxy_for(&target("https://graph.facebook.com/")).is_some());
    assert!(settings.proxy.proxy_for(&target("https://api.internal.example/")).is_none());
    assert!(settings.proxy.proxy_for(&target("https://127.0.0.1:5000/")).is_none());
    assert!(!format!("{settings:?}").contains("s3cret"));

    src.env.insert("https_proxy".into(), "socks5://proxy.example:1080".into());
    src.env.insert("HTTPS_PROXY".into(), String::new());
    src.flags.insert("NO_PROXY".into(), "10.0.0.0/40".into());
    let problems = load(&src).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("https_proxy: "), "{problems:?}");
    assert!(problems[1].starts_with("NO_PROXY: entry 1"), "{problems:?}");
}

#[test]
fn durations_are_humane() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    for bad in ["", "7", "d", "7w", "-1s", "1.5h", "99999999999999999999d"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn dotenv_files_are_read_and_broken_ones_reported_without_content() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.env");
    std::fs::write(&good, "PAGESYNC_BIND=127.0.0.1:7000\nOTHER=ignored\n").unwrap();
    let mut src = Sources::default();
    src.read_dotenv(&good);
    assert_eq!(src.dotenv.get("PAGESYNC_BIND").map(String::as_str), Some("127.0.0.1:7000"));
    assert!(!src.dotenv.contains_key("OTHER"));

    let bad = dir.path().join("bad.env");
    std::fs::write(&bad, "FACEBOOK_APP_SECRET='hunter2\n").unwrap();
    let mut src = Sources::default();
    src.read_dotenv(&bad);
    assert_eq!(src.problems.len(), 1);
    assert!(!src.problems[0].contains("hunter2"));
}
