//! What a failed Graph answer means: classified by `error.code` / `error_subcode`,
//! never by message text, with the HTTP status only as a fallback (see
//! docs/platform.md, "Graph errors"); and what Meta's usage headers say about rate
//! limits.

use std::time::Duration;

use pagesync_actors::{FetchError, LimitScope, PageId};
use serde::Deserialize;

/// Longest rate-limit pause pagesync accepts from Meta's
/// `estimated_time_to_regain_access`. Meta's real estimates are minutes to a few hours
/// (business use case limits reset within a day); anything longer is a broken or
/// hostile header, and obeying it would park a Page (or, for an app-level limit, every
/// Page) for good. A day keeps the daily re-sync meaningful, and it keeps every
/// `Instant::now() + pause` the actors compute far from overflowing.
pub const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);
/// Graph's error body.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorEnvelope {
    pub(super) error: GraphError,
}
/// The fields of a Graph error that classification reads.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub is_transient: Option<bool>,
    #[serde(default)]
    pub message: Option<String>,
}
/// Classifies a failed answer (docs/platform.md, "Graph errors").
pub fn classify(
    status: u16,
    error: Option<GraphError>,
    headers: &reqwest::header::HeaderMap,
    page: Option<&PageId>,
) -> FetchError {
    let Some(error) = error else {
        return if status >= 500 || status == 429 {
            FetchError::Transient { detail: format!("HTTP {status}") }
        } else {
            FetchError::Permanent { code: None, detail: format!("HTTP {status} without a Graph error") }
        };
    };
    let message = error.message.clone().unwrap_or_default();
    let Some(code) = error.code else {
        return if status >= 500 {
            FetchError::Transient { detail: format!("HTTP {status}: {message}") }
        } else {
            FetchError::Permanent { code: None, detail: format!("HTTP {status}: {message}") }
        };
    };
    match code {
        190 | 102 | 10 | 200..=299 => FetchError::Auth { code, subcode: error.error_subcode, message },
        4 | 17 | 341 => {
            FetchError::RateLimited { code, scope: LimitScope::App, retry_after: regain_access(headers, page) }
        }
        32 | 613 | 80001 => {
            FetchError::RateLimited { code, scope: LimitScope::Page, retry_after: regain_access(headers, page) }
        }
        1 | 2 => FetchError::Transient { detail: format!("code {code}: {message}") },
        _ if error.is_transient == Some(true) => FetchError::Transient { detail: format!("code {code}: {message}") },
        _ => FetchError::Permanent { code: Some(code), detail: message },
    }
}
/// `estimated_time_to_regain_access` (minutes) for this Page from
/// `X-Business-Use-Case-Usage`, the largest if several usage types are listed, at most
/// [`MAX_RATE_LIMIT_PAUSE`]. Values that are not numbers are skipped (see
/// [`crate::clients::whole_number`]); zero means Meta gave no estimate.
fn regain_access(headers: &reqwest::header::HeaderMap, page: Option<&PageId>) -> Option<Duration> {
    let raw = headers.get("x-business-use-case-usage")?.to_str().ok()?;
    let usage: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    let lists: Vec<&serde_json::Value> = match page {
        Some(p) => vec![usage.get(p.as_str())?],
        None => usage.values().collect(),
    };
    let minutes = lists
        .into_iter()
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access").and_then(crate::clients::whole_number))
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)).min(MAX_RATE_LIMIT_PAUSE))
}
/// The highest percentage in `X-App-Usage` and `X-Business-Use-Case-Usage`
/// (`call_count`, `total_time`, `total_cputime`), when either header is present.
///
/// Read leniently (see [`crate::clients::whole_number`]): a field that is not a number counts as
/// 0 and does not hide the others. The result is at most 100: Meta reports more when
/// an app is over its limit, and the poller treats every value from 100 up alike.
pub fn usage_percent(headers: &reqwest::header::HeaderMap) -> Option<u32> {
    fn max(usage: &serde_json::Value) -> u64 {
        ["call_count", "total_time", "total_cputime"]
            .iter()
            .filter_map(|k| usage.get(k).and_then(crate::clients::whole_number))
            .max()
            .unwrap_or(0)
    }
    let header = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
    };
    let app = header("x-app-usage").filter(serde_json::Value::is_object).map(|u| max(&u));
    let business = header("x-business-use-case-usage").and_then(|v| match v {
        serde_json::Value::Object(ids) => {
            Some(ids.values().filter_map(serde_json::Value::as_array).flatten().map(max).max().unwrap_or(0))
        }
        _ => None,
    });
    match (app, business) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0)).min(100) as u32),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    fn err(code: i64, subcode: Option<i64>) -> Option<GraphError> {
        Some(GraphError { code: Some(code), error_subcode: subcode, is_transient: None, message: Some("m".into()) })
    }
    #[test]
    fn auth_codes_need_reauth_whatever_the_status() {
        for (code, sub) in
            [(190, None), (190, Some(460)), (190, Some(492)), (102, None), (10, None), (200, None), (299, None)]
        {
            for status in [400, 401, 403, 500] {
                assert!(matches!(classify(status, err(code, sub), &HeaderMap::new(), None), FetchError::Auth { .. }));
            }
        }
    }
    #[test]
    fn rate_limits_have_the_right_scope() {
        for (code, scope) in [
            (4, LimitScope::App),
            (17, LimitScope::App),
            (32, LimitScope::Page),
            (613, LimitScope::Page),
            (80001, LimitScope::Page),
        ] {
            match classify(400, err(code, None), &HeaderMap::new(), None) {
                FetchError::RateLimited { scope: s, retry_after: None, .. } => assert_eq!(s, scope, "code {code}"),
                other => panic!("code {code}: {other:?}"),
            }
        }
    }
    #[test]
    fn regain_access_minutes_come_from_the_pages_usage_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(r#"{"42":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":7}],"43":[{"type":"pages","estimated_time_to_regain_access":99}]}"#),
        );
        let page = PageId::parse("42").unwrap();
        match classify(400, err(80001, None), &h, Some(&page)) {
            FetchError::RateLimited { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(420))),
            other => panic!("{other:?}"),
        }
    }
    #[test]
    fn transient_and_permanent_failures() {
        assert!(matches!(classify(500, err(1, None), &HeaderMap::new(), None), FetchError::Transient { .. }));
        assert!(matches!(classify(503, err(2, None), &HeaderMap::new(), None), FetchError::Transient { .. }));
        assert!(matches!(classify(502, None, &HeaderMap::new(), None), FetchError::Transient { .. }));
        let transient =
            Some(GraphError { code: Some(9999), error_subcode: None, is_transient: Some(true), message: None });
        assert!(matches!(classify(400, transient, &HeaderMap::new(), None), FetchError::Transient { .. }));
        assert!(matches!(
            classify(400, err(100, Some(33)), &HeaderMap::new(), None),
            FetchError::Permanent { code: Some(100), .. }
        ));
        assert!(matches!(classify(404, None, &HeaderMap::new(), None), FetchError::Permanent { code: None, .. }));
    }
    #[test]
    fn the_message_text_never_decides() {
        let misleading = Some(GraphError {
            code: Some(100),
            error_subcode: None,
            is_transient: None,
            message: Some("Error validating access token: Session has expired".into()),
        });
        assert!(matches!(classify(400, misleading, &HeaderMap::new(), None), FetchError::Permanent { .. }));
    }
    #[test]
    fn usage_headers_give_the_highest_percentage() {
        let mut h = HeaderMap::new();
        assert_eq!(usage_percent(&h), None);
        h.insert("x-app-usage", HeaderValue::from_static(r#"{"call_count":28,"total_time":25,"total_cputime":25}"#));
        assert_eq!(usage_percent(&h), Some(28));
        h.insert("x-business-use-case-usage", HeaderValue::from_static(r#"{"42":[{"type":"pages","call_count":97}]}"#));
        assert_eq!(usage_percent(&h), Some(97));
    }
    #[test]
    fn regain_access_never_panics_and_never_exceeds_a_day() {
        let page = PageId::parse("42").unwrap();
        for n in crate::clients::hostile_numbers() {
            let mut h = HeaderMap::new();
            let raw = format!(
                r#"{{"42":[{{"type":"pages","call_count":100,"estimated_time_to_regain_access":{n}}}],"7":[{{"estimated_time_to_regain_access":{n}}}]}}"#
            );
            h.insert("x-business-use-case-usage", HeaderValue::from_str(&raw).unwrap());
            for page in [Some(&page), None] {
                if let Some(pause) = regain_access(&h, page) {
                    assert!(pause <= MAX_RATE_LIMIT_PAUSE, "{n}: {pause:?}");
                    assert!(!pause.is_zero(), "{n}");
                }
                match classify(400, err(4, None), &h, page) {
                    FetchError::RateLimited { retry_after, .. } => {
                        assert!(retry_after.is_none_or(|d| d <= MAX_RATE_LIMIT_PAUSE), "{n}")
                    }
                    other => panic!("{n}: {other:?}"),
                }
            }
        }
        // Sane values are kept as they are.
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(r#"{"42":[{"estimated_time_to_regain_access":1440}]}"#),
        );
        assert_eq!(regain_access(&h, Some(&page)), Some(Duration::from_secs(1440 * 60)));
    }
    #[test]
    fn usage_percentages_never_panic_and_stay_within_0_and_100() {
        for n in crate::clients::hostile_numbers() {
            let mut h = HeaderMap::new();
            let app = format!(r#"{{"call_count":{n},"total_time":{n},"total_cputime":{n}}}"#);
            let business = format!(r#"{{"42":[{{"type":"pages","call_count":{n},"total_time":{n}}}]}}"#);
            h.insert("x-app-usage", HeaderValue::from_str(&app).unwrap());
            assert!(usage_percent(&h).is_none_or(|p| p <= 100), "{n}");
            h.insert("x-business-use-case-usage", HeaderValue::from_str(&business).unwrap());
            assert!(usage_percent(&h).is_none_or(|p| p <= 100), "{n}");
        }
        // A number that is not a whole one still counts (rounded up).
        let mut h = HeaderMap::new();
        h.insert("x-app-usage", HeaderValue::from_static(r#"{"call_count":95.5,"total_time":"x"}"#));
        assert_eq!(usage_percent(&h), Some(96));
    }
}
