//! A recording HTTP sink on 127.0.0.1 standing in for the bot: it records every
//! request (method, path, headers, exact body) and answers what the test says — 200,
//! another status with an optional `Retry-After`, or nothing for a while (a hang).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the sink answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16, Option<u64>),
    Hang(Duration),
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Answers for the next requests, in order; then `sticky`, then 200.
    queued: VecDeque<Answer>,
    sticky: Option<Answer>,
}

#[derive(Clone)]
pub struct Sink {
    state: Arc<Mutex<State>>,
    pub url: String,
}

impl Sink {
    /// Starts a sink on a free port.
    pub fn start() -> Sink {
        Sink::start_on(TcpListener::bind("127.0.0.1:0").expect("bind the sink"))
    }

    /// Starts a sink on `listener` (a restart on a known port).
    pub fn start_on(listener: TcpListener) -> Sink {
        let port = listener.local_addr().expect("sink address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = web::Data::new(state.clone());
        let server = HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(handle)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen sink")
            .run();
        actix_web::rt::spawn(server);
        Sink { state, url: format!("http://127.0.0.1:{port}/bot") }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn count(&self) -> usize {
        self.lock().received.len()
    }

    pub fn push(&self, answer: Answer) {
        self.lock().queued.push_back(answer);
    }

    pub fn set_sticky(&self, answer: Option<Answer>) {
        self.lock().sticky = answer;
    }
}

async fn handle(req: HttpRequest, body: Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let answer = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.received.push(Received {
            path: req.path().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
        });
        state.queued.pop_front().or_else(|| state.sticky.clone())
    };
    match answer {
        None => HttpResponse::Ok().finish(),
        Some(Answer::Hang(d)) => {
            actix_web::rt::time::sleep(d).await;
            HttpResponse::Ok().finish()
        }
        Some(Answer::Status(code, retry_after)) => {
            let mut resp = HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("a status code"));
            if let Some(seconds) = retry_after {
                resp.insert_header(("Retry-After", seconds.to_string()));
            }
            resp.finish()
        }
    }
}
