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
