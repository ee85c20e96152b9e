//! docs/contract.md §4 "Meta webhooks": every row of the status table.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pagesync::verify::{sign_sha1, sign_sha256};
use serde_json::Value;

use pagesync::startup::Tuning;

use crate::helpers::{APP_SECRET, Options, VERIFY_TOKEN, delivery, fast_tuning, spawn_app, spawn_app_with};

/// Escaped unicode and `\/` exactly as on the wire (docs/platform.md, "Webhook deliveries").
const C: &str = r#"{"object":"page","entry":[{"id":"314572800098765","time":1767225720,"changes":[{"field":"name","value":"Caf\u00e9 Lumi\u00e8re \/ Bakery"}]}]}"#;
const C_SHA256: &str = "sha256=0bcd7b6e3e06d40b62274bda76cf372605a27e0c580610f7e7efe85e4ae91147";
const C_SHA1: &str = "sha1=6d3963d525b93ed92d59d4ccda6e4087aa725f09";

#[actix_web::test]
async fn verification_with_the_right_token_echoes_the_challenge_as_plain_text() {
    let app = spawn_app().await;
    let resp = app
        .get(&format!("/facebook/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.text().await.unwrap(), "1158201444");
}

#[actix_web::test]
async fn verification_with_a_wrong_or_missing_token_or_mode_is_forbidden() {
    let app = spawn_app().await;
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        &format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        &format!("hub_mode=subscribe&hub_verify_token={VERIFY_TOKEN}&hub_challenge=1"),
        &format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"),
        "",
    ] {
        let resp = app.get(&format!("/facebook/webhook?{query}")).await;
        assert_eq!(resp.status(), 403, "query {query:?}");
        assert!(resp.text().await.unwrap().is_empty());
    }
}

#[actix_web::test]
async fn a_delivery_signed_with_both_headers_is_accepted() {
    let app = spawn_app().await;
    let resp = app.post_webhook(&delivery(&["111"])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), serde_json::json!({"status": "success"}));
}

#[actix_web::test]
async fn either_header_alone_is_enough_when_right() {
    let app = spawn_app().await;
    let body = delivery(&["111"]);
    let only256 =
        app.post_webhook_with(&body, &[("X-Hub-Signature-256", sign_sha256(APP_SECRET, body.as_bytes()))]).await;
    assert_eq!(only256.status(), 200);
    let only1 = app.post_webhook_with(&body, &[("X-Hub-Signature", sign_sha1(APP_SECRET, body.as_bytes()))]).await;
    assert_eq!(only1.status(), 200);
}

#[actix_web::test]
async fn the_escaped_unicode_vector_verifies_on_its_raw_bytes() {
    let app = spawn_app().await;
    let resp = app
        .post_webhook_with(C, &[("X-Hub-Signature-256", C_SHA256.to_owned()), ("X-Hub-Signature", C_SHA1.to_owned())])
        .await;
    assert_eq!(resp.status(), 200);
    // The same JSON re-serialised as UTF-8 does not match C's signature.
    let reserialised = C.replace(r"\u00e9", "é").replace(r"\u00e8", "è").replace(r"\/", "/");
    let resp = app.post_webhook_with(&reserialised, &[("X-Hub-Signature-256", C_SHA256.to_owned())]).await;
    assert_eq!(resp.status(), 401);
}

#[actix_web::test]
async fn missing_wrong_or_malformed_signatures_get_401() {
    let app = spawn_app().await;
    let body = delivery(&["111"]);
    let good256 = sign_sha256(APP_SECRET, body.as_bytes());
    let good1 = sign_sha1(APP_SECRET, body.as_bytes());
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no header", vec![]),
        ("wrong secret", vec![("X-Hub-Signature-256", sign_sha256("not-the-secret", body.as_bytes()))]),
        (
            "good sha256, bad sha1",
            vec![("X-Hub-Signature-256", good256.clone()), ("X-Hub-Signature", sign_sha1("x", b"y"))],
        ),
        ("bad sha256, good sha1", vec![("X-Hub-Signature-256", sign_sha256("x", b"y")), ("X-Hub-Signature", good1)]),
        ("no prefix", vec![("X-Hub-Signature-256", good256.trim_start_matches("sha256=").to_owned())]),
        ("sha1 prefix on sha256 header", vec![("X-Hub-Signature-256", good256.replace("sha256=", "sha1="))]),
        ("truncated", vec![("X-Hub-Signature-256", good256[..good256.len() - 2].to_owned())]),
        ("not hex", vec![("X-Hub-Signature-256", format!("sha256={}", "zz".repeat(32)))]),
    ];
    for (what, headers) in cases {
        let resp = app.post_webhook_with(&body, &headers).await;
        assert_eq!(resp.status(), 401, "{what}");
    }
    assert_eq!(app.stats().await.accepted, 0, "nothing refused may reach the inbox");
}

#[actix_web::test]
async fn a_signed_body_that_is_not_json_gets_400() {
    let app = spawn_app().await;
    for body in ["not json at all", "{\"object\":\"page\",", "[1,2,3]", r#"{"object":"page","entry":{"id":"1"}}"#] {
        let resp = app.post_webhook(body).await;
        assert_eq!(resp.status(), 400, "{body}");
    }
}

#[actix_web::test]
async fn signed_json_for_another_object_is_ignored() {
    let app = spawn_app().await;
    for body in
        [r#"{"object":"user","entry":[{"id":"1","changes":[{"field":"email"}]}]}"#, r#"{"object":"instagram"}"#, "{}"]
    {
        let resp = app.post_webhook(body).await;
        assert_eq!(resp.status(), 200, "{body}");
        assert_eq!(resp.json::<Value>().await.unwrap(), serde_json::json!({"status": "ignored"}));
    }
    assert_eq!(app.stats().await.accepted, 0);
}

#[actix_web::test]
async fn a_body_over_the_limit_gets_413() {
    let app =
        spawn_app_with(Options { env: vec![("PAGESYNC_WEBHOOK_MAX_BYTES", "256".into())], ..Options::default() }).await;
    let pages: Vec<String> = (0..20).map(|i| format!("{}", 1000 + i)).collect();
    let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    let body = delivery(&refs);
    assert!(body.len() > 256);
    let resp = app.post_webhook(&body).await;
    assert_eq!(resp.status(), 413);
    // A body at the limit still passes.
    let small = delivery(&["1"]);
    assert!(small.len() <= 256);
    assert_eq!(app.post_webhook(&small).await.status(), 200);
}

/// Speaks raw HTTP/1.1 so the test controls exactly how much of the body is sent.
fn raw_request(address: &str, head: &str, body_part: &[u8]) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body_part).unwrap();
    read_answer_head(&mut stream)
}

/// Reads until the status line and headers of an answer are in (or the read times out).
fn read_answer_head(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the status line and headers are in; the server may close after.
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn an_oversized_declared_length_gets_413_before_the_body_is_sent() {
    let app = spawn_app().await;
    let address = app.address.clone();
    let sig = sign_sha256(APP_SECRET, b"whatever");
    let head = format!(
        "POST /facebook/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: 1000000000\r\n\r\n"
    );
    let answer =
        actix_web::rt::task::spawn_blocking(move || raw_request(&address, &head, b"{\"object\":")).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[actix_web::test]
async fn an_endless_chunked_body_gets_413_once_past_the_limit() {
    let app =
        spawn_app_with(Options { env: vec![("PAGESYNC_WEBHOOK_MAX_BYTES", "4096".into())], ..Options::default() })
            .await;
    let address = app.address.clone();
    let sig = sign_sha256(APP_SECRET, b"whatever");
    let head = format!(
        "POST /facebook/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    // 8 KiB of chunks and no terminating chunk: the server must not wait for the end.
    let mut chunks = Vec::new();
    for _ in 0..8 {
        chunks.extend_from_slice(b"400\r\n");
        chunks.extend_from_slice(&[b' '; 1024]);
        chunks.extend_from_slice(b"\r\n");
    }
    let answer = actix_web::rt::task::spawn_blocking(move || raw_request(&address, &head, &chunks)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[actix_web::test]
async fn an_unsigned_oversized_body_is_refused_without_reading_it() {
    let app = spawn_app().await;
    let address = app.address.clone();
    let head =
        "POST /facebook/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n"
            .to_owned();
    let answer = actix_web::rt::task::spawn_blocking(move || raw_request(&address, &head, b"{")).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[actix_web::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
}

#[actix_web::test]
async fn readiness_fails_when_an_actor_stops_answering() {
    let app = spawn_app().await;
    app.actors.vault.send(pagesync_actors::messages::Shutdown).await.unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.text().await.unwrap(), "not ready: token_vault");
    assert_eq!(app.get("/healthz").await.status(), 200, "liveness is separate");
}

/// An app whose webhook bodies must arrive within half a second.
async fn spawn_app_with_short_body_deadline() -> crate::helpers::TestApp {
    let tuning = Tuning { webhook_body_deadline: Duration::from_millis(500), ..fast_tuning() };
    spawn_app_with(Options { tuning, ..Options::default() }).await
}

/// Headers of a signed-looking delivery announcing 100 bytes of body.
fn stalling_head() -> String {
    let sig = sign_sha256(APP_SECRET, b"whatever");
    format!(
        "POST /facebook/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: 100\r\n\r\n"
    )
}

#[actix_web::test]
async fn a_body_that_stalls_after_the_headers_gets_408() {
    let app = spawn_app_with_short_body_deadline().await;
    let address = app.address.clone();
    let started = Instant::now();
    // A few bytes of the 100 announced, then nothing: the answer must come anyway.
    let answer = actix_web::rt::task::spawn_blocking(move || raw_request(&address, &stalling_head(), b"{\"object\":"))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    assert_eq!(app.post_webhook(&delivery(&["1"])).await.status(), 200, "other deliveries still pass");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"result="timed_out""#), "{metrics}");
}

#[actix_web::test]
async fn a_body_that_trickles_in_past_the_deadline_gets_408() {
    // Every byte arrives well within any per-read timeout, but the whole body does not
    // arrive within the deadline: the deadline covers the body, not each read.
    let app = spawn_app_with_short_body_deadline().await;
    let address = app.address.clone();
    let started = Instant::now();
    let answer = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address.trim_start_matches("http://")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(stalling_head().as_bytes()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        // A slow client (the pace is the point of the test, not a synchronisation):
        // one byte every 50 ms, 100 bytes in 5 s; it stops when the server hangs up.
        std::thread::spawn(move || {
            for _ in 0..100 {
                if writer.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        read_answer_head(&mut stream)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());
}

#[actix_web::test]
async fn every_route_that_reads_a_body_answers_408_when_it_stalls() {
    let app = spawn_app_with_short_body_deadline().await;
    for (path, content_type) in [
        ("/shopify/webhooks", "application/json"),
        ("/facebook/deauthorize", "application/x-www-form-urlencoded"),
        ("/facebook/data-deletion", "application/x-www-form-urlencoded"),
    ] {
        let address = app.address.clone();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nX-Shopify-Hmac-Sha256: x\r\nContent-Length: 100\r\n\r\n"
        );
        let started = Instant::now();
        let answer =
            actix_web::rt::task::spawn_blocking(move || raw_request(&address, &head, b"signed_req")).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path} answered after {:?}", started.elapsed());
    }
}
