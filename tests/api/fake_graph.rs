//! A fake Meta Graph API on loopback, started by each test.
//!
//! It serves `GET /{version}/{page-id}` like Graph does: it checks the Page token, the
//! `appsecret_proof` (HMAC-SHA256 of `token|appsecret_time` under the app secret) and
//! answers the Page's fields, or a Graph error. Tests queue faults per Page, add
//! latency, edit a Page's name, and read back every request it saw.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::APP_SECRET;

/// One queued answer that replaces the normal one.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body.
    Status(u16, Value),
    /// A Graph error body with this code (HTTP 400).
    GraphError(i64),
}

/// A request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    /// Page id -> (token, fields).
    pages: HashMap<String, (String, Value)>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Faults answered to every request for the Page until cleared.
    sticky: HashMap<String, Fault>,
    latency: Duration,
    seen: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakeGraph {
    state: Arc<Mutex<State>>,
    pub url: String,
}

impl FakeGraph {
    pub fn start() -> FakeGraph {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake graph");
        let port = listener.local_addr().expect("fake graph address").port();
        let data = web::Data::from(state.clone());
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).route("/{version}/{page}", web::get().to(page)))
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen fake graph")
                .run();
        // Runs until the test's actix System ends.
        actix_web::rt::spawn(server);
        FakeGraph { state, url: format!("http://127.0.0.1:{port}") }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A Page Graph knows, with the token that reads it.
    pub fn add_page(&self, id: &str, token: &str, name: &str) {
        let fields = json!({ "id": id, "name": name, "category": "Home Decor", "fan_count": 12 });
        self.lock().pages.insert(id.to_owned(), (token.to_owned(), fields));
    }

    pub fn set_name(&self, id: &str, name: &str) {
        if let Some((_, fields)) = self.lock().pages.get_mut(id) {
            fields["name"] = json!(name);
        }
    }

    pub fn push_fault(&self, id: &str, fault: Fault) {
        self.lock().faults.entry(id.to_owned()).or_default().push_back(fault);
    }

    pub fn set_sticky_fault(&self, id: &str, fault: Option<Fault>) {
        let mut state = self.lock();
        match fault {
            Some(f) => state.sticky.insert(id.to_owned(), f),
            None => state.sticky.remove(id),
        };
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// GETs of this Page so far.
    pub fn gets(&self, id: &str) -> usize {
        self.lock().seen.iter().filter(|s| s.path.ends_with(&format!("/{id}"))).count()
    }

    pub fn total_gets(&self) -> usize {
        self.lock().seen.len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }
}

fn graph_error(status: u16, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({ "error": { "message": message, "type": "OAuthException", "code": code, "fbtrace_id": "FAKE" } }))
}

async fn page(req: HttpRequest, path: web::Path<(String, String)>, state: web::Data<Mutex<State>>) -> HttpResponse {
    let (version, id) = path.into_inner();
    let query: HashMap<String, String> = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let (latency, answer) = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.seen.push(Seen { path: req.path().to_owned(), query: query.clone() });
        let fault = st.faults.get_mut(&id).and_then(|q| q.pop_front()).or_else(|| st.sticky.get(&id).cloned());
        let answer = if version != "v25.0" {
            graph_error(400, 2635, "unsupported version")
        } else if let Some(fault) = fault {
            match fault {
                Fault::Status(status, body) => HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(status)
                        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
                )
                .json(body),
                Fault::GraphError(code) => graph_error(400, code, "fault injected by the test"),
            }
        } else {
            match st.pages.get(&id) {
                None => graph_error(400, 100, "Object does not exist"),
                Some((token, fields)) => {
                    if query.get("access_token") != Some(token) {
                        graph_error(400, 190, "Invalid OAuth access token")
                    } else if !proof_ok(&query, token) {
                        graph_error(400, 100, "Invalid appsecret_proof provided in the API argument")
                    } else {
                        HttpResponse::Ok().json(fields)
                    }
                }
            }
        };
        (st.latency, answer)
    };
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    answer
}

fn proof_ok(query: &HashMap<String, String>, token: &str) -> bool {
    let (Some(proof), Some(time)) = (query.get("appsecret_proof"), query.get("appsecret_time")) else {
        return false;
    };
    let expected =
        hex::encode(pagesync::verify::hmac_sha256(APP_SECRET.as_bytes(), format!("{token}|{time}").as_bytes()));
    pagesync::verify::constant_time_eq(proof, &expected)
}
