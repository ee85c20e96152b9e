//! Reading a request body whole, with a size limit and a deadline.
//!
//! Routes that need the raw bytes (signature checks) read the body themselves rather
//! than through an extractor, so that they can refuse early. Two limits apply to every
//! such read: the size (a declared `Content-Length` over it is refused before a byte is
//! read, a stream past it as soon as it crosses), and the time (docs/contract.md §4: the whole body
//! within 10 s of the headers). Without the deadline, a client that sends headers and
//! then a byte a minute holds a connection and a buffer for as long as it likes; a
//! per-read timeout would not stop it, so the deadline covers the whole read.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};

use crate::error::ApiError;

/// How much, and for how long, a body may be read.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Larger bodies are refused (413).
    pub max_bytes: usize,
    /// The whole body must have arrived within this, counted from the call (408).
    pub deadline: Duration,
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body did not arrive within {0:?}")]
    TimedOut(Duration),
    #[error("could not read the body: {0}")]
    Read(#[from] PayloadError),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        match e {
            BodyError::TooLarge(max) => ApiError::PayloadTooLarge(max),
            BodyError::TimedOut(_) => ApiError::RequestTimeout,
            BodyError::Read(e) => ApiError::BadRequest(format!("could not read the body: {e}")),
        }
    }
}

/// The request's `Content-Length`, when present and a number.
pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// Refuses a declared length over the limit, before anything is read.
pub fn check_declared(req: &HttpRequest, limits: BodyLimits) -> Result<(), BodyError> {
    match declared_length(req) {
        Some(n) if n > limits.max_bytes as u64 => Err(BodyError::TooLarge(limits.max_bytes)),
        _ => Ok(()),
    }
}

/// Reads `payload` whole within `limits`. Call [`check_declared`] first when the
/// refusal of an over-long `Content-Length` must come before other checks; this
/// function repeats it, so that a caller that forgets cannot be made to preallocate.
pub async fn read_body<S>(req: &HttpRequest, payload: S, limits: BodyLimits) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    check_declared(req, limits)?;
    // The declared length sizes the buffer (it is at most the limit now); the limit
    // still holds for what actually arrives.
    let capacity = declared_length(req).map_or(1024, |n| n as usize);
    let read = collect(payload, limits.max_bytes, capacity);
    match actix_web::rt::time::timeout(limits.deadline, read).await {
        Ok(result) => result,
        Err(_) => Err(BodyError::TimedOut(limits.deadline)),
    }
}

async fn collect<S>(mut payload: S, max: usize, capacity: usize) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let mut body = BytesMut::with_capacity(capacity);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len().saturating_add(chunk.len()) > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limits(max_bytes: usize, deadline_ms: u64) -> BodyLimits {
        BodyLimits { max_bytes, deadline: Duration::from_millis(deadline_ms) }
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[actix_web::test]
    async fn a_body_within_the_limits_is_read_whole() {
        let req = TestRequest::default().insert_header((CONTENT_LENGTH, "6")).to_http_request();
        let body = read_body(&req, chunks(&[b"abc", b"def"]), limits(6, 1000)).await.unwrap();
        assert_eq!(&body[..], b"abcdef");
    }

    #[actix_web::test]
    async fn a_declared_or_streamed_excess_is_refused() {
        let req = TestRequest::default().insert_header((CONTENT_LENGTH, "7")).to_http_request();
        assert!(matches!(read_body(&req, chunks(&[]), limits(6, 1000)).await, Err(BodyError::TooLarge(6))));
        let req = TestRequest::default().to_http_request();
        assert!(matches!(
            read_body(&req, chunks(&[b"abcd", b"efg"]), limits(6, 1000)).await,
            Err(BodyError::TooLarge(6))
        ));
        let req = TestRequest::default().insert_header((CONTENT_LENGTH, "99999999999999999999999")).to_http_request();
        assert!(read_body(&req, chunks(&[b"a"]), limits(6, 1000)).await.is_ok(), "an unparsable length is ignored");
    }

    #[actix_web::test]
    async fn a_body_that_never_ends_times_out() {
        let req = TestRequest::default().insert_header((CONTENT_LENGTH, "6")).to_http_request();
        let endless = chunks(&[b"abc"]).chain(futures_util::stream::pending());
        let started = std::time::Instant::now();
        assert!(matches!(read_body(&req, endless, limits(6, 50)).await, Err(BodyError::TimedOut(_))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
