//! The poll's arithmetic: which cycle the wall clock is in, and when in its cycle each
//! Page of a run starts. Plain integers (milliseconds), no clock and no actix, so that
//! every rule is tested here on its own.
//!
//! Cycle `c` is the stretch `[c·I, (c+1)·I)` of Unix time, `I` the poll interval. A run
//! of `n` Pages starts its `j`-th Page (in list order) at `⌊j·S/n⌋` into the cycle,
//! `S = I·17/20` the *span*: the starts are evenly spaced over the first 85 % of the
//! interval, and the last 15 % is headroom, for the last Pages' refreshes, for the
//! usage slow-down and for a Graph slower than the pace to catch up in, so that a run
//! ends before the next cycle begins.
//!
//! All products are taken in `u128` (two `u64` always fit) and results that do not fit
//! a `u64` saturate: an interval of `u64::MAX` ms or 0 Pages neither panics nor
//! divides by zero.

use std::time::Duration;

/// The span is this share of the interval: `SPAN_NUMERATOR / SPAN_DENOMINATOR` (85 %).
pub const SPAN_NUMERATOR: u64 = 17;
pub const SPAN_DENOMINATOR: u64 = 20;

/// A duration in whole milliseconds, `u64::MAX` when it has more.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where a moment falls among the cycles of an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// The cycle's number: whole intervals since the Unix epoch.
    pub index: u64,
    /// Milliseconds since the cycle began.
    pub phase: u64,
}

/// The cycle that `now` (Unix milliseconds) falls in. An interval of 0 ms counts as 1.
pub fn cycle_at(now: u64, interval: u64) -> Cycle {
    let interval = interval.max(1);
    Cycle { index: now / interval, phase: now % interval }
}

/// Unix milliseconds at which cycle `index` begins (`u64::MAX` if later than that).
pub fn cycle_start(index: u64, interval: u64) -> u64 {
    saturate(u128::from(index) * u128::from(interval))
}

/// Milliseconds from `now` until cycle `index` begins: 0 once it has begun, and never
/// more than one interval (a wall clock set back must not hold the poll up for longer).
pub fn until_cycle(index: u64, interval: u64, now: u64) -> u64 {
    cycle_start(index, interval).saturating_sub(now).min(interval)
}

/// The cycle a timer run goes for after the run of cycle `finished` ended at `now`:
/// the next one, or, when that run overran it, the cycle `now` is in (the cycles that
/// went by meanwhile cannot be had back).
pub fn next_cycle(finished: u64, interval: u64, now: u64) -> u64 {
    finished.saturating_add(1).max(cycle_at(now, interval).index)
}

/// The longest a resumed run holds its Pages back (see [`settle`]): 5 minutes.
pub const SETTLE_MAX: u64 = 300_000;

/// How long the first run after a start holds its Pages back: a tenth of the interval,
/// at most [`SETTLE_MAX`]. The first minutes after a start belong to the inbox replay
/// and the deliveries that queued meanwhile; the resumed Pages keep their spacing,
/// shifted by this much, which the headroom absorbs (a tenth is less than the 15 % the
/// span leaves).
pub fn settle(interval: u64) -> u64 {
    (interval / 10).min(SETTLE_MAX)
}

/// When each Page of a run starts, for `pages` Pages in an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Milliseconds of the cycle over which the starts are spread.
    span: u64,
    /// Pages counted for this run.
    pages: u64,
}

impl Pace {
    pub fn new(interval: u64, pages: u64) -> Pace {
        let span = u128::from(interval) * u128::from(SPAN_NUMERATOR) / u128::from(SPAN_DENOMINATOR);
        Pace { span: saturate(span), pages }
    }

    /// Pages counted for this run.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Milliseconds from the cycle's start to Page `j`'s start: `⌊j·S/n⌋`, always less
    /// than the span for a Page that was counted. A Page the count did not see (the
    /// list grew during the run) goes after the span.
    pub fn due(&self, j: u64) -> u64 {
        if self.pages == 0 {
            return self.span;
        }
        saturate(u128::from(j) * u128::from(self.span) / u128::from(self.pages))
    }

    /// Milliseconds from a run's start to Page `j`'s start, for a run that started
    /// `phase` ms into its cycle: 0 for a Page whose time has already come.
    pub fn delay(&self, j: u64, phase: u64) -> u64 {
        self.due(j).saturating_sub(phase)
    }

    /// The first Page whose start is at or after `phase`: where a daemon started
    /// `phase` ms into a cycle resumes (the Pages before were this cycle's business
    /// before the start). `pages` when none is left.
    pub fn resume_at(&self, phase: u64) -> u64 {
        if self.span == 0 {
            // Every Page is due at 0.
            return if phase == 0 { 0 } else { self.pages };
        }
        // `due(j) >= phase` ⇔ `j·S/n >= phase` (phase is whole) ⇔ `j >= ⌈phase·n/S⌉`.
        let first = (u128::from(phase) * u128::from(self.pages)).div_ceil(u128::from(self.span));
        saturate(first).min(self.pages)
    }
}

fn saturate(x: u128) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_evenly_spaced_over_85_percent_of_the_interval() {
        let pace = Pace::new(1_000, 10);
        let dues: Vec<u64> = (0..10).map(|j| pace.due(j)).collect();
        assert_eq!(dues, [0, 85, 170, 255, 340, 425, 510, 595, 680, 765]);
        // 100,000 Pages in 24 h: one every 734.4 ms, the last at 20.4 h.
        let day = 86_400_000;
        let pace = Pace::new(day, 100_000);
        let gaps: Vec<u64> = (1..100_000).map(|j| pace.due(j) - pace.due(j - 1)).collect();
        assert!(gaps.iter().all(|g| (734..=735).contains(g)), "{:?}", (gaps.iter().min(), gaps.iter().max()));
        assert_eq!(pace.due(99_999), 73_439_265);
        assert!(pace.due(99_999) < day * 85 / 100);
    }

    #[test]
    fn uneven_counts_differ_by_at_most_one_millisecond_between_gaps() {
        for (interval, pages) in [(1_000, 3), (1_000, 7), (60_000, 999), (7, 3), (10, 13)] {
            let pace = Pace::new(interval, pages);
            let gaps: Vec<u64> = (1..pages).map(|j| pace.due(j) - pace.due(j - 1)).collect();
            let (min, max) = (gaps.iter().min().copied().unwrap_or(0), gaps.iter().max().copied().unwrap_or(0));
            assert!(max - min <= 1, "{interval} ms, {pages} Pages: gaps {min}..{max}");
            assert!(pace.due(pages - 1) < interval, "{interval} ms, {pages} Pages");
        }
    }

    #[test]
    fn more_pages_than_milliseconds_start_in_order_several_per_millisecond() {
        let pace = Pace::new(10, 100);
        let dues: Vec<u64> = (0..100).map(|j| pace.due(j)).collect();
        assert!(dues.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((dues[0], dues[99]), (0, 7));
    }

    #[test]
    fn a_run_that_starts_late_catches_up_from_its_first_page() {
        let pace = Pace::new(1_000, 10);
        // 200 ms late: the Pages due at 0, 85 and 170 go at once, the rest keep their time.
        let delays: Vec<u64> = (0..10).map(|j| pace.delay(j, 200)).collect();
        assert_eq!(delays, [0, 0, 0, 55, 140, 225, 310, 395, 480, 565]);
    }

    #[test]
    fn a_restart_resumes_at_the_first_page_still_due() {
        for (interval, pages) in [(1_000, 10), (1_000, 1), (1_000, 3), (10, 100), (1, 5), (0, 5), (3, 0), (1_000, 0)] {
            let pace = Pace::new(interval, pages);
            for phase in 0..=interval + 2 {
                let expected = (0..pages).find(|&j| pace.due(j) >= phase).unwrap_or(pages);
                assert_eq!(pace.resume_at(phase), expected, "{interval} ms, {pages} Pages, phase {phase}");
            }
        }
        let pace = Pace::new(1_000, 10);
        assert_eq!(pace.resume_at(0), 0, "at a cycle's start, every Page");
        assert_eq!(pace.resume_at(500), 6, "half way: the Pages due at 510 ms and later");
        assert_eq!(pace.resume_at(900), 10, "in the headroom: none left");
    }

    #[test]
    fn absurd_intervals_and_counts_neither_panic_nor_divide_by_zero() {
        for interval in [0, 1, 2, u64::MAX - 1, u64::MAX] {
            for pages in [0, 1, 2, u64::MAX - 1, u64::MAX] {
                let pace = Pace::new(interval, pages);
                for j in [0, 1, pages / 2, pages.saturating_sub(1), pages, u64::MAX] {
                    let due = pace.due(j);
                    if j < pages {
                        assert!(due < interval.max(1), "{interval} ms, {pages} Pages, Page {j}: {due}");
                    }
                    let _ = pace.delay(j, u64::MAX);
                }
                for phase in [0, 1, interval / 2, u64::MAX] {
                    assert!(pace.resume_at(phase) <= pages);
                }
                let cycle = cycle_at(u64::MAX, interval);
                assert!(cycle.phase < interval.max(1));
                assert!(until_cycle(u64::MAX, interval, 0) <= interval);
                assert_eq!(next_cycle(u64::MAX, interval, u64::MAX), u64::MAX);
            }
        }
        assert_eq!(Pace::new(u64::MAX, 1).due(u64::MAX), u64::MAX, "saturates");
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn a_resumed_run_settles_a_tenth_of_the_interval_at_most_five_minutes_within_the_headroom() {
        assert_eq!(settle(1_000), 100);
        assert_eq!(settle(600_000), 60_000, "10 minutes: 1 minute");
        assert_eq!(settle(86_400_000), 300_000, "24 h: 5 minutes");
        assert_eq!((settle(0), settle(u64::MAX)), (0, SETTLE_MAX));
        for interval in [1, 10, 1_000, 600_000, 3_000_000, 86_400_000, u64::MAX] {
            let pace = Pace::new(interval, 1_000);
            // The last resumed Page, shifted, still starts within its cycle.
            assert!(pace.due(999).saturating_add(settle(interval)) < interval, "{interval} ms");
        }
    }

    #[test]
    fn cycles_follow_the_wall_clock() {
        assert_eq!(cycle_at(12_345, 1_000), Cycle { index: 12, phase: 345 });
        assert_eq!(cycle_at(5, 0), Cycle { index: 5, phase: 0 });
        assert_eq!(cycle_start(13, 1_000), 13_000);
        assert_eq!(until_cycle(13, 1_000, 12_345), 655);
        assert_eq!(until_cycle(12, 1_000, 12_345), 0, "begun already: at once");
        assert_eq!(until_cycle(20, 1_000, 12_345), 1_000, "a clock set back waits one interval at most");
    }

    #[test]
    fn after_a_run_the_next_cycle_is_the_following_one_or_the_current_one_after_an_overrun() {
        assert_eq!(next_cycle(12, 1_000, 12_900), 13, "ended in time: the next cycle");
        assert_eq!(next_cycle(12, 1_000, 13_100), 13, "overran a little: the next cycle, at once");
        assert_eq!(next_cycle(12, 1_000, 15_100), 15, "overran by cycles: the current one");
        assert_eq!(next_cycle(12, 1_000, 11_000), 13, "a clock set back never repeats a cycle");
    }
}
