//! The scheduling rules, one per test, without actix: plain values in, decisions out.

use super::*;

fn limits(max_concurrent: usize) -> Limits {
    Limits {
        max_concurrent,
        backoff_base: Duration::from_secs(60),
        backoff_cap: Duration::from_secs(3600),
        max_transient_rounds: 3,
    }
}

fn page(id: &str) -> PageId {
    PageId::parse(id).unwrap()
}

fn started(pump: Pump) -> Vec<PageId> {
    match pump {
        Pump::Start(s) => s.into_iter().map(|s| s.page).collect(),
        Pump::Paused(_) => panic!("paused"),
    }
}

fn transient() -> FetchError {
    FetchError::Transient { detail: "502".into() }
}

#[test]
fn deliveries_arriving_during_a_refresh_coalesce_into_one_more() {
    let mut s = Scheduler::new(limits(4));
    let now = Instant::now();
    s.enqueue(1, vec![page("1")]);
    assert_eq!(started(s.take_ready(now)), vec![page("1")]);
    for seq in 2..10 {
        s.enqueue(seq, vec![page("1")]);
    }
    assert!(started(s.take_ready(now)).is_empty(), "one refresh per Page at a time");
    let first = s.finish(&page("1"), true, None).unwrap();
    assert_eq!(first.done, vec![1]);
    assert_eq!(started(s.take_ready(now)), vec![page("1")], "one more covers the burst");
    let second = s.finish(&page("1"), true, None).unwrap();
    assert_eq!(second.done, (2..10).collect::<Vec<_>>());
    assert_eq!((s.inbox_depth(), s.running(), s.waiting_pages()), (0, 0, 0));
}

#[test]
fn no_more_than_max_concurrent_run_and_the_rest_start_in_arrival_order() {
    let mut s = Scheduler::new(limits(2));
    let now = Instant::now();
    s.enqueue(1, vec![page("1"), page("2"), page("3"), page("4")]);
    assert_eq!(started(s.take_ready(now)), vec![page("1"), page("2")]);
    assert_eq!((s.running(), s.waiting_pages()), (2, 2));
    assert!(s.finish(&page("2"), true, None).unwrap().done.is_empty(), "the delivery has Pages left");
    assert_eq!(started(s.take_ready(now)), vec![page("3")]);
}

#[test]
fn a_delivery_is_done_when_its_last_page_is() {
    let mut s = Scheduler::new(limits(4));
    s.enqueue(7, vec![page("1"), page("2")]);
    started(s.take_ready(Instant::now()));
    assert!(s.finish(&page("1"), true, None).unwrap().done.is_empty());
    assert_eq!(s.finish(&page("2"), false, None).unwrap().done, vec![7], "a failure also finishes it");
}

#[test]
fn a_transient_failure_keeps_the_deliveries_and_backs_off_until_the_rounds_run_out() {
    let mut s = Scheduler::new(limits(4));
    let now = Instant::now();
    s.enqueue(1, vec![page("1")]);
    for round in 0..2u32 {
        started(s.take_ready(now));
        let delay = s.after_failure(&page("1"), &transient(), now).expect("retried");
        let base = 60_000u64 << round;
        assert!((base / 2..=base).contains(&(delay.as_millis() as u64)), "round {round}: {delay:?}");
        let f = s.finish(&page("1"), false, Some(delay)).unwrap();
        assert_eq!(f, Finished { retry_in: Some(delay), done: vec![] });
        assert!(started(s.take_ready(now)).is_empty(), "waits for its timer");
        s.requeue(page("1"));
    }
    started(s.take_ready(now));
    assert_eq!(s.after_failure(&page("1"), &transient(), now), None, "given up after three rounds");
    assert_eq!(s.finish(&page("1"), false, None).unwrap().done, vec![1]);
}

#[test]
fn auth_and_permanent_failures_are_not_retried() {
    let mut s = Scheduler::new(limits(4));
    let auth = FetchError::Auth { code: 190, subcode: None, message: "expired".into() };
    let permanent = FetchError::Permanent { code: Some(100), detail: "gone".into() };
    assert_eq!(s.after_failure(&page("1"), &auth, Instant::now()), None);
    assert_eq!(s.after_failure(&page("1"), &permanent, Instant::now()), None);
}

#[test]
fn an_app_rate_limit_pauses_every_page_until_its_end_with_one_wake_up() {
    let mut s = Scheduler::new(limits(4));
    let now = Instant::now();
    s.enqueue(1, vec![page("1")]);
    started(s.take_ready(now));
    let limit = FetchError::RateLimited { code: 4, scope: LimitScope::App, retry_after: Some(Duration::from_secs(30)) };
    assert_eq!(s.after_failure(&page("1"), &limit, now), Some(Duration::from_secs(30)));
    s.finish(&page("1"), false, Some(Duration::from_secs(30)));
    s.enqueue(2, vec![page("2")]);
    assert_eq!(s.take_ready(now), Pump::Paused(Some(Duration::from_secs(30))));
    assert_eq!(s.take_ready(now + Duration::from_secs(1)), Pump::Paused(None), "one timer is enough");
    s.woke();
    assert_eq!(started(s.take_ready(now + Duration::from_secs(30))), vec![page("2")]);
}

#[test]
fn a_page_rate_limit_pauses_only_that_page_and_caps_the_hint() {
    let mut s = Scheduler::new(limits(4));
    let now = Instant::now();
    let limit = FetchError::RateLimited { code: 32, scope: LimitScope::Page, retry_after: Some(Duration::MAX) };
    assert_eq!(s.after_failure(&page("1"), &limit, now), Some(MAX_PAUSE));
    s.enqueue(1, vec![page("2")]);
    assert_eq!(started(s.take_ready(now)), vec![page("2")]);
}

#[test]
fn callers_hear_whether_the_refresh_they_waited_for_wrote() {
    let mut s = Scheduler::new(limits(4));
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    s.request(page("1"), tx, true);
    let Pump::Start(start) = s.take_ready(Instant::now()) else { panic!("paused") };
    assert_eq!(start, vec![Started { page: page("1"), check_token: true }]);
    let (later, mut later_rx) = tokio::sync::oneshot::channel();
    s.request(page("1"), later, false);
    s.finish(&page("1"), true, None);
    assert_eq!(rx.try_recv(), Ok(true));
    assert!(later_rx.try_recv().is_err(), "the next refresh answers it");
    let Pump::Start(start) = s.take_ready(Instant::now()) else { panic!("paused") };
    assert_eq!(start, vec![Started { page: page("1"), check_token: false }]);
}

#[test]
fn a_deleted_page_drops_what_waits_and_finishes_its_deliveries() {
    let mut s = Scheduler::new(limits(1));
    s.enqueue(1, vec![page("1")]);
    s.enqueue(2, vec![page("2"), page("1")]);
    started(s.take_ready(Instant::now()));
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    s.request(page("2"), tx, false);
    assert!(s.drop_waiting(&page("2")).is_empty(), "delivery 2 still waits for Page 1");
    assert_eq!(rx.try_recv(), Ok(false));
    // Page 1's refresh covered both deliveries; Page 2's part of delivery 2 was dropped.
    assert_eq!(s.finish(&page("1"), true, None).unwrap().done, vec![1, 2]);
    // Page 2 was already in the ready queue: its slot runs and covers nothing.
    assert_eq!(started(s.take_ready(Instant::now())), vec![page("2")]);
    assert!(s.finish(&page("2"), false, None).unwrap().done.is_empty());
    assert_eq!((s.inbox_depth(), s.running(), s.waiting_pages()), (0, 0, 0));
}

#[test]
fn absurd_pauses_saturate_instead_of_panicking() {
    let now = Instant::now();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut delays = vec![Duration::ZERO, Duration::from_nanos(1), Duration::MAX, Duration::from_secs(u64::MAX)];
    for _ in 0..2000 {
        // xorshift: a fixed, repeatable spread over the whole u64 range.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        delays.push(Duration::from_secs(rng));
        delays.push(Duration::from_millis(rng));
    }
    for delay in delays {
        let until = deadline_after(now, delay);
        assert!(until >= now && until <= now + MAX_PAUSE, "{delay:?}");
    }
}

#[test]
fn after_a_burst_over_many_pages_the_maps_give_their_room_back() {
    let mut s = Scheduler::new(limits(64));
    let now = Instant::now();
    let pages: Vec<PageId> = (1..=50_000).map(|n| page(&n.to_string())).collect();
    for (seq, p) in pages.iter().enumerate() {
        s.enqueue(seq as u64, vec![p.clone()]);
    }
    let grown = (s.pages.capacity(), s.deliveries.capacity(), s.ready.capacity());
    assert!(grown.0 >= 50_000 && grown.1 >= 50_000 && grown.2 >= 50_000, "{grown:?}");
    let mut done = 0;
    while done < pages.len() {
        let running = started(s.take_ready(now));
        assert!(!running.is_empty(), "work stalled with {done} done");
        for p in running {
            done += s.finish(&p, true, None).unwrap().done.len();
        }
    }
    assert_eq!((s.inbox_depth(), s.running(), s.waiting_pages()), (0, 0, 0));
    let left = (s.pages.capacity(), s.deliveries.capacity(), s.ready.capacity());
    // What is kept is the floor, give or take the hash map's rounding to a power of two.
    assert!(left.0 <= 2 * KEEP_CAPACITY && left.1 <= 2 * KEEP_CAPACITY && left.2 <= 2 * KEEP_CAPACITY, "{left:?}");
}

/// The depths as published, and as the scheduler's own state says they are (the
/// waiting Pages by walking every Page, as the count was kept before).
fn published_and_true(s: &Scheduler) -> ((u64, usize, usize), (u64, usize, usize)) {
    let stats = s.figures.stats();
    let walked = s.pages.values().filter(|w| w.scheduled).count();
    ((s.figures.inbox_depth(), stats.running, stats.waiting_pages), (s.deliveries.len() as u64, s.running, walked))
}

#[test]
fn the_published_depths_follow_every_change_of_the_schedule() {
    let mut s = Scheduler::new(limits(3));
    let now = Instant::now();
    // A fixed, repeatable mix of every operation that moves a depth.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut running: Vec<PageId> = Vec::new();
    let mut backing_off: Vec<PageId> = Vec::new();
    let mut waiters = Vec::new();
    for seq in 0..3000u64 {
        match next(8) {
            0 | 1 => {
                let pages = (0..=next(3)).map(|_| page(&next(12).to_string())).collect();
                s.enqueue(seq, pages);
            }
            2 => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                waiters.push(rx);
                s.request(page(&next(12).to_string()), tx, next(2) == 0);
            }
            3 | 4 => {
                if let Pump::Start(started) = s.take_ready(now) {
                    running.extend(started.into_iter().map(|st| st.page));
                }
            }
            5 if !running.is_empty() => {
                let page = running.swap_remove(next(running.len() as u64) as usize);
                let retry = (next(4) == 0).then(|| Duration::from_secs(1));
                if let Some(f) = s.finish(&page, next(2) == 0, retry)
                    && f.retry_in.is_some()
                {
                    backing_off.push(page);
                }
            }
            6 if !backing_off.is_empty() => s.requeue(backing_off.swap_remove(0)),
            7 => {
                let _ = s.drop_waiting(&page(&next(12).to_string()));
            }
            _ => {}
        }
        let (published, truth) = published_and_true(&s);
        assert_eq!(published, truth, "after step {seq}");
    }
    // Drain: everything finishes, the figures come back to zero.
    loop {
        backing_off.drain(..).for_each(|p| s.requeue(p));
        if let Pump::Start(started) = s.take_ready(now) {
            running.extend(started.into_iter().map(|st| st.page));
        }
        let Some(page) = running.pop() else { break };
        s.finish(&page, true, None);
    }
    assert_eq!(published_and_true(&s), ((0, 0, 0), (0, 0, 0)));
}

#[test]
fn a_page_covers_a_new_delivery_only_while_a_recorded_one_waits_for_a_refresh_not_yet_started() {
    let record = |seq: u64| seq < 100;
    let mut s = Scheduler::new(limits(4));
    let now = Instant::now();
    assert!(!s.covers(&page("1"), record), "nothing queued");
    s.enqueue(1, vec![page("1")]);
    assert!(s.covers(&page("1"), record), "queued behind record 1, not started");
    assert_eq!(started(s.take_ready(now)), vec![page("1")]);
    assert!(!s.covers(&page("1"), record), "running: its Graph read may predate a new delivery");
    s.enqueue(100, vec![page("1")]);
    assert!(!s.covers(&page("1"), record), "only a delivery without a record waits");
    s.enqueue(2, vec![page("1")]);
    assert!(s.covers(&page("1"), record));

    // A failed refresh puts its deliveries back in line: still covered.
    assert_eq!(s.finish(&page("1"), false, Some(Duration::from_secs(60))).unwrap().done, Vec::<u64>::new());
    assert!(s.covers(&page("1"), record));
    // A deleted Page's queue is gone, and with it the cover.
    let mut done = s.drop_waiting(&page("1"));
    done.sort_unstable();
    assert_eq!(done, vec![1, 2, 100]);
    assert!(!s.covers(&page("1"), record));
}
