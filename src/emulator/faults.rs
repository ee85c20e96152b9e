//! Fault injection and the call log. A fault replaces an endpoint's normal answer:
//! queued faults are answered once each, in order; a sticky fault until cleared.
//! Page GETs can also be slowed for every Page ([`Emulator::set_latency`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Value, json};

use super::Emulator;
use super::graph::graph_error;

/// How many calls the log keeps (the oldest go first); counts are kept apart.
const CALLS_KEPT: usize = 100_000;

/// How long a hung answer takes: longer than any client waits.
const HANG: Duration = Duration::from_secs(3600);

/// One answer that replaces the normal one.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status and JSON body.
    Status(u16, Value),
    /// A Graph error body with this code (HTTP 400).
    GraphError(i64),
    /// This status and body, plus these headers (a rate limit with
    /// `X-Business-Use-Case-Usage`, say).
    WithHeaders(u16, Value, Vec<(String, String)>),
    /// No answer: the connection stays open until the client gives up.
    Hang,
}

impl Fault {
    /// HTTP 500 with Graph's "service temporarily unavailable" (code 2).
    pub fn unavailable() -> Fault {
        let error = json!({"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2,
                           "is_transient": true});
        Fault::Status(500, json!({ "error": error }))
    }

    pub(super) async fn answer(self) -> HttpResponse {
        let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self {
            Fault::Status(code, body) => HttpResponse::build(status(code)).json(body),
            Fault::GraphError(code) => graph_error(code, None, "fault injected by the test"),
            Fault::WithHeaders(code, body, headers) => {
                let mut answer = HttpResponse::build(status(code));
                for header in headers {
                    answer.insert_header(header);
                }
                answer.json(body)
            }
            Fault::Hang => {
                actix_web::rt::time::sleep(HANG).await;
                HttpResponse::GatewayTimeout().finish()
            }
        }
    }
}

/// The endpoints faults can be injected into.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /oauth/access_token` with a `code`.
    CodeExchange,
    /// `GET /oauth/access_token` with `grant_type=fb_exchange_token`.
    LongLivedExchange,
    Me,
    MeAccounts,
    DebugToken,
    /// `POST /{app-id}/subscriptions`.
    AppSubscriptions,
    /// `GET /{app-id}/subscriptions`.
    AppSubscriptionsGet,
    /// `GET /{page-id}` of this Page.
    PageGet(String),
    /// `GET /{page-id}/subscribed_apps` of this Page.
    SubscribedAppsGet(String),
    /// `POST /{page-id}/subscribed_apps` of this Page.
    SubscribedAppsPost(String),
    /// `POST /admin/oauth/access_token` of this shop.
    ShopifyToken(String),
}

/// A request the emulator answered (Graph and Shopify API calls; not HTML pages).
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// The body's parameters (form or JSON object; JSON arrays joined with commas).
    pub form: HashMap<String, String>,
    /// The token it carried: `access_token` (query or body) or `Authorization`.
    pub token: Option<String>,
    /// Whether it carried a valid `appsecret_proof` for its token.
    pub proof_ok: bool,
    pub endpoint: Option<Endpoint>,
    /// The HTTP status answered; 0 while the answer is pending (a hang, a delay).
    pub status: u16,
    /// Its number in the log.
    pub seq: u64,
}

impl Call {
    /// A parameter from the query, else from the body.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).or_else(|| self.form.get(name)).map(String::as_str)
    }

    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

#[derive(Default)]
pub(super) struct Faults {
    queued: HashMap<Endpoint, VecDeque<Fault>>,
    sticky: HashMap<Endpoint, Fault>,
    latency: Duration,
}

impl Faults {
    /// The fault to answer `endpoint` with, if any, and how long to wait first.
    pub(super) fn take(&mut self, endpoint: Option<&Endpoint>) -> (Option<Fault>, Duration) {
        let Some(endpoint) = endpoint else { return (None, Duration::ZERO) };
        let fault =
            self.queued.get_mut(endpoint).and_then(VecDeque::pop_front).or_else(|| self.sticky.get(endpoint).cloned());
        let delay = if matches!(endpoint, Endpoint::PageGet(_)) { self.latency } else { Duration::ZERO };
        (fault, delay)
    }
}

/// Calls are logged when they arrive (so a hung call is seen) and get their status
/// when answered.
#[derive(Default)]
pub(super) struct CallLog {
    calls: VecDeque<Call>,
    page_gets: HashMap<String, u64>,
    total_gets: u64,
    next_seq: u64,
}

impl CallLog {
    /// Logs `call` (its `seq` is set here) and returns its number.
    pub(super) fn arrived(&mut self, mut call: Call) -> u64 {
        if let Some(Endpoint::PageGet(page)) = &call.endpoint {
            *self.page_gets.entry(page.clone()).or_default() += 1;
            self.total_gets += 1;
        }
        if self.calls.len() == CALLS_KEPT {
            self.calls.pop_front();
        }
        self.next_seq += 1;
        call.seq = self.next_seq;
        self.calls.push_back(call);
        self.next_seq
    }

    pub(super) fn answered(&mut self, seq: u64, status: u16) {
        if let Some(call) = self.calls.iter_mut().rev().find(|c| c.seq == seq) {
            call.status = status;
        }
    }
}

impl Emulator {
    /// Queues `fault` as the next answer of `endpoint`.
    pub fn push_endpoint_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.lock().faults.queued.entry(endpoint).or_default().push_back(fault);
    }

    /// Answers `fault` to every request of `endpoint` until cleared with `None`.
    pub fn set_endpoint_sticky(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut world = self.lock();
        match fault {
            Some(f) => world.faults.sticky.insert(endpoint, f),
            None => world.faults.sticky.remove(&endpoint),
        };
    }

    /// Queues `fault` as the next answer to a GET of Page `id`.
    pub fn push_fault(&self, id: &str, fault: Fault) {
        self.push_endpoint_fault(Endpoint::PageGet(id.to_owned()), fault);
    }

    /// Answers `fault` to every GET of Page `id` until cleared with `None`.
    pub fn set_sticky_fault(&self, id: &str, fault: Option<Fault>) {
        self.set_endpoint_sticky(Endpoint::PageGet(id.to_owned()), fault);
    }

    /// Every Page GET waits this long before it is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().faults.latency = latency;
    }

    /// GETs of Page `id` so far.
    pub fn gets(&self, id: &str) -> usize {
        self.lock().log.page_gets.get(id).map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX))
    }

    /// Page GETs so far.
    pub fn total_gets(&self) -> u64 {
        self.lock().log.total_gets
    }

    /// Page GETs in the log, in order.
    pub fn seen(&self) -> Vec<Call> {
        self.lock().log.calls.iter().filter(|c| matches!(c.endpoint, Some(Endpoint::PageGet(_)))).cloned().collect()
    }

    /// Every call in the log, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().log.calls.iter().cloned().collect()
    }

    /// Calls with this method and path, in order.
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.lock().log.calls.iter().filter(|c| c.is(method, path)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::emulator::EmulatorConfig;

    /// `GET /v25.0/{page}` with no token: a 400 from Graph unless a fault answers.
    async fn get(client: &reqwest::Client, emulator: &Emulator, page: &str) -> Result<u16, reqwest::Error> {
        Ok(client.get(format!("{}/v25.0/{page}", emulator.url)).send().await?.status().as_u16())
    }

    #[actix_web::test]
    async fn queued_faults_answer_once_sticky_ones_until_cleared_and_a_hang_is_logged_while_pending() {
        let emulator = Emulator::spawn(EmulatorConfig::default()).unwrap();
        emulator.add_page("42", "tok", "Page");
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(300)).build().unwrap();

        emulator.push_fault("42", Fault::GraphError(613));
        emulator.push_fault("42", Fault::unavailable());
        assert_eq!(get(&client, &emulator, "42").await.unwrap(), 400);
        assert_eq!(get(&client, &emulator, "42").await.unwrap(), 500);
        emulator.set_sticky_fault("42", Some(Fault::Status(503, serde_json::json!("down"))));
        assert_eq!(get(&client, &emulator, "42").await.unwrap(), 503);
        assert_eq!(get(&client, &emulator, "42").await.unwrap(), 503);
        emulator.set_sticky_fault("42", None);
        assert_eq!(get(&client, &emulator, "42").await.unwrap(), 400, "no token: Graph's own refusal");

        emulator.set_sticky_fault("42", Some(Fault::Hang));
        assert!(get(&client, &emulator, "42").await.unwrap_err().is_timeout());
        let statuses: Vec<u16> = emulator.seen().iter().map(|c| c.status).collect();
        assert_eq!(statuses, [400, 500, 503, 503, 400, 0], "the hung call is logged, its answer pending");
        assert_eq!((emulator.gets("42"), emulator.total_gets()), (6, 6));
        assert!(emulator.seen().iter().all(|c| c.endpoint == Some(Endpoint::PageGet("42".into())) && !c.proof_ok));
    }

    #[actix_web::test]
    async fn the_latency_delays_page_gets_only() {
        let emulator = Emulator::spawn(EmulatorConfig::default()).unwrap();
        emulator.set_latency(Duration::from_secs(30));
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(300)).build().unwrap();
        assert!(get(&client, &emulator, "42").await.unwrap_err().is_timeout());
        assert_eq!(get(&client, &emulator, "me").await.unwrap(), 400, "/me is not a Page GET");
    }
}
