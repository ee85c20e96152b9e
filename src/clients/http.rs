//! The shared HTTP client for Graph and Shopify, and the TLS set-up every outgoing
//! client needs. Below both clients so that neither reaches into the other for it.

use std::time::Duration;

use crate::config::proxy::ProxySettings;

/// Installs rustls' ring provider for the process (idempotent). reqwest is built
/// without a provider of its own to keep aws-lc out of the build.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the shared HTTP client used for Graph and Shopify. Proxies come from
/// `proxy` only, never from the process environment, and never for loopback targets
/// (see [`crate::config::proxy`]).
pub fn http_client(proxy: &ProxySettings) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    let builder = reqwest::Client::builder()
        .user_agent(concat!("pagesync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        // Graph never redirects API calls; following one could carry a token elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    proxy.apply(builder).build()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::proxy::ProxySettings;

    /// A listener that records whether anything connected to it.
    fn sink() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            while let Ok((mut stream, _)) = listener.accept() {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = tx.send(head);
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn the_built_client_sends_real_hosts_to_the_proxy_and_loopback_direct() {
        super::install_crypto_provider();
        let (proxy, proxied) = sink();
        let (direct, reached) = sink();
        let vars = HashMap::from([("HTTP_PROXY".to_owned(), format!("http://{proxy}"))]);
        let s = ProxySettings::from_lookup(|name| vars.get(name).cloned()).unwrap();
        // `graph.pagesync.invalid` would be a real host; its name is pinned to the
        // `direct` listener, so even a client that wrongly skipped the proxy would stay
        // on loopback (no DNS query, no packet leaves the machine).
        let client = s.apply(reqwest::Client::builder()).resolve("graph.pagesync.invalid", direct).build().unwrap();

        let answer = client.get(format!("http://graph.pagesync.invalid:{}/v25.0/me", direct.port())).send().await;
        assert_eq!(answer.unwrap().status(), 502);
        let head = proxied.recv_timeout(std::time::Duration::from_secs(5)).expect("the proxy saw the request");
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with(&format!("GET http://graph.pagesync.invalid:{}/v25.0/me ", direct.port())), "{head}");
        assert!(reached.try_recv().is_err(), "the real host was reached directly");

        let answer = client.get(format!("http://127.0.0.1:{}/local", direct.port())).send().await;
        assert_eq!(answer.unwrap().status(), 502);
        let head = reached.recv_timeout(std::time::Duration::from_secs(5)).expect("loopback was reached directly");
        assert!(String::from_utf8_lossy(&head).starts_with("GET /local "));
        assert!(proxied.try_recv().is_err(), "a loopback target went through the proxy");
    }
}
