//! RFC 3339 timestamps (`2026-11-29T10:15:30.123Z`, `2026-11-29T11:15:30+01:00`) to
//! milliseconds since the Unix epoch.
//!
//! Shopify stamps each webhook with `X-Shopify-Triggered-At`; pagesync compares it with
//! a shop's latest install so that a late `app/uninstalled` cannot undo a reinstall.
//! Only that one format is needed, so it is parsed here rather than with a date crate.
//! The header is input: anything that is not exactly RFC 3339's `date-time` (four-digit
//! year, real calendar dates, hours 00–23, an offset within ±23:59) is refused with
//! `None`, never a panic; a four-digit year keeps every sum far inside `i64`.

/// Milliseconds since 1970-01-01T00:00:00Z for an RFC 3339 `date-time`, or `None`.
///
/// Fractions beyond milliseconds are truncated. A leap second (`:60`) counts as the
/// last millisecond of its minute, which keeps the order of events.
pub fn parse_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    // date-fullyear "-" date-month "-" date-mday ("T" / "t" / " ") HH ":" MM ":" SS
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some((b'.', fraction)) = rest.split_first() {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        // Keep the first three digits as milliseconds ("5" is 500 ms).
        for i in 0..3 {
            millis = millis * 10 + fraction.get(i).filter(|_| i < len).map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &fraction[len..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };

    let (second, millis) = if second == 60 { (59, 999) } else { (second, millis) };
    let days = days_from_civil(year, month, day);
    let local = ((days * 24 + hour) * 60 + minute) * 60 + second;
    Some((local - offset_minutes * 60) * 1000 + millis)
}

/// The value of ASCII digits (at most four here, so no overflow).
fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_millis;

    #[test]
    fn utc_with_milliseconds() {
        assert_eq!(parse_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_millis("1970-01-01T00:00:00.001Z"), Some(1));
        // date -u -d 2026-11-29T10:15:30Z +%s -> 1795947330
        assert_eq!(parse_millis("2026-11-29T10:15:30.123Z"), Some(1_795_947_330_123));
        assert_eq!(parse_millis("2026-11-29t10:15:30.123z"), Some(1_795_947_330_123));
        assert_eq!(parse_millis("2026-11-29 10:15:30.123Z"), Some(1_795_947_330_123));
    }

    #[test]
    fn fractions_of_any_length() {
        assert_eq!(parse_millis("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_millis("1970-01-01T00:00:01.25Z"), Some(1250));
        assert_eq!(parse_millis("1970-01-01T00:00:01.123456789Z"), Some(1123));
        assert_eq!(parse_millis("1970-01-01T00:00:01.Z"), None);
    }

    #[test]
    fn offsets_move_the_instant() {
        let utc = parse_millis("2026-11-29T10:15:30.123Z");
        assert_eq!(parse_millis("2026-11-29T11:15:30.123+01:00"), utc);
        assert_eq!(parse_millis("2026-11-29T05:45:30.123-04:30"), utc);
        assert_eq!(parse_millis("2026-11-29T10:15:30.123+00:00"), utc);
        assert_eq!(parse_millis("2026-11-29T10:15:30.123-00:00"), utc);
        // Crossing midnight and a year boundary.
        assert_eq!(parse_millis("2027-01-01T00:30:00+01:00"), parse_millis("2026-12-31T23:30:00Z"));
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(parse_millis("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_millis("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(parse_millis("1900-02-29T00:00:00Z"), None, "1900 is not a leap year");
        assert_eq!(parse_millis("2026-02-29T00:00:00Z"), None);
        assert_eq!(parse_millis("2026-04-31T00:00:00Z"), None);
        assert_eq!(parse_millis("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(parse_millis("0000-01-01T00:00:00Z"), Some(-62_167_219_200_000));
        assert!(parse_millis("9999-12-31T23:59:59.999-23:59").is_some());
        // A leap second sorts just before the next minute.
        assert_eq!(parse_millis("2016-12-31T23:59:60Z"), Some(parse_millis("2017-01-01T00:00:00Z").unwrap() - 1));
    }

    #[test]
    fn garbage_and_out_of_range_values_are_refused() {
        for bad in [
            "",
            "yesterday",
            "2026-11-29",
            "2026-11-29T10:15:30",
            "2026-11-29T10:15:30.123",
            "2026-11-29T10:15:30+0100",
            "2026-11-29T10:15:30+01",
            "2026-11-29T10:15:30+24:00",
            "2026-11-29T10:15:30+01:60",
            "2026-11-29T10:15:30ZZ",
            "2026-11-29T10:15:30Z ",
            " 2026-11-29T10:15:30Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T23:60:00Z",
            "2026-01-01T23:59:61Z",
            "20260-01-01T00:00:00Z",
            "99999999999999999999-01-01T00:00:00Z",
            "+2026-01-01T00:00:00Z",
            "-002-01-01T00:00:00Z",
            "2026/01/01T00:00:00Z",
            "2026-01-01X00:00:00Z",
            "2026-01-01T00-00-00Z",
            "2026-1-01T00:00:00Z",
            "2026-01-01T00:00:00.１Z",
            "２026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.12a3Z",
            "2026-01-01T00:00:00.-1Z",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
    }
}
