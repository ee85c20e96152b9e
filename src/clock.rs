//! Wall-clock time as the edge uses it: Unix seconds, and a readable UTC form of
//! them. Its own module so that the Graph client, the routes, the CLI and the sandbox
//! can all read the clock without depending on one another.

/// Unix seconds now. A clock before 1970 reads as 0 rather than failing: every user
/// compares it with times it made itself, so a broken clock shows as expired tokens,
/// not as a panic.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS` for Unix seconds (UTC), without a date library.
pub fn format_unix(secs: u64) -> String {
    let (year, month, day, h, m, s) = pagesync_actors::civil_utc(secs);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_times_format_as_utc() {
        assert_eq!(super::format_unix(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_unix(1_767_225_600), "2026-01-01 00:00:00");
        assert_eq!(super::format_unix(951_782_400), "2000-02-29 00:00:00");
    }
}
