//! The relay (docs/contract.md §7): every verified Meta delivery reaches the bot byte for byte with
//! Meta's own signature headers, durably, in order per Page, retried, dead-lettered.

use std::time::Duration;

use pagesync::verify::{sign_sha1, sign_sha256};
use serde_json::Value;

use crate::helpers::{APP_SECRET, Options, TestApp, delivery, eventually, spawn_app_with};
use crate::sink::{Answer, Sink};

async fn app_with_sink(extra: Vec<(&'static str, String)>) -> (TestApp, Sink) {
    let sink = Sink::start();
    let mut env = vec![("PAGESYNC_FORWARD_URL", sink.url.clone())];
    env.extend(extra);
    let app = spawn_app_with(Options { env, ..Options::default() }).await;
    (app, sink)
}

async fn wait_received(sink: &Sink, n: usize) {
    let done = eventually(Duration::from_secs(10), || async { sink.count() >= n }).await;
    assert!(done, "the bot received {} of {n} requests", sink.count());
}

/// A Messenger message as Meta sends it: compact, with `\u00e9` and `\/` escapes.
const MESSAGE: &str = r#"{"object":"page","entry":[{"id":"7100000001","time":1767225600123,"messaging":[{"sender":{"id":"2400000000000001"},"recipient":{"id":"7100000001"},"timestamp":1767225600000,"message":{"mid":"m_AbC\/dEf","text":"Caf\u00e9 ouvert?"}}]}]}"#;

#[actix_web::test]
async fn a_messenger_message_reaches_the_bot_byte_for_byte_verifiable_and_with_no_graph_call() {
    let (app, sink) = app_with_sink(vec![]).await;
    app.connect_page("7100000001", "tok-relay", "Relay").await;
    let resp = app.post_webhook(MESSAGE).await;
    assert_eq!(resp.status(), 200);
    wait_received(&sink, 1).await;
    let got = &sink.received()[0];
    assert_eq!(got.path, "/bot");
    assert_eq!(&got.body[..], MESSAGE.as_bytes(), "the body changed on the way");
    // The bot's unchanged Meta check: HMAC of the exact bytes under the app secret.
    assert_eq!(got.header("x-hub-signature-256"), Some(sign_sha256(APP_SECRET, &got.body).as_str()));
    assert_eq!(got.header("x-hub-signature"), Some(sign_sha1(APP_SECRET, &got.body).as_str()));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("x-pagesync-attempt"), Some("1"));
    assert!(got.header("x-pagesync-delivery").is_some_and(|id| id.len() >= 16), "{:?}", got.headers);
    app.wait_idle().await;
    assert_eq!(app.graph.total_gets(), 0, "a message cost a Graph call");
}

#[actix_web::test]
async fn only_the_signature_headers_meta_sent_are_relayed() {
    let (app, sink) = app_with_sink(vec![]).await;
    let body = delivery(&["7100000002"]);
    let resp = app.post_webhook_with(&body, &[("X-Hub-Signature-256", sign_sha256(APP_SECRET, body.as_bytes()))]).await;
    assert_eq!(resp.status(), 200);
    wait_received(&sink, 1).await;
    let got = &sink.received()[0];
    assert!(got.header("x-hub-signature-256").is_some());
    assert_eq!(got.header("x-hub-signature"), None, "a header Meta did not send was invented");
}

#[actix_web::test]
async fn every_object_is_relayed_but_refused_deliveries_are_not() {
    let (app, sink) = app_with_sink(vec![]).await;
    let instagram = r#"{"object":"instagram","entry":[{"id":"17841400000000001","time":1,"messaging":[]}]}"#;
    let resp = app.post_webhook(instagram).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ignored");
    assert_eq!(app.post_webhook("not json at all").await.status(), 400);
    assert_eq!(app.post_webhook_with(&delivery(&["1"]), &[]).await.status(), 401);
    let forged = [("X-Hub-Signature-256", sign_sha256("another secret", MESSAGE.as_bytes()))];
    assert_eq!(app.post_webhook_with(MESSAGE, &forged).await.status(), 401);
    wait_received(&sink, 1).await;
    // Give a wrongly relayed delivery time to show up before concluding there is none.
    let settled = app.post_webhook(&delivery(&["7100000009"])).await;
    assert_eq!(settled.status(), 200);
    wait_received(&sink, 2).await;
    let bodies: Vec<String> = sink.received().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    assert_eq!(bodies, vec![instagram.to_owned(), delivery(&["7100000009"])]);
}

#[actix_web::test]
async fn a_failing_bot_gets_the_same_delivery_again_with_the_attempt_counted() {
    let (app, sink) = app_with_sink(vec![]).await;
    sink.push(Answer::Status(500, None));
    sink.push(Answer::Status(429, Some(1)));
    assert_eq!(app.post_webhook(MESSAGE).await.status(), 200);
    wait_received(&sink, 3).await;
    let got = sink.received();
    let ids: Vec<_> = got.iter().map(|r| r.header("x-pagesync-delivery").unwrap().to_owned()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let attempts: Vec<_> = got.iter().map(|r| r.header("x-pagesync-attempt").unwrap().to_owned()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(got.iter().all(|r| r.body == got[0].body));
    let outbox = eventually(Duration::from_secs(5), || async {
        let text = app.get("/metrics").await.text().await.unwrap();
        text.contains("pagesync_outbox_attempts_total{result=\"delivered\"} 1")
            && text.contains("pagesync_outbox_attempts_total{result=\"failed\"} 2")
            && text.contains("pagesync_outbox_pending{kind=\"forward\"} 0")
    })
    .await;
    assert!(outbox, "{}", app.get("/metrics").await.text().await.unwrap());
}

#[actix_web::test]
async fn deliveries_for_one_page_reach_the_bot_in_arrival_order_even_through_failures() {
    let (app, sink) = app_with_sink(vec![]).await;
    // The first delivery fails twice; the second must not overtake it.
    sink.push(Answer::Status(503, None));
    sink.push(Answer::Status(503, None));
    let first = MESSAGE.replace("m_AbC", "m_first");
    let second = MESSAGE.replace("m_AbC", "m_second");
    assert_eq!(app.post_webhook(&first).await.status(), 200);
    assert_eq!(app.post_webhook(&second).await.status(), 200);
    wait_received(&sink, 4).await;
    let order: Vec<String> = sink
        .received()
        .iter()
        .map(|r| if String::from_utf8_lossy(&r.body).contains("m_first") { "first" } else { "second" }.to_owned())
        .collect();
    assert_eq!(order, ["first", "first", "first", "second"]);
}

#[actix_web::test]
async fn a_bot_that_hangs_is_given_up_on_after_its_attempt_and_tried_again() {
    let (app, sink) = app_with_sink(vec![]).await;
    sink.push(Answer::Hang(Duration::from_secs(12)));
    assert_eq!(app.post_webhook(MESSAGE).await.status(), 200, "Meta's 200 never waits for the bot");
    let again = eventually(Duration::from_secs(20), || async { sink.count() >= 2 }).await;
    assert!(again, "the hung attempt was never retried");
    let got = sink.received();
    assert_eq!(got[1].header("x-pagesync-attempt"), Some("2"));
}

#[actix_web::test]
async fn a_forward_failing_past_its_max_age_is_dead_lettered_and_counted() {
    let (app, sink) = app_with_sink(vec![("PAGESYNC_FORWARD_MAX_AGE", "1s".to_owned())]).await;
    sink.set_sticky(Some(Answer::Status(503, None)));
    assert_eq!(app.post_webhook(MESSAGE).await.status(), 200);
    let dead = eventually(Duration::from_secs(10), || async {
        app.get("/metrics").await.text().await.unwrap().contains("pagesync_outbox_dead{kind=\"forward\"} 1")
    })
    .await;
    assert!(dead, "{}", app.get("/metrics").await.text().await.unwrap());
    let tries = sink.count();
    assert!(tries >= 2, "only {tries} attempts before the dead letter");
    // The next delivery of the lane is not held up by the dead one.
    sink.set_sticky(None);
    assert_eq!(app.post_webhook(&MESSAGE.replace("m_AbC", "m_next")).await.status(), 200);
    wait_received(&sink, tries + 1).await;
}
