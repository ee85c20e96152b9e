//! OutboxActor: per-lane order, retries, dead letters and restarts, on a temporary store
//! with a scripted sender.

use std::sync::Mutex;

use super::*;
use crate::store::StoreConfig;

/// Records every attempt; fails the ids in `failing` (each listed once per failure).
#[derive(Default)]
struct FakeSender {
    attempts: Mutex<Vec<(String, u32, Vec<u8>)>>,
    failing: Mutex<Vec<String>>,
    /// Ids that always fail.
    broken: Mutex<Vec<String>>,
}

impl OutboxSender for FakeSender {
    fn send(&self, item: Outgoing) -> BoxFuture<'static, Result<(), SendFailure>> {
        let id = item.meta.id.clone();
        self.attempts.lock().unwrap().push((id.clone(), item.attempt, item.body));
        let mut failing = self.failing.lock().unwrap();
        let fail = if let Some(i) = failing.iter().position(|f| *f == id) {
            failing.remove(i);
            true
        } else {
            self.broken.lock().unwrap().contains(&id)
        };
        Box::pin(async move {
            // A little latency, so that lanes overlap.
            actix::clock::sleep(Duration::from_millis(5)).await;
            if fail { Err(SendFailure { detail: "HTTP 503".into(), retry_after: None }) } else { Ok(()) }
        })
    }
}

fn fast() -> OutboxConfig {
    OutboxConfig {
        max_age: Duration::from_secs(60),
        max_in_flight: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(40),
        sending: true,
    }
}

async fn until(mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
}

async fn enqueue(store: &Store, queue: &OutboxQueue, addr: &Addr<OutboxActor>, lane: &str, body: &str) -> String {
    let prepared = queue.prepare(
        ItemKind::Forward,
        lane,
        vec![("Content-Type".into(), "application/json".into())],
        body.as_bytes(),
    );
    let id = {
        let (_, _, raw) = &prepared.write;
        decode(raw).unwrap().0.id
    };
    store.commit_all(vec![prepared.write]).await.unwrap();
    addr.send(prepared.enqueued).await.unwrap();
    id
}

#[actix::test]
async fn a_lane_sends_in_order_and_waits_for_its_head_while_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let sender = Arc::new(FakeSender::default());
    let (actor, queue) = OutboxActor::new(&store, sender.clone(), fast()).unwrap();
    let addr = actor.start();
    // The head of lane 1 fails twice; lane 2 must not wait for it, lane 1's second
    // item must.
    let first = queue.prepare(ItemKind::Forward, "1", vec![], b"a1");
    let first_id = decode(&first.write.2).unwrap().0.id;
    sender.failing.lock().unwrap().extend([first_id.clone(), first_id.clone()]);
    store.commit_all(vec![first.write]).await.unwrap();
    addr.send(first.enqueued).await.unwrap();
    let second = enqueue(&store, &queue, &addr, "1", "a2").await;
    let other = enqueue(&store, &queue, &addr, "2", "b1").await;
    until(|| addr.connected() && sender.attempts.lock().unwrap().len() >= 5).await;
    let attempts = sender.attempts.lock().unwrap().clone();
    let order: Vec<(&str, u32)> = attempts.iter().map(|(id, n, _)| (id.as_str(), *n)).collect();
    let pos = |id: &str, n: u32| order.iter().position(|x| *x == (id, n)).unwrap();
    assert!(pos(&other, 1) < pos(&first_id, 3), "lane 2 waited for lane 1: {order:?}");
    assert!(pos(&first_id, 3) < pos(&second, 1), "lane 1 sent out of order: {order:?}");
    assert_eq!(attempts.iter().find(|(id, _, _)| *id == second).unwrap().2, b"a2");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut stats = addr.send(GetOutboxStats).await.unwrap();
    while stats.delivered < 3 && std::time::Instant::now() < deadline {
        actix::clock::sleep(Duration::from_millis(5)).await;
        stats = addr.send(GetOutboxStats).await.unwrap();
    }
    assert_eq!((stats.pending_forwards, stats.delivered, stats.failed), (0, 3, 2));
    assert!(store.tree(trees::OUTBOX).unwrap().is_empty());
}

#[actix::test]
async fn an_item_failing_past_its_max_age_is_dead_lettered_and_can_be_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let sender = Arc::new(FakeSender::default());
    let config = OutboxConfig { max_age: Duration::from_millis(100), ..fast() };
    let (actor, queue) = OutboxActor::new(&store, sender.clone(), config).unwrap();
    let addr = actor.start();
    let prepared = queue.prepare(ItemKind::Forward, "7", vec![], b"{}");
    let dead_id = decode(&prepared.write.2).unwrap().0.id;
    sender.broken.lock().unwrap().push(dead_id.clone());
    store.commit_all(vec![prepared.write]).await.unwrap();
    addr.send(prepared.enqueued).await.unwrap();
    let next = enqueue(&store, &queue, &addr, "7", "after").await;
    until(|| sender.attempts.lock().unwrap().iter().any(|(id, _, _)| *id == next)).await;
    let stats = addr.send(GetOutboxStats).await.unwrap();
    assert_eq!((stats.dead_forwards, stats.dead_lettered), (1, 1), "{stats:?}");
    let listing = addr.send(ListOutbox { limit: 10 }).await.unwrap().unwrap();
    let row = listing.items.iter().find(|r| r.id == dead_id).unwrap();
    assert_eq!((row.state, row.last_error.as_deref()), ("dead", Some("HTTP 503")));
    assert!(row.attempts >= 2);

    // Fixed receiver: retry puts it back under the same id.
    sender.broken.lock().unwrap().clear();
    assert_eq!(addr.send(RetryDead { ids: vec![], all: true }).await.unwrap().unwrap(), 1);
    until(|| sender.attempts.lock().unwrap().iter().filter(|(id, n, _)| *id == dead_id && *n == 1).count() == 2).await;
    until(|| store.tree(trees::OUTBOX).unwrap().is_empty() && store.tree(trees::OUTBOX_DEAD).unwrap().is_empty()).await;
}

#[actix::test]
async fn pending_items_are_sent_after_a_restart_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let (_, queue) = OutboxActor::new(&store, Arc::new(FakeSender::default()), fast()).unwrap();
    // Committed, never handed to a running actor (a crash right after the commit).
    let mut ids = Vec::new();
    let mut writes = Vec::new();
    for body in ["one", "two", "three"] {
        let p = queue.prepare(ItemKind::Forward, "9", vec![], body.as_bytes());
        ids.push(decode(&p.write.2).unwrap().0.id);
        writes.push(p.write);
    }
    store.commit_all(writes).await.unwrap();
    let sender = Arc::new(FakeSender::default());
    let (actor, queue) = OutboxActor::new(&store, sender.clone(), fast()).unwrap();
    let _addr = actor.start();
    until(|| sender.attempts.lock().unwrap().len() == 3).await;
    let sent: Vec<String> = sender.attempts.lock().unwrap().iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(sent, ids, "replayed out of order or under new ids");
    // New items after a restart never reuse a pending item's key.
    let p = queue.prepare(ItemKind::Forward, "9", vec![], b"four");
    assert!(u64::from_be_bytes(p.write.1.clone().try_into().unwrap()) >= 3);
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339_utc(1_767_225_600), "2026-01-01T00:00:00Z");
    assert_eq!(rfc3339_utc(1_614_265_330), "2021-02-25T15:02:10Z");
    let _ = rfc3339_utc(u64::MAX);
}

#[test]
fn retry_pauses_grow_to_the_cap_and_honour_retry_after_within_bounds() {
    let config = OutboxConfig::default();
    for attempts in [0, 1, 2, 5, 30, u32::MAX] {
        let d = retry_delay(&config, attempts, None);
        assert!(d <= config.cap, "{attempts}: {d:?}");
    }
    assert!(retry_delay(&config, 1, None) <= Duration::from_secs(1));
    assert_eq!(retry_delay(&config, 1, Some(Duration::from_secs(30))), Duration::from_secs(30));
    assert_eq!(retry_delay(&config, 1, Some(Duration::ZERO)), config.base);
    assert_eq!(retry_delay(&config, 1, Some(Duration::MAX)), Duration::from_secs(3600));
}

#[test]
fn records_round_trip_bodies_byte_for_byte_and_refuse_garbage() {
    let meta = ItemMeta {
        id: "fwd_1".into(),
        kind: ItemKind::Forward,
        lane: "1".into(),
        queued_ms: 1,
        attempts: 0,
        last_attempt_ms: None,
        last_error: None,
        headers: vec![("X-Hub-Signature-256".into(), "sha256=00".into())],
    };
    let body = br#"{"a":"Caf\u00e9 \/"}"#;
    let raw = encode(&meta, body);
    assert_eq!(decode(&raw), Some((meta, &body[..])));
    for garbage in [&b""[..], &[0, 0, 0, 9, b'{'], &[0xff, 0xff, 0xff, 0xff], &[0, 0, 0, 2, b'{', b'}']] {
        assert!(decode(garbage).is_none(), "{garbage:?}");
    }
}

#[actix::test]
async fn a_success_wakes_lanes_waiting_out_a_back_off_and_kinds_never_share_a_lane() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let sender = Arc::new(FakeSender::default());
    // Long pauses: only a wake-up can deliver the waiting lane within the test.
    let config = OutboxConfig { base: Duration::from_secs(30), cap: Duration::from_secs(60), ..fast() };
    let (actor, queue) = OutboxActor::new(&store, sender.clone(), config).unwrap();
    let addr = actor.start();
    let stuck = queue.prepare(ItemKind::Forward, "1", vec![], b"stuck");
    let stuck_id = decode(&stuck.write.2).unwrap().0.id;
    sender.failing.lock().unwrap().push(stuck_id.clone());
    // An event of the same Page is not held up by the failing forward.
    let event = queue.prepare(ItemKind::Event, "1", vec![], b"event");
    let event_id = decode(&event.write.2).unwrap().0.id;
    sender.failing.lock().unwrap().push(event_id.clone());
    store.commit_all(vec![stuck.write, event.write]).await.unwrap();
    addr.send(stuck.enqueued).await.unwrap();
    addr.send(event.enqueued).await.unwrap();
    until(|| sender.attempts.lock().unwrap().len() == 2).await;
    // The receiver is back: a forward of another Page succeeds and wakes Page 1's
    // forward lane (not the event lane: another receiver).
    let other = enqueue(&store, &queue, &addr, "2", "other").await;
    until(|| sender.attempts.lock().unwrap().iter().filter(|(id, _, _)| *id == stuck_id).count() == 2).await;
    let attempts = sender.attempts.lock().unwrap().clone();
    assert!(attempts.iter().any(|(id, _, _)| *id == other));
    assert_eq!(attempts.iter().filter(|(id, _, _)| *id == event_id).count(), 1, "the event lane was woken too");
}

#[actix::test]
async fn an_item_announced_twice_is_sent_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let sender = Arc::new(FakeSender::default());
    let (actor, queue) = OutboxActor::new(&store, sender.clone(), fast()).unwrap();
    let addr = actor.start();
    let p = queue.prepare(ItemKind::Forward, "5", vec![], b"once");
    store.commit_all(vec![p.write]).await.unwrap();
    addr.send(p.enqueued.clone()).await.unwrap();
    addr.send(p.enqueued.clone()).await.unwrap();
    until(|| store.tree(trees::OUTBOX).unwrap().is_empty()).await;
    // Late again, after delivery: nothing is sent and nothing stays counted.
    addr.send(p.enqueued).await.unwrap();
    let stats = addr.send(GetOutboxStats).await.unwrap();
    assert_eq!((stats.pending_forwards, stats.delivered), (0, 1), "{stats:?}");
    assert_eq!(sender.attempts.lock().unwrap().len(), 1);
}

#[actix::test]
async fn the_published_figures_count_and_date_pending_items_and_follow_sends_without_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let sender = Arc::new(FakeSender::default());
    // Not sending: the items stay pending.
    let (actor, queue) = OutboxActor::new(&store, sender.clone(), OutboxConfig { sending: false, ..fast() }).unwrap();
    let figures = actor.figures();
    let addr = actor.start();
    let first = queue.prepare(ItemKind::Forward, "1", vec![], b"a");
    let first_ms = first.enqueued.queued_ms;
    store.commit_all(vec![first.write]).await.unwrap();
    addr.send(first.enqueued).await.unwrap();
    let event = queue.prepare(ItemKind::Event, "1", vec![], b"{}");
    store.commit_all(vec![event.write]).await.unwrap();
    addr.send(event.enqueued).await.unwrap();
    // Read without a message; the age is the first item's, at the time asked.
    let stats = figures.stats_at(first_ms + 7_000);
    assert_eq!((stats.pending_forwards, stats.pending_events, stats.oldest_age_seconds), (1, 1, 7), "{stats:?}");
    let asked = addr.send(GetOutboxStats).await.unwrap();
    assert_eq!(
        OutboxStats { oldest_age_seconds: 0, ..figures.stats() },
        OutboxStats { oldest_age_seconds: 0, ..asked }
    );
    addr.send(Shutdown).await.unwrap();

    // A sending outbox on the same store reads both back and delivers them: nothing
    // pending, no oldest item, the attempts counted.
    let (actor, _) = OutboxActor::new(&store, sender.clone(), fast()).unwrap();
    let figures = actor.figures();
    let addr = actor.start();
    until(|| figures.stats().delivered == 2).await;
    let stats = figures.stats_at(u64::MAX);
    assert_eq!((stats.pending_forwards, stats.pending_events, stats.oldest_age_seconds), (0, 0, 0), "{stats:?}");
    assert_eq!(figures.stats(), addr.send(GetOutboxStats).await.unwrap());
}
