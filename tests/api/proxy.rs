//! A recording "proxy" for tests that prove no request goes through a proxy: a plain
//! TCP listener on 127.0.0.1 that records every connection and every byte it
//! receives, and answers `502 Bad Gateway` without forwarding anything (so nothing
//! sent to it can leave loopback).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One connection the proxy accepted, with every byte received on it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
}

pub struct RecordingProxy {
    /// `http://127.0.0.1:PORT`, to put in `HTTP_PROXY` and friends.
    pub url: String,
    seen: Arc<Mutex<Vec<Connection>>>,
}

impl RecordingProxy {
    /// Binds a port and serves until the test's actix System ends.
    pub async fn start() -> RecordingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the recording proxy");
        let url = format!("http://{}", listener.local_addr().expect("recording proxy address"));
        let seen: Arc<Mutex<Vec<Connection>>> = Arc::default();
        let shared = seen.clone();
        actix_web::rt::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let index = {
                    let mut seen = shared.lock().unwrap_or_else(|e| e.into_inner());
                    seen.push(Connection { peer, bytes: Vec::new() });
                    seen.len() - 1
                };
                actix_web::rt::spawn(record(stream, index, shared.clone()));
            }
        });
        RecordingProxy { url, seen }
    }

    /// Every connection so far.
    pub fn connections(&self) -> Vec<Connection> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Records what arrives until the end of the request head (or EOF), then answers 502.
async fn record(mut stream: tokio::net::TcpStream, index: usize, seen: Arc<Mutex<Vec<Connection>>>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let head_done = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = &mut seen[index].bytes;
            bytes.extend_from_slice(&buf[..n]);
            bytes.windows(4).any(|w| w == b"\r\n\r\n")
        };
        if head_done {
            let _ =
                stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// The proxy variables, every spelling, all pointing at `proxy`.
pub fn proxy_env(proxy: &RecordingProxy) -> Vec<(&'static str, String)> {
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .map(|name| (name, proxy.url.clone()))
        .collect()
}
