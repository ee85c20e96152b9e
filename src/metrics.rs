//! `/metrics`: what pagesync counts, in the OpenMetrics text format Prometheus scrapes.
//!
//! Two kinds of figures. Events seen on the request path or in the Graph client
//! (deliveries, Graph requests and their latency, HTTP request durations) are counted
//! as they happen in [`Metrics`]. Figures the actors own (inbox depth, page writes,
//! Pages by status, poll runs) are asked of the actors at scrape time and encoded
//! from that snapshot, so there is one source of truth for each number.
//! docs/operations.md lists every metric and what it means.

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
use prometheus_client::registry::Registry;
use tracing::Instrument as _;

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
    outcome: &'static str,
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
    status: u16,
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
        let deliveries = Family::<ResultLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Meta webhook deliveries answered, by result (success = durably queued)",
            deliveries.clone(),
        );
        let graph_requests = Family::<GraphLabels, Counter>::default();
        registry.register(
            "graph_requests",
            "Graph API requests (each retry counts), by endpoint and outcome",
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
            "HTTP requests served, by method, route and status",
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
        // Every label value exists from the start, so a dashboard sees 0, not a gap.
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

    /// One Graph request finished (`outcome` is `ok` or the error class).
    pub fn graph_request(&self, endpoint: &'static str, outcome: &'static str, took: Duration) {
        self.inner.graph_requests.get_or_create(&GraphLabels { endpoint, outcome }).inc();
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

    fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let labels = HttpLabels { method: method_label(method), route: route.to_owned(), status };
        self.inner.http_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The whole exposition: the event metrics, then `snapshot`, then `# EOF`.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        encode_registry(&mut out, &self.inner.registry)?;
        encode_registry(&mut out, &snapshot.registry())?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Figures the actors own, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub inbox_depth: u64,
    pub refreshes_running: u64,
    pub pages_written: u64,
    pub pages_unchanged: u64,
    pub refresh_errors: u64,
    pub unknown_pages: u64,
    pub pages_by_status: Vec<(&'static str, u64)>,
    pub poll_runs: u64,
    pub poll_refreshes: u64,
    pub outbox: pagesync_actors::outbox::OutboxStats,
    /// The app-level webhook subscription's status; `None` when the actor did not
    /// answer (the metric is then left out rather than reported wrong).
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
        registry.register("inbox_depth", "Acknowledged deliveries not yet fully processed", gauge(self.inbox_depth));
        registry.register("refreshes_running", "Page refreshes in flight now", gauge(self.refreshes_running));
        registry.register("page_writes", "page_data.json files written since start", counter(self.pages_written));
        registry.register(
            "page_refreshes_unchanged",
            "Refreshes whose answer equalled the file on disk (not rewritten) since start",
            counter(self.pages_unchanged),
        );
        registry.register("page_refresh_errors", "Refreshes that failed since start", counter(self.refresh_errors));
        registry.register(
            "unknown_pages",
            "Page mentions in deliveries skipped because the Page is not connected, since start",
            counter(self.unknown_pages),
        );
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
        registry.register(
            "poll_refreshes",
            "Page refreshes the daily re-sync asked for since start",
            counter(self.poll_refreshes),
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
            pages_by_status: vec![("synced", 2), ("needs_reauth", 1)],
            app_subscription: Some(SubscriptionStatus::Conflict),
            ..Snapshot::default()
        };
        let text = metrics.render(&snapshot).unwrap();
        assert!(text.contains("pagesync_webhook_deliveries_total{result=\"success\"} 2\n"), "{text}");
        assert!(text.contains("pagesync_webhook_deliveries_total{result=\"unauthorized\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_graph_requests_total{endpoint=\"page\",outcome=\"ok\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_graph_request_duration_seconds_count{endpoint=\"page\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_inbox_depth 7\n"), "{text}");
        assert!(text.contains("pagesync_page_writes_total 3\n"), "{text}");
        assert!(text.contains("pagesync_pages{status=\"needs_reauth\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"conflict\"} 1\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"subscribed\"} 0\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"failed\"} 0\n"), "{text}");
        assert!(text.contains("pagesync_app_subscription{state=\"pending\"} 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
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
