//! Clients of the platforms pagesync talks to, sharing one `reqwest::Client`.

pub mod graph;
pub mod http;
pub mod outbox;
pub mod shopify;

/// A count (seconds, minutes, a percentage) read leniently from an upstream JSON value.
///
/// Meta and Shopify document whole numbers, but a changed or hostile answer may carry
/// a negative number, a float, a number beyond `u64`, or a number in a string; none of
/// these may panic or wrap later arithmetic. Negative values count as 0, fractions are
/// rounded up, values beyond `u64::MAX` saturate, strings holding a number are read as
/// that number; anything else (`null`, `true`, text, arrays) is `None`. Callers still
/// clamp the result to their own sane maximum.
pub(crate) fn whole_number(value: &serde_json::Value) -> Option<u64> {
    let float = match value {
        serde_json::Value::Number(n) => {
            if let Some(whole) = n.as_u64() {
                return Some(whole);
            }
            if n.as_i64().is_some() {
                // Only negative numbers fit an i64 but not a u64.
                return Some(0);
            }
            n.as_f64()?
        }
        serde_json::Value::String(s) => {
            let s = s.trim();
            if let Ok(whole) = s.parse::<u64>() {
                return Some(whole);
            }
            s.parse::<f64>().ok()?
        }
        _ => return None,
    };
    if !float.is_finite() {
        return None;
    }
    // `as` saturates (and maps negatives to 0), which is the clamping wanted here.
    Some(float.ceil() as u64)
}

/// Test input for every parser of upstream numbers.
#[cfg(test)]
/// Numbers Meta or Shopify might send where a number is expected, as JSON text: edges,
/// negatives, floats, strings and other types, then a few thousand values from a
/// fixed-seed generator (so a failure reproduces).
pub(crate) fn hostile_numbers() -> Vec<String> {
    use rand::{RngExt as _, SeedableRng as _};
    let mut out: Vec<String> = [
        "0",
        "1",
        "59",
        "60",
        "1440",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999",
        "-1",
        "-9223372036854775808",
        "0.5",
        "1.5",
        "-0.5",
        "1e300",
        "-1e300",
        "1.7976931348623157e308",
        r#""12""#,
        r#""-3""#,
        r#""abc""#,
        r#""""#,
        "null",
        "true",
        "[]",
        "{}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_6a9e);
    for _ in 0..1000 {
        out.push(rng.random::<u64>().to_string());
        out.push(rng.random::<i64>().to_string());
        out.push(format!("{:e}", rng.random::<f64>() * 10f64.powi(rng.random_range(-5..300))));
    }
    for _ in 0..500 {
        out.push(rng.random_range(0u64..100_000).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::whole_number;
    use serde_json::json;

    #[test]
    fn whole_numbers_are_read_leniently_and_never_wrap() {
        for (value, expected) in [
            (json!(0), Some(0)),
            (json!(42), Some(42)),
            (json!(u64::MAX), Some(u64::MAX)),
            (json!(-1), Some(0)),
            (json!(i64::MIN), Some(0)),
            (json!(1.2), Some(2)),
            (json!(-0.5), Some(0)),
            (json!(1e300), Some(u64::MAX)),
            (json!(-1e300), Some(0)),
            (json!("17"), Some(17)),
            (json!(" 3.5 "), Some(4)),
            (json!("inf"), None),
            (json!("NaN"), None),
            (json!("soon"), None),
            (json!(null), None),
            (json!(true), None),
            (json!([1]), None),
            (json!({"n": 1}), None),
        ] {
            assert_eq!(whole_number(&value), expected, "{value}");
        }
    }
}
