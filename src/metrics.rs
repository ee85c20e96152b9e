//! `/metrics`: what pagesync counts, in the OpenMetrics text format Prometheus scrapes.
//!
//! Three kinds of figures. Events seen on the request path or in the Graph client
//! (deliveries, Graph requests and their latency, HTTP request durations) are counted
//! as they happen in [`Metrics`], which also carries the constant `build_info`.
//! Figures the actors own (inbox depth, refreshes by result, Pages by status, the
//! stalest sync, the outbox, the app subscription) are read at scrape time from what
//! the actors publish as those figures change (`pagesync_actors::Published`: the
//! actors' own atomics, so there is one source of truth for each number and no
//! mailbox to wait in); the route gathers them in a [`Snapshot`] that is encoded
//! here. The `process_*` figures are read from `/proc/self` at scrape time
//! ([`process`]).
//!
//! Naming: one `…_total{result}` family per event (a refresh is one event whatever
//! its end, so `page_refreshes_total{result}`, not a counter per end); every label
//! value comes from a fixed set in this file or the actors (no request, Page or id
//! ever becomes a label value); the HTTP status label is `code`, as in most exporters.
//! docs/operations.md lists every metric, what it means, and the renames.

mod process;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use pagesync_actors::subscription::SubscriptionStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tracing::Instrument as _;

pub use self::process::ProcessStats;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The answer to a webhook delivery, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryResult {
    Success,
    Ignored,
    Unauthorized,
    BadRequest,
    TooLarge,
    /// The body did not arrive within the deadline (408).
    TimedOut,
    Unavailable,
    /// An internal failure (the store); logged where it happened.
    Error,
}

impl DeliveryResult {
    pub const ALL: [DeliveryResult; 8] = [
        DeliveryResult::Success,
        DeliveryResult::Ignored,
        DeliveryResult::Unauthorized,
        DeliveryResult::BadRequest,
        DeliveryResult::TooLarge,
        DeliveryResult::TimedOut,
        DeliveryResult::Unavailable,
        DeliveryResult::Error,
    ];

    fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Success => "success",
            DeliveryResult::Ignored => "ignored",
            DeliveryResult::Unauthorized => "unauthorized",
            DeliveryResult::BadRequest => "bad_request",
            DeliveryResult::TooLarge => "too_large",
            DeliveryResult::TimedOut => "timed_out",
            DeliveryResult::Unavailable => "unavailable",
            DeliveryResult::Error => "error",
        }
    }
}

/// The answer to a consumer API request, as counted (a fixed set of label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiResult {
    Ok,
    NotModified,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Unavailable,
    Error,
}

impl ApiResult {
    pub const ALL: [ApiResult; 9] = [
        ApiResult::Ok,
        ApiResult::NotModified,
        ApiResult::BadRequest,
        ApiResult::Unauthorized,
        ApiResult::Forbidden,
        ApiResult::NotFound,
        ApiResult::Conflict,
        ApiResult::Unavailable,
        ApiResult::Error,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ApiResult::Ok => "ok",
            ApiResult::NotModified => "not_modified",
            ApiResult::BadRequest => "bad_request",
            ApiResult::Unauthorized => "unauthorized",
            ApiResult::Forbidden => "forbidden",
            ApiResult::NotFound => "not_found",
            ApiResult::Conflict => "conflict",
            ApiResult::Unavailable => "unavailable",
            ApiResult::Error => "error",
        }
    }
}

/// Which token the consumer API handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Page,
    Shop,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Page => "page",
            TokenKind::Shop => "shop",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GraphLabels {
    endpoint: &'static str,
    /// `ok` or the error class (`auth`, `rate_limited`, `transient`, `permanent`).
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    /// One of [`METHODS`] or `other`: a client may send any token as a method, and
    /// each new label value would be a new series kept forever.
    method: &'static str,
    /// The matched route pattern (`/facebook/webhook`), never the raw path, so ids
    /// in paths cannot blow up the label space; `unmatched` for every other path.
    route: String,
    /// The HTTP status code (a number below 1000, so a bounded set).
    code: u16,
}

/// The methods that get their own label value.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

/// The label value of a request method: a known method or `other`.
fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The counters and histograms fed as events happen. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// The event families below plus `build_info`.
    registry: Registry,
    deliveries: Family<ResultLabel, Counter>,
    graph_requests: Family<GraphLabels, Counter>,
    graph_latency: HistogramFamily<EndpointLabel>,
    http_duration: HistogramFamily<HttpLabels>,
    /// `/api/v1` answers by [`ApiResult`].
    api_requests: Family<ResultLabel, Counter>,
    /// Access tokens handed out by the consumer API, by kind (`page`, `shop`).
    token_reads: Family<KindLabel, Counter>,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pagesync");
        registry.register(
            "build",
            "pagesync's version (and commit, when the build named one); always 1",
            Info::new(build_labels(env!("CARGO_PKG_VERSION"), option_env!("PAGESYNC_BUILD_COMMIT"))),
        );
        let deliveries = Family::<ResultLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Meta webhook deliveries answered, by result (success = durably queued)",
            deliveries.clone(),
        );
        let graph_requests = Family::<GraphLabels, Counter>::default();
        registry.register(
            "graph_requests",
            "Graph API requests (each retry counts), by endpoint and result",
            graph_requests.clone(),
        );
        let graph_latency: HistogramFamily<EndpointLabel> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "graph_request_duration_seconds",
            "Graph API request latency, by endpoint",
            graph_latency.clone(),
        );
        let http_duration: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests served, by method, route and status code",
            http_duration.clone(),
        );
        let api_requests = Family::<ResultLabel, Counter>::default();
        registry.register("api_requests", "Consumer API (/api/v1) requests answered, by result", api_requests.clone());
        let token_reads = Family::<KindLabel, Counter>::default();
        registry.register(
            "api_token_reads",
            "Access tokens handed out by the consumer API, by kind (page or shop)",
            token_reads.clone(),
        );
        // Every label value exists from the start, so a dashboard sees 0, not a gap,
        // and `rate()` in an alert has a value to start from.
        for result in DeliveryResult::ALL {
            let _ = deliveries.get_or_create(&ResultLabel { result: result.as_str() });
        }
        for result in ApiResult::ALL {
            let _ = api_requests.get_or_create(&ResultLabel { result: result.as_str() });
        }
        for kind in [TokenKind::Page, TokenKind::Shop] {
            let _ = token_reads.get_or_create(&KindLabel { kind: kind.as_str() });
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                deliveries,
                graph_requests,
                graph_latency,
                http_duration,
                api_requests,
                token_reads,
            }),
        }
    }

    /// One webhook delivery answered.
    pub fn delivery(&self, result: DeliveryResult) {
        self.inner.deliveries.get_or_create(&ResultLabel { result: result.as_str() }).inc();
    }

    /// One Graph request finished (`result` is `ok` or the error class).
    pub fn graph_request(&self, endpoint: &'static str, result: &'static str, took: Duration) {
        self.inner.graph_requests.get_or_create(&GraphLabels { endpoint, result }).inc();
        self.inner.graph_latency.get_or_create(&EndpointLabel { endpoint }).observe(took.as_secs_f64());
    }

    /// One `/api/v1` request answered.
    pub fn api_request(&self, result: ApiResult) {
        self.inner.api_requests.get_or_create(&ResultLabel { result: result.as_str() }).inc();
    }

    /// One access token handed out by the consumer API.
    pub fn token_read(&self, kind: TokenKind) {
        self.inner.token_reads.get_or_create(&KindLabel { kind: kind.as_str() }).inc();
    }

    fn http_request(&self, method: &str, route: &str, code: u16, took: Duration) {
        let labels = HttpLabels { method: method_label(method), route: route.to_owned(), code };
        self.inner.http_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The whole exposition: the event metrics, then `snapshot`, then the process
    /// figures, then `# EOF`.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        encode_registry(&mut out, &self.inner.registry)?;
        encode_registry(&mut out, &snapshot.registry())?;
        encode_registry(&mut out, &snapshot.process.registry())?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// The labels of `build_info`: the version, and the commit when the build named one
/// in `PAGESYNC_BUILD_COMMIT` (read at compile time; no build script, so a build
/// from a source tarball without git works the same and just has no commit). A
/// commit that is not 7 to 40 hex digits is left out rather than exposed.
fn build_labels<'a>(version: &'a str, commit: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut labels = vec![("version", version)];
    if let Some(commit) = commit.filter(|c| (7..=40).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit())) {
        labels.push(("commit", commit));
    }
    labels
}

/// Figures the actors own, read at scrape time from their published figures.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// What `GET /readyz` answered last (the store open, every actor answering): the
    /// background check's result, at most a few seconds old (see `health`).
    pub ready: bool,
    /// `PAGESYNC_POLL_INTERVAL` in seconds, 0 when polling is off: lets an alert on
    /// the stalest sync follow the configuration.
    pub poll_interval_seconds: u64,
    pub inbox_depth: u64,
    pub refreshes_running: u64,
    /// Refreshes since start by how they ended: `page_refreshes_total{result}`.
    pub pages_written: u64,
    pub pages_unchanged: u64,
    pub refresh_errors: u64,
    pub unknown_pages: u64,
    pub refreshes_skipped: u64,
    pub pages_by_status: Vec<(&'static str, u64)>,
    /// Seconds since the last successful sync of the stalest Page kept in sync;
    /// `None` when no such Page exists: left out.
    pub stalest_sync_age_seconds: Option<u64>,
    pub poll_runs: u64,
    /// Refreshes the poll asked for, and how many of them synced the Page.
    pub poll_refreshes: u64,
    pub poll_synced: u64,
    /// `process_*`, read at scrape time.
    pub process: ProcessStats,
    pub outbox: pagesync_actors::outbox::OutboxStats,
    /// The app-level webhook subscription's status; `None` leaves the metric out
    /// (the route always has one: a subscription never made reads `pending`).
    pub app_subscription: Option<SubscriptionStatus>,
}

impl Snapshot {
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("pagesync");
        let gauge = |value: u64| {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            g
        };
        let counter = |value: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(value);
            c
        };
        registry.register(
            "ready",
            "1 when GET /readyz would answer 200 (store open, every actor answering), else 0",
            gauge(u64::from(self.ready)),
        );
        registry.register(
            "poll_interval_seconds",
            "The configured re-sync period (PAGESYNC_POLL_INTERVAL); 0 when polling is off",
            gauge(self.poll_interval_seconds),
        );
        registry.register("inbox_depth", "Acknowledged deliveries not yet fully processed", gauge(self.inbox_depth));
        registry.register("refreshes_running", "Page refreshes in flight now", gauge(self.refreshes_running));
        let refreshes = Family::<ResultLabel, Counter>::default();
        for (result, n) in [
            ("written", self.pages_written),
            ("unchanged", self.pages_unchanged),
            ("error", self.refresh_errors),
            ("unknown_page", self.unknown_pages),
            ("skipped", self.refreshes_skipped),
        ] {
            refreshes.get_or_create(&ResultLabel { result }).inc_by(n);
        }
        registry.register(
            "page_refreshes",
            "Page refreshes since start, by result: written (page_data.json changed), unchanged, error, \
             unknown_page (nobody connected it), skipped (needs_reauth or disconnected)",
            refreshes,
        );
        if let Some(age) = self.stalest_sync_age_seconds {
            registry.register(
                "stalest_sync_age_seconds",
                "Seconds since the last successful sync of the stalest Page kept in sync \
                 (needs_reauth, disconnected and never-synced Pages excluded)",
                gauge(age),
            );
        }
        let by_status = Family::<StatusLabel, Gauge>::default();
        for (status, count) in &self.pages_by_status {
            by_status.get_or_create(&StatusLabel { status }).set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        registry.register("pages", "Pages with a sync state, by status", by_status);
        registry.register("poll_runs", "Daily re-sync runs finished since start", counter(self.poll_runs));
        let o = &self.outbox;
        let pending = Family::<KindLabel, Gauge>::default();
        let dead = Family::<KindLabel, Gauge>::default();
        for (kind, p, d) in
            [("forward", o.pending_forwards, o.dead_forwards), ("event", o.pending_events, o.dead_events)]
        {
            pending.get_or_create(&KindLabel { kind }).set(i64::try_from(p).unwrap_or(i64::MAX));
            dead.get_or_create(&KindLabel { kind }).set(i64::try_from(d).unwrap_or(i64::MAX));
        }
        registry.register("outbox_pending", "Forwards and events waiting to be delivered to the bot", pending);
        registry.register("outbox_dead", "Forwards and events dead-lettered (see pagesync outbox)", dead);
        let attempts = Family::<ResultLabel, Counter>::default();
        attempts.get_or_create(&ResultLabel { result: "delivered" }).inc_by(o.delivered);
        attempts.get_or_create(&ResultLabel { result: "failed" }).inc_by(o.failed);
        attempts.get_or_create(&ResultLabel { result: "dead_lettered" }).inc_by(o.dead_lettered);
        registry.register("outbox_attempts", "Delivery attempts to the bot since start, by result", attempts);
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest forward or event still waiting",
            gauge(o.oldest_age_seconds),
        );
        if let Some(current) = self.app_subscription {
            // Every state of the fixed set, 1 for the current one: an alert can match
            // `state="conflict"` without the series appearing and vanishing.
            let states = Family::<StateLabel, Gauge>::default();
            for status in SubscriptionStatus::ALL {
                states.get_or_create(&StateLabel { state: status.as_str() }).set(i64::from(status == current));
            }
            registry.register(
                "app_subscription",
                "The app-level Page webhook subscription: 1 for its current state (conflict: another callback URL holds it)",
                states,
            );
        }
        let poll_refreshes = Family::<ResultLabel, Counter>::default();
        let poll_synced = self.poll_synced.min(self.poll_refreshes);
        poll_refreshes.get_or_create(&ResultLabel { result: "synced" }).inc_by(poll_synced);
        poll_refreshes.get_or_create(&ResultLabel { result: "not_synced" }).inc_by(self.poll_refreshes - poll_synced);
        registry.register(
            "poll_refreshes",
            "Page refreshes the periodic re-sync asked for since start, by result (not_synced: failed or skipped)",
            poll_refreshes,
        );
        registry
    }
}

/// Header carrying the request id back to the client.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Middleware: gives each request an id (its `X-Request-Id` when that is a sane
/// token, else a fresh one), runs it inside a tracing span carrying the id, echoes
/// the id in the response, and records the duration by route and status.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let method = req.method().as_str().to_owned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let metrics = req.app_data::<actix_web::web::Data<Metrics>>().map(|m| m.get_ref().clone());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(metrics) = metrics {
        metrics.http_request(&method, &route, res.status().as_u16(), started.elapsed());
    }
    Ok(res)
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_holds_event_and_snapshot_metrics_and_ends_with_eof() {
        let metrics = Metrics::new();
        metrics.delivery(DeliveryResult::Success);
        metrics.delivery(DeliveryResult::Success);
        metrics.delivery(DeliveryResult::Unauthorized);
        metrics.graph_request("page", "ok", Duration::from_millis(3));
        let snapshot = Snapshot {
            inbox_depth: 7,
            pages_written: 3,
            unknown_pages: 2,
            pages_by_status: vec![("synced", 2), ("needs_reauth", 1)],
            stalest_sync_age_seconds: Some(90),
            poll_refreshes: 5,
            poll_synced: 4,
            app_subscription: Some(SubscriptionStatus::Conflict),
            process: ProcessStats { open_fds: Some(12), ..ProcessStats::default() },
            ..Snapshot::default()
        };
        let text = metrics.render(&snapshot).unwrap();
        assert!(text.contains("pagesync_webhook_deliveries_total{result=\"success\"} 2\n"), "{text}");
        assert!(text.contains("pagesync_webhook_deliveries_total{result=\"unauthorized\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_webhook_deliveries_total{result=\"too_large\"} 0\n"), "{text}");
        assert!(text.contains("pagesync_ready 0\n"), "{text}");
        assert!(text.contains("pagesync_graph_requests_total{endpoint=\"page\",result=\"ok\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_graph_request_duration_seconds_count{endpoint=\"page\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_inbox_depth 7\n"), "{text}");
        assert!(text.contains("pagesync_page_refreshes_total{result=\"written\"} 3\n"), "{text}");
        assert!(text.contains("pagesync_page_refreshes_total{result=\"unknown_page\"} 2\n"), "{text}");
        assert!(text.contains("pagesync_page_refreshes_total{result=\"skipped\"} 0\n"), "{text}");
        assert!(text.contains("pagesync_stalest_sync_age_seconds 90\n"), "{text}");
        assert!(text.contains("pagesync_poll_refreshes_total{result=\"synced\"} 4\n"), "{text}");
        assert!(text.contains("pagesync_poll_refreshes_total{result=\"not_synced\"} 1\n"), "{text}");
        assert!(text.contains("process_open_fds 12\n"), "{text}");
        assert!(!text.contains("pagesync_process_"), "process metrics carry no prefix: {text}");
        let version = format!("pagesync_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION"));
        assert!(text.contains(&version), "{text}");
        assert!(text.contains("pagesync_pages{status=\"needs_reauth\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"conflict\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"subscribed\"} 0\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"failed\"} 0\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"pending\"} 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn the_stalest_age_is_left_out_when_no_page_has_one() {
        let text = Metrics::new().render(&Snapshot::default()).unwrap();
        assert!(!text.contains("pagesync_stalest_sync_age_seconds"), "{text}");
    }

    #[test]
    fn build_info_names_a_commit_only_when_it_is_a_hex_id() {
        assert_eq!(build_labels("1.2.3", None), vec![("version", "1.2.3")]);
        assert_eq!(build_labels("1.2.3", Some("0a1b2c3d")), vec![("version", "1.2.3"), ("commit", "0a1b2c3d")]);
        for odd in ["", "abc", "not-a-commit", "0a1b2c3\"}", &"a".repeat(41)] {
            assert_eq!(build_labels("1.2.3", Some(odd)), vec![("version", "1.2.3")], "{odd}");
        }
    }

    #[test]
    fn the_http_status_label_is_code() {
        let metrics = Metrics::new();
        metrics.http_request("GET", "/healthz", 200, Duration::from_millis(1));
        let text = metrics.render(&Snapshot::default()).unwrap();
        let sample = "pagesync_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",code=\"200\"} 1\n";
        assert!(text.contains(sample), "{text}");
    }

    #[test]
    fn request_methods_map_to_a_fixed_label_set() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        for odd in ["get", "FOO", "PROPFIND", "", "G\u{e9}T"] {
            assert_eq!(method_label(odd), "other", "{odd}");
        }
    }
}
