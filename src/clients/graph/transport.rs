//! Sending a Graph request: the proof that goes with a token, the size limit on
//! answers, the request metrics and usage gauge, and retrying transient failures with
//! exponential back-off and full jitter.

use std::time::Duration;

use pagesync_actors::{FetchError, PageData, PageId, Secret};
use reqwest::Method;

use super::GraphClient;
use super::classify::{ErrorEnvelope, classify, usage_percent};
use crate::verify::appsecret_proof;

/// Retry policy for transient failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Pause before the first retry (doubles each time, full jitter).
    pub base: Duration,
    /// Longest pause between two attempts.
    pub cap: Duration,
}
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, base: Duration::from_millis(500), cap: Duration::from_secs(8) }
    }
}
/// Largest Graph answer we read; a Page's metadata is a few KiB.
const MAX_BODY: usize = 4 * 1024 * 1024;

impl GraphClient {
    /// A Graph call, retried while transient. With `token`, `access_token`,
    /// `appsecret_proof` and `appsecret_time` are added.
    pub(super) async fn call(
        &self,
        endpoint: &'static str,
        method: Method,
        url: &str,
        query: Vec<(String, String)>,
        token: Option<&Secret>,
        page: Option<&PageId>,
    ) -> Result<(PageData, reqwest::header::HeaderMap), FetchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.inner.http.request(method.clone(), url).query(&query);
            if let Some(token) = token {
                let time = crate::clock::unix_now();
                let proof = appsecret_proof(&self.inner.app_secret, token, time);
                request = request.query(&[
                    ("access_token", token.expose()),
                    ("appsecret_proof", &proof),
                    ("appsecret_time", &time.to_string()),
                ]);
            }
            let started = std::time::Instant::now();
            let result = send(request, page).await;
            self.inner.metrics.graph_request(endpoint, outcome(&result), started.elapsed());
            if let Some(percent) = match &result {
                Ok((_, headers)) => usage_percent(headers),
                Err(_) => None,
            } {
                self.inner.usage.record(percent);
            }
            match result {
                Err(FetchError::Transient { detail }) if attempt < self.inner.retry.attempts => {
                    let pause = backoff(&self.inner.retry, attempt);
                    tracing::debug!(attempt, pause_ms = pause.as_millis() as u64, error = %detail, "Graph call failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }
}

/// Full jitter: a random pause between zero and `base * 2^(attempt-1)`, capped.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(policy.cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(millis / 4..=millis.max(1)))
}
async fn send(
    request: reqwest::RequestBuilder,
    page: Option<&PageId>,
) -> Result<(PageData, reqwest::header::HeaderMap), FetchError> {
    let mut response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len().saturating_add(chunk.len()) > MAX_BODY {
            return Err(FetchError::Permanent { code: None, detail: format!("answer larger than {MAX_BODY} bytes") });
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(map)) => Ok((map, headers)),
            _ => Err(FetchError::Permanent {
                code: None,
                detail: format!("HTTP {status} with a body that is not a JSON object"),
            }),
        };
    }
    let error = serde_json::from_slice::<ErrorEnvelope>(&body).ok().map(|e| e.error);
    Err(classify(status.as_u16(), error, &headers, page))
}
/// The `outcome` label of a finished request.
fn outcome<T>(result: &Result<T, FetchError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(FetchError::Auth { .. }) => "auth",
        Err(FetchError::RateLimited { .. }) => "rate_limited",
        Err(FetchError::Transient { .. }) => "transient",
        Err(FetchError::Permanent { .. }) => "permanent",
    }
}
fn transport_error(e: reqwest::Error) -> FetchError {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    FetchError::Transient { detail: format!("{kind}: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_never_panics_whatever_the_attempt_or_policy() {
        use rand::{RngExt as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut policies = vec![
            RetryPolicy { attempts: 0, base: Duration::ZERO, cap: Duration::ZERO },
            RetryPolicy { attempts: u32::MAX, base: Duration::MAX, cap: Duration::MAX },
            RetryPolicy { attempts: 4, base: Duration::from_millis(500), cap: Duration::from_secs(8) },
        ];
        for _ in 0..200 {
            policies.push(RetryPolicy {
                attempts: rng.random(),
                base: Duration::from_nanos(rng.random()),
                cap: Duration::from_nanos(rng.random()),
            });
        }
        for policy in &policies {
            for attempt in [0, 1, 2, 17, 64, u32::MAX].into_iter().chain((0..20).map(|_| rng.random())) {
                assert!(backoff(policy, attempt) <= policy.cap.max(Duration::from_millis(1)), "{policy:?} {attempt}");
            }
        }
    }
    #[test]
    fn backoff_stays_within_its_cap() {
        let policy = RetryPolicy { attempts: 10, base: Duration::from_millis(100), cap: Duration::from_millis(800) };
        for attempt in 1..10 {
            assert!(backoff(&policy, attempt) <= Duration::from_millis(800));
        }
    }
}
